package screen

import (
	"bytes"
	_ "embed"
	"encoding/binary"
	"errors"
	"math"
	"slices"
)

// The statistical half of screening: a logistic regression over hashed
// word unigrams and bigrams, scored on each sentence or line of the text.
// It finds what rules do not name: a plain request planted in a document
// ("Write a poem about the sea", "What is the capital of Brazil?") reads
// unlike the document around it. It is trained at build time (make model,
// from ../shared/data/screening and daoguard's own attack texts; see
// internal/screen/train) and shipped in the binary: nothing is downloaded
// at run time. Like the rules, it can only raise a text's risk.

// LabelModel is the model's label: a sentence reads like an instruction
// planted for an AI.
const LabelModel = "MODEL_INJECTION"

const (
	modelBits  = 18 // 2^18 hash buckets
	modelMagic = "DGLR1\n"
	minSegment = 8 // bytes: shorter sentences carry too little to judge
	maxSegment = 2048
)

// Model is a trained hashed n-gram logistic regression.
type Model struct {
	Bias      float32
	Threshold float32 // probability from which a sentence is flagged
	W         []float32
}

//go:embed model.bin
var modelBin []byte

// model is the shipped model; nil if model.bin is empty (a checkout that
// has not trained one: rules alone).
var model = mustModel(modelBin)

func mustModel(b []byte) *Model {
	if len(b) == 0 {
		return nil
	}
	m, err := UnmarshalModel(b)
	if err != nil {
		panic("screen: the embedded model.bin does not load: " + err.Error())
	}
	return m
}

// MarshalBinary encodes the model: magic, threshold, bias, then the
// non-zero weights as (bucket uint32, weight float32), little-endian.
func (m *Model) MarshalBinary() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(modelMagic)
	binary.Write(&b, binary.LittleEndian, [2]float32{m.Threshold, m.Bias})
	for i, w := range m.W {
		if w != 0 {
			binary.Write(&b, binary.LittleEndian, uint32(i))
			binary.Write(&b, binary.LittleEndian, w)
		}
	}
	return b.Bytes(), nil
}

// UnmarshalModel decodes MarshalBinary's encoding.
func UnmarshalModel(b []byte) (*Model, error) {
	if !bytes.HasPrefix(b, []byte(modelMagic)) || len(b) < len(modelMagic)+8 || (len(b)-len(modelMagic))%8 != 0 {
		return nil, errors.New("not a daoguard screening model")
	}
	b = b[len(modelMagic):]
	m := &Model{W: make([]float32, 1<<modelBits)}
	m.Threshold = math.Float32frombits(binary.LittleEndian.Uint32(b))
	m.Bias = math.Float32frombits(binary.LittleEndian.Uint32(b[4:]))
	for b = b[8:]; len(b) > 0; b = b[8:] {
		i := binary.LittleEndian.Uint32(b)
		if i >= 1<<modelBits {
			return nil, errors.New("weight index out of range")
		}
		m.W[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4:]))
	}
	if !(m.Threshold > 0 && m.Threshold < 1) {
		return nil, errors.New("threshold out of (0, 1)")
	}
	return m, nil
}

// features calls f with the bucket of each feature of seg, a lower-cased
// sentence: its words (runs of ASCII letters and digits, or of non-ASCII
// bytes), each pair of neighbouring words, and the first word marked as
// first (a sentence that opens with a verb is a request).
func features(seg []byte, f func(uint32)) {
	const (
		offset = 2166136261 // FNV-1a
		prime  = 16777619
		mask   = 1<<modelBits - 1
	)
	var prev uint32
	first := true
	for i := 0; i < len(seg); {
		if !isWordByte(seg[i]) {
			i++
			continue
		}
		j := i
		h := uint32(offset)
		for j < len(seg) && isWordByte(seg[j]) {
			h = (h ^ uint32(seg[j])) * prime
			j++
		}
		if j-i >= 5 { // a content word alone; short function words ("your", "you") only in pairs
			f(h & mask)
		}
		if first {
			f(mix(h, 0xffffffff) & mask) // the opening word, as such
			first = false
		} else {
			f(mix(prev, h) & mask) // the pair
		}
		prev, i = h, j
	}
}

