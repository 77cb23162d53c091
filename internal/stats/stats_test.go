package stats

import (
	"math"
	"testing"
)

// TestWilson: known values of the 95% Wilson interval.
func TestWilson(t *testing.T) {
	for _, tc := range []struct {
		k, n   int
		lo, hi float64
	}{
		{0, 10, 0, 0.2775},
		{10, 10, 0.7225, 1},
		{5, 10, 0.2366, 0.7634},
		{40, 40, 0.9124, 1},
	} {
		r := Wilson(tc.k, tc.n)
		if math.Abs(r.Lo-tc.lo) > 0.0005 || math.Abs(r.Hi-tc.hi) > 0.0005 {
			t.Errorf("Wilson(%d, %d) = [%.4f, %.4f], want [%.4f, %.4f]", tc.k, tc.n, r.Lo, r.Hi, tc.lo, tc.hi)
		}
	}
}

// Bootstrap: the estimate is the statistic over all units; the interval
// holds it, narrows with more units, and is a point for constant data.
func TestBootstrap(t *testing.T) {
	mean := func(xs []float64) func([]int) float64 {
		return func(units []int) float64 {
			s := 0.0
			for _, u := range units {
				s += xs[u]
			}
			return s / float64(len(units))
		}
	}
	small, large := make([]float64, 20), make([]float64, 2000)
	for i := range small {
		small[i] = float64(i % 2)
	}
	for i := range large {
		large[i] = float64(i % 2)
	}
	a := Bootstrap(len(small), 2000, 1, mean(small))
	b := Bootstrap(len(large), 2000, 1, mean(large))
	if a.Est != 0.5 || a.Excludes(0.5) || b.Excludes(0.5) || !(b.Hi-b.Lo < (a.Hi-a.Lo)/5) {
		t.Fatalf("small %+v large %+v", a, b)
	}
	if c := Bootstrap(10, 500, 1, mean(make([]float64, 10))); c.Lo != 0 || c.Hi != 0 {
		t.Fatalf("constant data: %+v", c)
	}
	if a != Bootstrap(len(small), 2000, 1, mean(small)) {
		t.Fatal("not reproducible with the same seed")
	}
}
