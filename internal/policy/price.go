package policy

import (
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// PriceScale is the fixed point of prices: a price is USD per whole token
// times 10^18, so that a token worth a billionth of a cent still has
// digits, and arithmetic stays exact integer arithmetic.
var PriceScale = new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)

// Reading is one price source's answer for one asset.
type Reading struct {
	Source string    `json:"source"`
	Price  *big.Int  `json:"price_e18"` // USD per whole token × 10^18
	At     time.Time `json:"at"`        // when the source says the price was observed
}

// Quotes is one asset's latest readings: an immutable snapshot that price
// sources publish and evaluations share. It memoises its aggregation per
// policy: the result is a pure function of the readings and the time, and
// stays the same until a fresh reading turns stale or a future-dated one
// comes within the clock skew, so between those moments it is reused.
type Quotes struct {
	readings []Reading
	memo     atomic.Pointer[quoteMemo]
}

type quoteMemo struct {
	policy      *Policy
	sym         string
	from, until time.Time // valid for from ≤ now < until
	price       *evalPrice
}

// NewQuotes returns a snapshot of the readings (copied).
func NewQuotes(rs ...Reading) *Quotes {
	return &Quotes{readings: slices.Clone(rs)}
}

// Readings returns the snapshot's readings; the caller must not modify them.
func (q *Quotes) Readings() []Reading {
	if q == nil {
		return nil
	}
	return q.readings
}

// validUntil is the first moment after now at which Aggregate could answer
// differently for these readings: a fresh reading turning stale, or a
// reading from the future coming within the clock skew.
func (q *Quotes) validUntil(now time.Time, cfg PriceConfig) time.Time {
	until := now.Add(24 * time.Hour)
	for _, r := range q.readings {
		if stale := r.At.Add(cfg.MaxAge); !now.After(stale) && stale.Before(until) {
			until = stale
		}
		if ok := r.At.Add(-maxClockSkew); now.Before(ok) && ok.Before(until) {
			until = ok
		}
	}
	return until
}

// decimal parses plain decimal notation only: digits, optionally a point
// and more digits. big.Rat alone would also take "0x10", "1_000", "1e3",
// "0x1p-2" and "1/3", none of which a person means as an amount.
func decimal(s string) (*big.Rat, bool) {
	digits, dot := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot && digits > 0 && i < len(s)-1:
			dot = true
		default:
			return nil, false
		}
	}
	if digits == 0 || len(s) > 100 {
		return nil, false
	}
	return new(big.Rat).SetString(s)
}

// ParsePrice reads a decimal USD price ("1834.25") into fixed point.
func ParsePrice(s string) (*big.Int, error) {
	r, ok := decimal(s)
	if !ok || r.Sign() <= 0 {
		return nil, fmt.Errorf("price %q is not a positive decimal number", clipText(s))
	}
	r.Mul(r, new(big.Rat).SetInt(PriceScale))
	// Truncate below 10^-18 USD: far below any limit's resolution.
	return new(big.Int).Quo(r.Num(), r.Denom()), nil
}

// PriceConfig says which readings to trust.
type PriceConfig struct {
	MaxAge       time.Duration // readings older than this are stale
	MaxDeviation *big.Rat      // fraction: readings further than this from the median are dropped
	Quorum       int           // fewer trusted readings than this: no price
}

// Price is the outcome of aggregating readings: the price and the readings
// it rests on, or why there is none.
type Price struct {
	Value    *big.Int // nil when there is no trusted price
	Used     []string // sources of the readings used (the kept readings' order)
	Rejected []string // "source: why"
	Problem  string   // why there is no price
}

// Aggregate returns the median of the fresh readings after dropping those
// that deviate from it by more than the configured fraction, and fails if
// fewer than a quorum remain. A reading from the future (beyond a small
// clock skew) is treated as stale: a source with a wrong clock is not
// trusted to be fresh.
//
// Why a median and not a mean: one manipulated source moves a mean by any
// amount it likes, but cannot move the median past an honest reading.
func Aggregate(readings []Reading, now time.Time, cfg PriceConfig) Price {
	var p Price
	var small [8]Reading // the usual handful of sources: no allocation
	fresh := small[:0]
	for _, r := range readings {
		switch {
		case r.Price == nil || r.Price.Sign() <= 0:
			p.Rejected = append(p.Rejected, r.Source+": no positive price")
		case now.Sub(r.At) > cfg.MaxAge:
			p.Rejected = append(p.Rejected, fmt.Sprintf("%s: stale (%s old, limit %s)", r.Source, now.Sub(r.At).Round(time.Second), cfg.MaxAge))
		case r.At.Sub(now) > maxClockSkew:
			p.Rejected = append(p.Rejected, fmt.Sprintf("%s: observed %s in the future", r.Source, r.At.Sub(now).Round(time.Second)))
		default:
			fresh = append(fresh, r)
		}
	}
	// One reading per source (its newest): a source repeating itself is
	// still one voice.
	for i := 0; i < len(fresh); i++ {
		for j := i + 1; j < len(fresh); j++ {
			if fresh[j].Source == fresh[i].Source {
				if fresh[j].At.After(fresh[i].At) {
					fresh[i] = fresh[j]
				}
				fresh = append(fresh[:j], fresh[j+1:]...)
				j--
			}
		}
	}
	if len(fresh) == 0 {
		p.Problem = "no fresh readings"
		return p
	}
	med := median(fresh)
	kept := fresh[:0]
	var d, lhs big.Int
	rhs := new(big.Int).Mul(med, cfg.MaxDeviation.Num())
	for _, r := range fresh {
		// |r - med| / med > max  ⇔  |r - med| > max·med, kept exact.
		d.Sub(r.Price, med)
		d.Abs(&d)
		lhs.Mul(&d, cfg.MaxDeviation.Denom())
		if lhs.Cmp(rhs) > 0 {
			p.Rejected = append(p.Rejected, fmt.Sprintf("%s: deviates %s%% from the median %s", r.Source, pctOf(&d, med), FormatPrice(med)))
			continue
		}
		kept = append(kept, r)
	}
	// The readings kept must be a strict majority of the fresh ones: two
	// sources that disagree leave no price, rather than the lower one.
	if len(kept) < max(cfg.Quorum, 1) || 2*len(kept) <= len(fresh) {
		p.Problem = fmt.Sprintf("%d agreeing source(s) of %d fresh, quorum is %d and a majority must agree", len(kept), len(fresh), cfg.Quorum)
		return p
	}
	p.Value = median(kept)
	p.Used = make([]string, len(kept))
	for i, r := range kept {
		p.Used[i] = r.Source
	}
	return p
}