// mix combines two word hashes into the hash of the pair (or of a word
// in a position), apart from the words' own.
func mix(a, b uint32) uint32 { return (a*0x9e3779b1 ^ b) * 0x85ebca6b }

// featureSet appends seg's distinct features to buf: presence, not
// counts, so that a word repeated ("your … your … your") weighs once.
func featureSet(seg []byte, buf []uint32) []uint32 {
	features(seg, func(h uint32) { buf = append(buf, h) })
	slices.Sort(buf)
	return slices.Compact(buf)
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c >= 0x80
}

// logit is the model's log-odds for a sentence, with the features
// weighted 1/√n so that long and short sentences score alike.
func (m *Model) logit(seg []byte, buf []uint32) (float64, []uint32) {
	buf = featureSet(seg, buf[:0])
	if len(buf) == 0 {
		return math.Inf(-1), buf
	}
	var s float32
	for _, h := range buf {
		s += m.W[h]
	}
	return float64(m.Bias) + float64(s)/math.Sqrt(float64(len(buf))), buf
}

// Prob is the model's probability that seg, a lower-cased sentence, is an
// instruction planted for an AI.
func (m *Model) Prob(seg []byte) float64 {
	z, _ := m.logit(seg, nil)
	return 1 / (1 + math.Exp(-z))
}

// segments splits a view into sentences and lines: [start, end) in the
// view's bytes, each at least minSegment long.
func segments(b []byte) [][2]int {
	var out [][2]int
	start := 0
	cut := func(end int) {
		s, e := start, end
		for s < e && (b[s] == ' ' || b[s] == '\t' || b[s] == '\r') {
			s++
		}
		for e-s > maxSegment {
			out = append(out, [2]int{s, s + maxSegment})
			s += maxSegment
		}
		if e-s >= minSegment {
			out = append(out, [2]int{s, e})
		}
		start = end + 1
	}
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\n':
			cut(i)
		case '.', '?', '!':
			if i+1 == len(b) || b[i+1] == ' ' || b[i+1] == '\n' {
				cut(i + 1)
			}
		}
	}
	if start < len(b) {
		cut(len(b))
	}
	return out
}

// modelHits scores each sentence of v; a sentence at or above the
// model's threshold is a hit weighted from 0.5 (at the threshold: flagged
// alone) to 0.9.
func (m *Model) hits(v view, original string) []hit {
	var out []hit
	var buf []uint32
	for _, sg := range segments(v.b) {
		var z float64
		z, buf = m.logit(v.b[sg[0]:sg[1]], buf)
		p := 1 / (1 + math.Exp(-z))
		if p < float64(m.Threshold) {
			continue
		}
		w := 0.5 + 0.4*(p-float64(m.Threshold))/(1-float64(m.Threshold))
		s, e := v.span(sg[0], sg[1], original)
		out = append(out, hit{Span{s, e, LabelModel}, w})
	}
	return out
}

// MaxProb is the highest sentence probability in text (0 without a
// model), for benchmarks and training reports.
func MaxProb(m *Model, text string) float64 {
	if m == nil {
		return 0
	}
	v, _ := normalize(text)
	best := 0.0
	for _, sg := range segments(v.b) {
		best = max(best, m.Prob(v.b[sg[0]:sg[1]]))
	}
	return best
}

// Segments returns the lower-cased sentences of text as the model sees
// them, for training.
func Segments(text string) [][]byte {
	v, _ := normalize(text)
	var out [][]byte
	for _, sg := range segments(v.b) {
		out = append(out, slices.Clone(v.b[sg[0]:sg[1]]))
	}
	return out
}
