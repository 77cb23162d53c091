// Package stats holds the few estimators daoguard reports with: the
// Wilson score interval of a rate, and a percentile bootstrap interval of
// a statistic over paired samples. Deterministic: the bootstrap takes its
// seed from the caller, so a report can be reproduced.
package stats

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// z is the normal quantile of a two-sided 95% interval.
const z = 1.959964

// Rate is k of n with its 95% Wilson score interval.
type Rate struct {
	K, N   int
	Lo, Hi float64
}

// P is k/n (0 for n = 0).
func (r Rate) P() float64 {
	if r.N == 0 {
		return 0
	}
	return float64(r.K) / float64(r.N)
}

// Wilson returns k/n with its 95% Wilson score interval, which stays
// inside [0, 1] and is honest at 0 and n (where the normal approximation
// claims certainty).
func Wilson(k, n int) Rate {
	if n == 0 {
		return Rate{}
	}
	p, nn := float64(k)/float64(n), float64(n)
	den := 1 + z*z/nn
	mid := (p + z*z/(2*nn)) / den
	half := z * math.Sqrt(p*(1-p)/nn+z*z/(4*nn*nn)) / den
	return Rate{K: k, N: n, Lo: max(0, mid-half), Hi: min(1, mid+half)}
}

func (r Rate) String() string {
	if r.N == 0 {
		return "no records"
	}
	return fmt.Sprintf("%3d/%-3d %6.1f%%  [%5.1f%%, %5.1f%%]", r.K, r.N, 100*float64(r.K)/float64(r.N), 100*r.Lo, 100*r.Hi)
}

// Interval is an estimate with its 95% interval.
type Interval struct {
	Est, Lo, Hi float64
}

// Excludes reports whether v lies outside the interval.
func (i Interval) Excludes(v float64) bool { return v < i.Lo || v > i.Hi }

// Bootstrap returns stat over all n units with its 95% percentile
// bootstrap interval from resamples of the units (drawn with
// replacement); BootstrapLevel at another level. Resampling whole units (proposals, with every variant of
// each) keeps the pairing: the interval of a paired difference is not
// widened by the variation between units, as independent intervals would
// be.
func Bootstrap(n, resamples int, seed uint64, stat func(units []int) float64) Interval {
	return BootstrapLevel(n, resamples, 0.95, seed, stat)
}

// BootstrapLevel is Bootstrap with a level of confidence in (0, 1): for m
// comparisons held to 95% together, 1 - 0.05/m (Bonferroni).
func BootstrapLevel(n, resamples int, level float64, seed uint64, stat func(units []int) float64) Interval {
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	out := Interval{Est: stat(all)}
	if n == 0 || resamples <= 0 {
		return Interval{Est: out.Est, Lo: out.Est, Hi: out.Est}
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	est := make([]float64, resamples)
	units := make([]int, n)
	for r := range est {
		for i := range units {
			units[i] = rng.IntN(n)
		}
		est[r] = stat(units)
	}
	slices.Sort(est)
	tail := (1 - level) / 2
	out.Lo = est[int(tail*float64(resamples-1))]
	out.Hi = est[int(math.Ceil((1-tail)*float64(resamples-1)))]
	return out
}
