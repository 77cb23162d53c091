package screen

import (
	"math"
	"math/rand/v2"
)

// TrainOptions tune Train.
type TrainOptions struct {
	Epochs    int     // passes over the examples
	Rate      float64 // learning rate
	L2        float64 // weight decay per update
	PosWeight float64 // weight of a positive example (the positives are few)
	Seed      uint64  // of the example order: the same inputs give the same model
}

// Train fits the model on lower-cased sentences (Segments) by stochastic
// gradient descent on the weighted log loss. It is deterministic: the
// same examples and options give the same weights, bit for bit, so the
// shipped model.bin can be checked against its training data.
func Train(pos, neg [][]byte, o TrainOptions) *Model {
	type example struct {
		feats []uint32
		y, w  float64
	}
	var ex []example
	add := func(segs [][]byte, y, w float64) {
		for _, s := range segs {
			if fs := featureSet(s, nil); len(fs) > 0 {
				ex = append(ex, example{fs, y, w})
			}
		}
	}
	add(pos, 1, o.PosWeight)
	add(neg, 0, 1)
	m := &Model{W: make([]float32, 1<<modelBits), Threshold: 0.5}
	rng := rand.New(rand.NewPCG(o.Seed, 0x6461_6f67_7561_7264))
	order := make([]int, len(ex))
	for i := range order {
		order[i] = i
	}
	for epoch := range o.Epochs {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		rate := o.Rate / (1 + float64(epoch)/4)
		for _, k := range order {
			e := ex[k]
			norm := 1 / math.Sqrt(float64(len(e.feats)))
			var s float32
			for _, h := range e.feats {
				s += m.W[h]
			}
			z := float64(m.Bias) + float64(s)*norm
			g := (1/(1+math.Exp(-z)) - e.y) * e.w
			for _, h := range e.feats {
				m.W[h] -= float32(rate * (g*norm + o.L2*float64(m.W[h])))
			}
			m.Bias -= float32(rate * g)
		}
	}
	return m
}
