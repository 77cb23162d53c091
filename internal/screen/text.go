package screen

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// view is a transformed copy of the screened text whose every byte
// remembers the byte of the original it came from, so that a match in
// any view is reported as a span of what the sender wrote.
type view struct {
	b   []byte
	src []int // src[i]: the original offset of b[i]
}

func (v *view) add(s string, at int) {
	v.b = append(v.b, s...)
	for range len(s) {
		v.src = append(v.src, at)
	}
}

// span maps [i, j) of the view to the original text.
func (v *view) span(i, j int, original string) (int, int) {
	start := v.src[i]
	end := len(original)
	if j < len(v.src) {
		end = v.src[j]
	}
	if j > 0 && end <= v.src[j-1] { // j inside one original rune: take all of it
		_, n := utf8.DecodeRuneInString(original[v.src[j-1]:])
		end = v.src[j-1] + n
	}
	return start, end
}

// hidden reports the characters that render as nothing or reorder what
// is shown: zero-width characters, joiners, word joiners, the byte-order
// mark and the bidirectional controls (the Trojan Source class). Text
// that hides words from a human reviewer while a model still reads them.
func hidden(r rune) bool {
	switch {
	case r >= 0x200B && r <= 0x200F, // zero-width space, joiners, LRM, RLM
		r >= 0x202A && r <= 0x202E, // bidi embeddings and overrides
		r >= 0x2060 && r <= 0x2064, // word joiner, invisible operators
		r >= 0x2066 && r <= 0x2069, // bidi isolates
		r == 0xFEFF, r == 0x061C, r == 0x00AD, r == 0x180E:
		return true
	case r >= 0xE0000 && r <= 0xE007F: // tag characters (ASCII smuggling)
		return true
	}
	return false
}

// normalize builds the lower-cased NFKC view of s with hidden characters
// removed, and reports where hidden characters were.
func normalize(s string) (view, []int) {
	v := view{b: make([]byte, 0, len(s)), src: make([]int, 0, len(s))}
	var hid []int
	var buf [utf8.UTFMax]byte
	for i, r := range s {
		if r < utf8.RuneSelf { // ASCII: already NFKC; lower-case in place
			c := byte(r)
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			v.b, v.src = append(v.b, c), append(v.src, i)
			continue
		}
		if hidden(r) {
			hid = append(hid, i)
			continue
		}
		// NFKC folds full-width letters, ligatures, circled and
		// mathematical alphanumerics into the letters they look like.
		n := utf8.EncodeRune(buf[:], r)
		folded := buf[:n]
		if r >= utf8.RuneSelf {
			folded = norm.NFKC.Bytes(folded)
		}
		for _, fr := range string(folded) {
			v.add(string(unicode.ToLower(fr)), i)
		}
	}
	return v, hid
}

// leet folds digits and symbols that stand in for letters ("1gn0r3",
// "pr3-@pproved") inside words that also hold letters; numbers, amounts
// and hex stay as they are.
func leet(v view) view {
	out := view{b: append([]byte(nil), v.b...), src: v.src}
	b := out.b
	for i := 0; i < len(b); {
		j := i
		letters, subs := 0, 0
		for j < len(b) && (isLetter(b[j]) || leetOf(b[j]) != 0) {
			if isLetter(b[j]) {
				letters++
			} else {
				subs++
			}
			j++
		}
		if j == i {
			i++
			continue
		}
		hex := j-i > 2 && b[i] == '0' && b[i+1] == 'x'
		if letters >= 2 && subs > 0 && !hex {
			for k := i; k < j; k++ {
				if c := leetOf(b[k]); c != 0 {
					b[k] = c
				}
			}
		}
		i = j
	}
	return out
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' }

func leetOf(c byte) byte {
	switch c {
	case '0':
		return 'o'
	case '1', '!', '|':
		return 'i'
	case '3':
		return 'e'
	case '4', '@':
		return 'a'
	case '5', '$':
		return 's'
	case '7':
		return 't'
	case '8':
		return 'b'
	}
	return 0
}

// rot13 is v with ASCII letters rotated by 13: text written in ROT13 reads
// plainly here.
func rot13(v view) view {
	out := view{b: make([]byte, len(v.b)), src: v.src}
	for i, c := range v.b {
		switch {
		case c >= 'a' && c <= 'z':
			c = 'a' + (c-'a'+13)%26
		}
		out.b[i] = c
	}
	return out
}
