// Package screen screens untrusted text — an agent's rationale, a
// proposal's body, a comment — for prompt injection and social
// engineering aimed at the AI agents that read it. It only ever adds
// risk: a flag raises an action to human approval with the reasons; a
// clean result lowers nothing, and policy over the decoded action decides
// either way (DESIGN.md: text is data, never authority).
//
// Screening normalises the text first (NFKC; zero-width and bidirectional
// controls removed and flagged), decodes base64, hex and Morse runs, and
// reads leetspeak and ROT13, then matches the known injection families.
package screen

import (
	"bytes"
	"slices"
	"sort"
	"unicode/utf8"
)

// Span is a flagged stretch of the original text, in bytes.
type Span struct {
	Start int    `json:"start"`
	End   int    `json:"end"`
	Label string `json:"label"`
}

// Result is what screening found.
type Result struct {
	Flagged bool     `json:"flagged"`
	Score   float64  `json:"score"` // 0 (nothing found) to 1
	Labels  []string `json:"labels"`
	Spans   []Span   `json:"spans"`
}

// Threshold is the score from which a text is flagged.
const Threshold = 0.5

// MaxText bounds what is screened: the rest of a longer text is not read
// (callers bound their inputs well below this).
const MaxText = 1 << 20

// Text screens s with the rules and the shipped model.
func Text(s string) Result { return screenWith(s, model) }

// screenWith screens s with the rules and m (nil: rules alone).
func screenWith(s string, m *Model) Result {
	if len(s) > MaxText {
		s = s[:MaxText]
	}
	var spans []hit
	norm, hid := normalize(s)
	if len(hid) > 0 {
		_, n := utf8.DecodeRuneInString(s[hid[len(hid)-1]:])
		spans = append(spans, hit{Span{hid[0], hid[len(hid)-1] + n, LabelHidden}, 0.5})
	}
	views := []view{norm, rot13(norm)}
	if l := leet(norm); !bytes.Equal(l.b, norm.b) { // most texts have no leetspeak
		views = append(views, l)
	}
	for _, v := range views {
		spans = append(spans, match(v, s)...)
	}
	if m != nil {
		spans = append(spans, m.hits(norm, s)...)
	}
	for _, seg := range decodeSegments(s) {
		inner, _ := normalize(seg.text)
		if found := match(inner, seg.text); len(found) > 0 {
			// Instructions nobody encodes for a human: stronger than
			// the same words in clear.
			spans = append(spans, hit{Span{seg.start, seg.end, LabelEncoded}, 0.9})
			for _, f := range found {
				spans = append(spans, hit{Span{seg.start, seg.end, f.Label}, f.w})
			}
		}
	}
	return result(spans)
}

// hit is a span with the weight of the rule that found it.
type hit struct {
	Span
	w float64
}

// match runs every rule over v, reporting spans of original.
func match(v view, original string) []hit {
	var out []hit
	for ri, ws := range windows(v.b) {
		r := rules[ri]
		for _, w := range ws {
			for _, m := range r.re.FindAllIndex(v.b[w[0]:w[1]], 8) {
				if m[1] <= m[0] {
					continue
				}
				start, end := v.span(w[0]+m[0], w[0]+m[1], original)
				out = append(out, hit{Span{start, end, r.label}, r.weight})
			}
		}
	}
	return out
}

// keyAt indexes every rule's keys by their first two bytes, so that one
// pass over a text finds every key of every rule (instead of one search
// per key: ninety keys, three views).
var keyAt = func() (t [1 << 16][]keyRef) {
	for ri, r := range rules {
		for _, k := range r.keys {
			if len(k) < 2 {
				panic("screen: a rule key shorter than 2 bytes: " + k)
			}
			p := uint16(k[0])<<8 | uint16(k[1])
			t[p] = append(t[p], keyRef{ri, k})
		}
	}
	return t
}()

type keyRef struct {
	rule int
	key  string
}

// windows returns, for each rule, the merged stretches of b around the
// occurrences of its keys, in order.
func windows(b []byte) [][][2]int {
	ws := make([][][2]int, len(rules))
	for i := 0; i+1 < len(b); i++ {
		for _, k := range keyAt[uint16(b[i])<<8|uint16(b[i+1])] {
			if bytes.HasPrefix(b[i:], []byte(k.key)) {
				r := &rules[k.rule]
				ws[k.rule] = append(ws[k.rule], [2]int{max(0, i-r.before), min(len(b), i+r.after)})
			}
		}
	}
	for ri, w := range ws {
		if len(w) < 2 {
			continue
		}
		// Starts come in order; a window may still end before an earlier
		// one (keys of different reach), so merge by extent.
		sort.Slice(w, func(i, j int) bool { return w[i][0] < w[j][0] })
		merged := w[:1]
		for _, x := range w[1:] {
			last := &merged[len(merged)-1]
			if x[0] <= last[1] {
				last[1] = max(last[1], x[1])
			} else {
				merged = append(merged, x)
			}
		}
		ws[ri] = merged
	}
	return ws
}

// result scores the hits: each label counts once, at its strongest
// hit's weight, and independent labels add up as 1 - Π(1 - w).
func result(hits []hit) Result {
	res := Result{Labels: []string{}, Spans: []Span{}}
	best := map[string]float64{}
	for _, h := range hits {
		best[h.Label] = max(best[h.Label], h.w)
		res.Spans = append(res.Spans, h.Span)
	}
	miss := 1.0
	for l, w := range best {
		res.Labels = append(res.Labels, l)
		miss *= 1 - w
	}
	sort.Strings(res.Labels)
	res.Score = 1 - miss
	res.Flagged = res.Score >= Threshold
	sort.Slice(res.Spans, func(i, j int) bool {
		a, b := res.Spans[i], res.Spans[j]
		if a.Start != b.Start {
			return a.Start < b.Start
		}
		if a.End != b.End {
			return a.End < b.End
		}
		return a.Label < b.Label
	})
	res.Spans = slices.Compact(res.Spans)
	return res
}
