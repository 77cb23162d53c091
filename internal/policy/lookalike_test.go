package policy

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

const vendor = "0xa1b2c3d4e5f60718293a4b5c6d7e8f9012345678"

func TestLookAlikes(t *testing.T) {
	l := NewLookAlikes(DefaultLookAlikeDigits, DefaultLookAlikeDigits)
	l.Add(strings.ToUpper(vendor[:2]) + strings.ToUpper(vendor[2:])) // any case in
	l.Add("0x00000000000000000000000000000000000000aa")
	l.Add("not an address")
	l.Add("0x" + strings.Repeat("g", 40))
	if l.Len() != 2 {
		t.Fatalf("Len = %d", l.Len())
	}
	for _, tc := range []struct {
		name, addr, want string
	}{
		{"the known address itself", vendor, ""},
		{"the known address, checksummed", "0xA1b2C3d4e5f60718293a4b5c6d7e8f9012345678", ""},
		{"a poisoned address: same first and last four digits", "0xa1b2" + strings.Repeat("f", 32) + "5678", vendor},
		{"same first four only", "0xa1b2" + strings.Repeat("f", 32) + "0000", ""},
		{"same last four only", "0x0000" + strings.Repeat("f", 32) + "5678", ""},
		{"first five and last five match too", "0xa1b2c" + strings.Repeat("0", 30) + "45678", vendor},
		{"unrelated", "0x1111111111111111111111111111111111111111", ""},
		{"malformed", "0xa1b25678", ""},
		{"not hex", "0xa1b2" + strings.Repeat("z", 32) + "5678", ""},
	} {
		if got := l.Imitated(tc.addr); got != tc.want {
			t.Errorf("%s: Imitated(%s) = %q, want %q", tc.name, tc.addr, got, tc.want)
		}
	}
}

// TestLookAlikesDeterministic: two known addresses with the same ends
// (possible, if rare): the answer is the smallest, whatever the order.
func TestLookAlikesDeterministic(t *testing.T) {
	a := "0xa1b2" + strings.Repeat("1", 32) + "5678"
	b := "0xa1b2" + strings.Repeat("2", 32) + "5678"
	probe := "0xa1b2" + strings.Repeat("3", 32) + "5678"
	for _, order := range [][]string{{a, b}, {b, a}} {
		l := NewLookAlikes(4, 4)
		for _, x := range order {
			l.Add(x)
		}
		if got := l.Imitated(probe); got != a {
			t.Fatalf("order %v: %q", order, got)
		}
	}
}

func TestLookAlikesBounds(t *testing.T) {
	if l := NewLookAlikes(0, -3); l.lead != 1 || l.trail != 1 {
		t.Fatalf("lead %d trail %d", l.lead, l.trail)
	}
	if l := NewLookAlikes(30, 30); l.lead+l.trail > 20 {
		t.Fatalf("lead %d trail %d", l.lead, l.trail)
	}
}

func randomAddress() string {
	var b [20]byte
	rand.Read(b[:])
	return "0x" + hex.EncodeToString(b[:])
}

// BenchmarkLookAlikes: one lookup against a 10,000-address allowlist.
func BenchmarkLookAlikes(b *testing.B) {
	l := NewLookAlikes(DefaultLookAlikeDigits, DefaultLookAlikeDigits)
	for range 10_000 {
		l.Add(randomAddress())
	}
	probes := make([]string, 1024)
	for i := range probes {
		probes[i] = randomAddress()
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l.Imitated(probes[i%len(probes)])
		i++
	}
}

func ExampleLookAlikes() {
	l := NewLookAlikes(4, 4)
	l.Add("0xa1b2c3d4e5f60718293a4b5c6d7e8f9012345678")
	fmt.Println(l.Imitated("0xa1b2ffffffffffffffffffffffffffffffff5678"))
	// Output: 0xa1b2c3d4e5f60718293a4b5c6d7e8f9012345678
}
