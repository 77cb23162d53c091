package service

import (
	"strings"
	"testing"

	"github.com/daoguard/daoguard"
)

// TestParseAddressEIP55 runs EIP-55's own examples, each also with one
// letter's case flipped (which the checksum must catch), and the
// checksum-less forms (one case throughout), which carry no checksum.
func TestParseAddressEIP55(t *testing.T) {
	for _, a := range []string{
		"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
		"0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
		"0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
		"0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
	} {
		got, err := parseAddress(a)
		if err != nil || got != strings.ToLower(a) {
			t.Fatalf("%s: %q, %v", a, got, err)
		}
		for _, one := range []string{strings.ToLower(a), "0x" + strings.ToUpper(a[2:])} {
			if _, err := parseAddress(one); err != nil {
				t.Fatalf("%s: %v", one, err)
			}
		}
		// Flip the case of each letter in turn: every flip must fail.
		for i := 2; i < len(a); i++ {
			c := a[i]
			var flipped byte
			switch {
			case c >= 'a' && c <= 'f':
				flipped = c - 'a' + 'A'
			case c >= 'A' && c <= 'F':
				flipped = c - 'A' + 'a'
			default:
				continue
			}
			bad := a[:i] + string(flipped) + a[i+1:]
			if bad == strings.ToLower(bad) || bad == "0x"+strings.ToUpper(bad[2:]) {
				continue // flipping made it one case throughout: no checksum left
			}
			if _, err := parseAddress(bad); daoguard.ErrorCode(err) != daoguard.CodeAddressChecksum {
				t.Fatalf("%s (position %d flipped): %v", bad, i, err)
			}
		}
	}
}
