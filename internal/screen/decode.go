package screen

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"unicode/utf8"
)

// segment is an encoded run of the original text and what it decodes to.
type segment struct {
	start, end int
	how        string // "base64", "hex", "morse"
	text       string
}

// runs returns the [start, end) of the runs of at least min bytes that
// in accepts, at most 16 (a hand loop: a regexp with a counted class is
// an order of magnitude slower on long texts).
func runs(s string, min int, in func(byte) bool) [][]int {
	var out [][]int
	for i := 0; i < len(s) && len(out) < 16; {
		if !in(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && in(s[j]) {
			j++
		}
		if j-i >= min {
			out = append(out, []int{i, j})
		}
		i = j
	}
	return out
}

func isBase64(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '_' || c == '-' || c == '='
}

func isHex(c byte) bool {
	return c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c >= '0' && c <= '9' || c == 'x' || c == 'X'
}

func isMorse(c byte) bool { return c == '.' || c == '-' || c == ' ' || c == '/' }

// decodeSegments finds base64, hex and Morse runs in s that decode to
// readable text: a payload hidden from a human reader and from keyword
// rules, but not from a model asked to decode it.
func decodeSegments(s string) []segment {
	var out []segment
	for _, m := range runs(s, 16, isBase64) {
		run := strings.TrimRight(s[m[0]:m[1]], "=")
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(run); err == nil && readable(b) {
				out = append(out, segment{m[0], m[1], "base64", string(b)})
				break
			}
		}
	}
	for _, m := range runs(s, 16, isHex) {
		run := s[m[0]:m[1]]
		run = strings.TrimPrefix(strings.TrimPrefix(run, "0x"), "0X")
		if len(run)%2 == 1 {
			run = run[:len(run)-1]
		}
		// Addresses, hashes and calldata decode to bytes, not text.
		if b, err := hex.DecodeString(run); err == nil && readable(b) {
			out = append(out, segment{m[0], m[1], "hex", string(b)})
		}
	}
	for _, m := range runs(s, 12, isMorse) {
		if t := morse(s[m[0]:m[1]]); len(t) >= 4 {
			out = append(out, segment{m[0], m[1], "morse", t})
		}
	}
	return out
}

// readable: at least 8 bytes of valid UTF-8, nearly all printable, with
// letters and spaces in the proportions of words.
func readable(b []byte) bool {
	if len(b) < 8 || !utf8.Valid(b) {
		return false
	}
	printable, letters, spaces := 0, 0, 0
	for _, c := range b {
		switch {
		case c == ' ':
			spaces++
			printable++
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			letters++
			printable++
		case c >= 0x21 && c <= 0x7e || c == '\n' || c == '\t' || c >= 0x80:
			printable++
		}
	}
	return printable*100 >= len(b)*95 && letters*2 >= len(b) && spaces > 0
}

var morseCode = map[string]byte{
	".-": 'a', "-...": 'b', "-.-.": 'c', "-..": 'd', ".": 'e', "..-.": 'f', "--.": 'g', "....": 'h', "..": 'i', ".---": 'j',
	"-.-": 'k', ".-..": 'l', "--": 'm', "-.": 'n', "---": 'o', ".--.": 'p', "--.-": 'q', ".-.": 'r', "...": 's', "-": 't',
	"..-": 'u', "...-": 'v', ".--": 'w', "-..-": 'x', "-.--": 'y', "--..": 'z',
	"-----": '0', ".----": '1', "..---": '2', "...--": '3', "....-": '4', ".....": '5', "-....": '6', "--...": '7', "---..": '8', "----.": '9',
}

// morse decodes letters separated by a space and words by " / " or three
// spaces; an unknown code spoils the run.
func morse(s string) string {
	var b strings.Builder
	for wi, word := range strings.FieldsFunc(strings.ReplaceAll(s, "   ", "/"), func(r rune) bool { return r == '/' }) {
		if wi > 0 {
			b.WriteByte(' ')
		}
		for _, code := range strings.Fields(word) {
			c, ok := morseCode[code]
			if !ok {
				return ""
			}
			b.WriteByte(c)
		}
	}
	return b.String()
}