const maxClockSkew = 5 * time.Second

// median of the readings' prices; with an even count, the lower middle
// one (an actual reading, never a value no source reported).
func median(rs []Reading) *big.Int {
	var small [8]*big.Int
	ps := small[:0]
	for _, r := range rs {
		ps = append(ps, r.Price)
	}
	slices.SortFunc(ps, func(a, b *big.Int) int { return a.Cmp(b) })
	return ps[(len(ps)-1)/2]
}

// pctOf formats 100·d/base with one decimal.
func pctOf(d, base *big.Int) string {
	r := new(big.Rat).SetFrac(new(big.Int).Mul(d, big.NewInt(100)), base)
	return r.FloatString(1)
}

// FormatPrice renders a fixed-point price as a decimal USD amount with six
// decimals (truncated).
func FormatPrice(p *big.Int) string {
	q, r := new(big.Int).QuoRem(p, PriceScale, new(big.Int))
	frac := r.Uint64() / 1_000_000_000_000 // 18 → 6 decimals
	b := q.Append(make([]byte, 0, 32), 10)
	b = append(b, '.')
	var f [6]byte
	for i := 5; i >= 0; i-- {
		f[i] = byte('0' + frac%10)
		frac /= 10
	}
	return string(append(b, f[:]...))
}

// USD value arithmetic is in micro-dollars (int64): exact, and enough for
// nine trillion dollars. Larger values saturate to MaxUSD, which exceeds
// every limit, so a saturated value can only make a decision stricter.
const (
	MicroUSD = 1_000_000
	MaxUSD   = int64(1<<63 - 1)
)

// usdValue is amount (base units, decimals) × price, in micro-dollars,
// rounded up: rounding never lets an action slip under a limit.
func usdValue(amount *big.Int, decimals int, price *big.Int) int64 {
	v := new(big.Int).Mul(amount, price)
	q, r := v.QuoRem(v, pow10(decimals+18-6), new(big.Int))
	if r.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return MaxUSD
	}
	return q.Int64()
}

// addUSD adds without overflow: a sum that would wrap saturates.
func addUSD(a, b int64) int64 {
	if a > MaxUSD-b {
		return MaxUSD
	}
	return a + b
}

// FormatUSD renders micro-dollars as "1,234.56".
func FormatUSD(micro int64) string { return string(appendUSD(nil, micro)) }

// appendUSD appends micro-dollars as "1,234.56" (rounded half up to cents).
func appendUSD(b []byte, micro int64) []byte {
	if micro == MaxUSD {
		return append(b, "more than 9,223,372,036,854 (overflow)"...)
	}
	if micro < 0 {
		b = append(b, '-')
		micro = -micro
	}
	cents := (micro + 5_000) / 10_000
	var digits [24]byte
	d := strconv.AppendInt(digits[:0], cents/100, 10)
	for i, c := range d {
		if i > 0 && (len(d)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, c)
	}
	b = append(b, '.', byte('0'+cents%100/10), byte('0'+cents%10))
	return b
}

// ParseUSD reads a decimal USD amount ("25000", "0.50") into micro-dollars.
func ParseUSD(s string) (int64, error) {
	r, ok := decimal(s)
	if !ok {
		return 0, fmt.Errorf("%q is not a non-negative decimal number", clipText(s))
	}
	r.Mul(r, big.NewRat(MicroUSD, 1))
	if !r.IsInt() {
		return 0, fmt.Errorf("%q has more than 6 decimals", clipText(s))
	}
	if !r.Num().IsInt64() {
		return 0, fmt.Errorf("%q is too large", clipText(s))
	}
	return r.Num().Int64(), nil
}

// ParsePercent reads "2.5" (percent) into a fraction.
func ParsePercent(s string) (*big.Rat, error) {
	r, ok := decimal(strings.TrimSuffix(s, "%"))
	if !ok || r.Cmp(big.NewRat(100, 1)) > 0 {
		return nil, fmt.Errorf("%q is not a percentage between 0 and 100", clipText(s))
	}
	return r.Quo(r, big.NewRat(100, 1)), nil
}

func clipText(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
