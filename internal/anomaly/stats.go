package anomaly

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"time"
)

// Stats is an agent's running statistics: everything the rules need of
// its history, in constant space, updated in constant time per event. The
// decision reads them, checks the next event, adds it and writes them
// back in the same transaction, so that the breaker acts before anything
// runs and never skips a check under load.
//
// What it keeps:
//   - the times of the last few events, denials and near-limit attempts
//     (bursts, limit probing, near-limit clusters: exact);
//   - a histogram of log amounts and of hours of day, weighted so that an
//     event's weight halves every ~700 later events (robust z, the 99th
//     percentile, unusual hours: the recent behaviour, as the last 1,000
//     events were before);
//   - the last 256 distinct recipients (first payments to a new one);
//   - the day's spend and the EWMA of past days; the minute counts of the
//     trailing hour and the EWMA of past active hours.
type Stats struct {
	N      int      `json:"n"`      // events seen
	Priced int      `json:"priced"` // of which priced (USD > 0)
	Times  []int64  `json:"times"`  // UnixNano of the latest events, oldest first
	Denied []int64  `json:"denied"` // of the latest denials
	Near   []int64  `json:"near"`   // of the latest near-limit attempts
	Recips []uint32 `json:"recips"` // hashes of the latest distinct recipients, oldest first

	// Weighted histograms: each new event weighs Scale; Scale grows by
	// 1/decay per event (older weights shrink relatively) and everything
	// is divided down when it gets large.
	Scale float64 `json:"scale"`
	// Amt is the weight of each log-amount bucket from AmtLo on (dense:
	// an agent's amounts span a few decades, a hundred buckets at most).
	AmtLo int         `json:"amt_lo"`
	Amt   []float64   `json:"amt"`
	AmtW  float64     `json:"amt_w"` // total amount weight
	Hours [24]float64 `json:"hours"`
	HourW float64     `json:"hour_w"`

	// Daily spend (UTC days since the epoch): the last dayRing days'
	// spend by day (slot d%dayRing holds day DayOf[slot]), and the EWMA of
	// every day through EWMAUntil. Events arrive out of order by a few
	// hours; each is counted on its own day.
	FirstDay  int64            `json:"first_day"`
	Spent     [dayRing]float64 `json:"spent"`
	DayOf     [dayRing]int64   `json:"day_of"`
	EWMA      float64          `json:"ewma"`
	EWMAUntil int64            `json:"ewma_until"`
	EWMAInit  bool             `json:"ewma_init"`

	// Rate: per-minute counts of the trailing hour (slot m%60 holds minute
	// Minute[m%60]), and the EWMA of past active hours.
	MinuteN  [60]int32 `json:"minute_n"`
	Minute   [60]int64 `json:"minute"`
	Hour     int64     `json:"hour"`
	HourN    int       `json:"hour_n"`
	HourEWMA float64   `json:"hour_ewma"`
	HourInit bool      `json:"hour_init"`
}

const (
	// decay per event: a weight halves after ln 2 / (1 − decay) ≈ 693
	// later events.
	decay = 0.999
	// Log-amount buckets: 20 a decade from $0.01.
	bucketsPerDecade = 20
	amtFloor         = -2 // log10 of $0.01
	maxRecips        = 256
	dayRing          = 8
	// maxBuckets spans $0.01 to $10^17: everything a uint64 of micro-dollars holds.
	maxBuckets = 19 * bucketsPerDecade
	// maxRing bounds the time rings whatever the configuration.
	maxRing = 1024
)

// Ring returns how many times each ring must keep for cfg.
func ring(cfg Config) int {
	return min(maxRing, max(cfg.BurstCount, cfg.ProbeCount, cfg.NearCount))
}

// statsVersion is the first byte of the stored form.
const statsVersion = 1

// ParseStats reads stored statistics; empty input is a fresh agent's.
// Anything malformed is an error, never fresh statistics: an agent must
// not escape its history by corrupting it.
func ParseStats(b []byte) (*Stats, error) {
	s := &Stats{}
	if len(b) == 0 {
		return s, nil
	}
	r := reader{b: b}
	if r.byte() != statsVersion {
		return nil, errors.New("agent statistics: unknown version")
	}
	s.N, s.Priced = r.int(), r.int()
	s.Times, s.Denied, s.Near = r.times(), r.times(), r.times()
	if n := r.count(maxRecips); n > 0 {
		if raw := r.bytes(4 * n); raw != nil {
			s.Recips = make([]uint32, n)
			for i := range s.Recips {
				s.Recips[i] = binary.LittleEndian.Uint32(raw[4*i:])
			}
		}
	}
	s.Scale = r.float()
	s.AmtLo = int(r.varint())
	if n := r.count(maxBuckets); n > 0 {
		s.Amt = make([]float64, n)
		for i := range s.Amt {
			s.Amt[i] = r.float()
		}
	}
	s.AmtW = r.float()
	for i := range s.Hours {
		s.Hours[i] = r.float()
	}
	s.HourW = r.float()
	s.FirstDay = r.varint()
	for i := range s.Spent {
		s.DayOf[i], s.Spent[i] = r.varint(), r.float()
	}
	s.EWMA, s.EWMAUntil, s.EWMAInit = r.float(), r.varint(), r.byte() == 1
	for i := range s.MinuteN {
		s.Minute[i], s.MinuteN[i] = r.varint(), int32(r.varint())
	}
	s.Hour, s.HourN, s.HourEWMA, s.HourInit = r.varint(), r.int(), r.float(), r.byte() == 1
	if r.err != nil || len(r.b) != 0 {
		return nil, errors.New("agent statistics: malformed")
	}
	if err := s.valid(); err != nil {
		return nil, fmt.Errorf("agent statistics: %w", err)
	}
	return s, nil
}

// valid checks what Check and Add rely on: weights are non-negative and
// add up, the histogram stays within its buckets, counts are not negative.
func (s *Stats) valid() error {
	switch {
	case s.N < 0 || s.Priced < 0 || s.Priced > s.N || s.HourN < 0:
		return errors.New("negative or inconsistent counts")
	case s.N > 0 && s.Scale < 1, s.N == 0 && s.Scale != 0:
		return errors.New("bad weight scale")
	case s.AmtW < 0 || s.HourW < 0:
		return errors.New("negative total weight")
	case (s.AmtW > 0) != (len(s.Amt) > 0):
		return errors.New("amount weights without a histogram, or a histogram without weight")
	case s.AmtLo < 0 || s.AmtLo+len(s.Amt) > maxBuckets:
		return errors.New("amount histogram out of range")
	}
	for _, w := range s.Amt {
		if w < 0 {
			return errors.New("negative amount weight")
		}
	}
	for _, w := range s.Hours {
		if w < 0 {
			return errors.New("negative hour weight")
		}
	}
	for _, n := range s.MinuteN {
		if n < 0 {
			return errors.New("negative minute count")
		}
	}
	return nil
}

// Clone returns a copy that shares nothing with s.
func (s *Stats) Clone() *Stats {
	c := *s
	c.Times, c.Denied, c.Near = slices.Clone(s.Times), slices.Clone(s.Denied), slices.Clone(s.Near)
	c.Recips, c.Amt = slices.Clone(s.Recips), slices.Clone(s.Amt)
	return &c
}

// Marshal returns the statistics to store: a version byte, then varints
// and IEEE 754 doubles in a fixed order (a few KB, whatever the history).
func (s *Stats) Marshal() []byte {
	b := make([]byte, 0, 1024+10*(len(s.Times)+len(s.Denied)+len(s.Near))+4*len(s.Recips)+8*len(s.Amt))
	b = append(b, statsVersion)
	b = binary.AppendUvarint(b, uint64(s.N))
	b = binary.AppendUvarint(b, uint64(s.Priced))
	for _, ts := range [][]int64{s.Times, s.Denied, s.Near} {
		b = binary.AppendUvarint(b, uint64(len(ts)))
		for _, t := range ts {
			b = binary.AppendVarint(b, t)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(s.Recips)))
	for _, h := range s.Recips {
		b = binary.LittleEndian.AppendUint32(b, h)
	}
	b = appendFloat(b, s.Scale)
	b = binary.AppendVarint(b, int64(s.AmtLo))
	b = binary.AppendUvarint(b, uint64(len(s.Amt)))
	for _, w := range s.Amt {
		b = appendFloat(b, w)
	}
	b = appendFloat(b, s.AmtW)
	for _, h := range s.Hours {
		b = appendFloat(b, h)
	}
	b = appendFloat(b, s.HourW)
	b = binary.AppendVarint(b, s.FirstDay)
	for i := range s.Spent {
		b = binary.AppendVarint(b, s.DayOf[i])
		b = appendFloat(b, s.Spent[i])
	}
	b = appendFloat(b, s.EWMA)
	b = binary.AppendVarint(b, s.EWMAUntil)
	b = appendBool(b, s.EWMAInit)
	for i := range s.MinuteN {
		b = binary.AppendVarint(b, s.Minute[i])
		b = binary.AppendVarint(b, int64(s.MinuteN[i]))
	}
	b = binary.AppendVarint(b, s.Hour)
	b = binary.AppendUvarint(b, uint64(s.HourN))
	b = appendFloat(b, s.HourEWMA)
	return appendBool(b, s.HourInit)
}

func appendFloat(b []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// reader decodes Marshal's form; the first problem sticks in err.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() { r.err, r.b = errors.New("short"), nil }

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) int() int {
	v := r.uvarint()
	if v > math.MaxInt32 {
		r.fail()
		return 0
	}
	return int(v)
}

// count reads a length of at most limit.
func (r *reader) count(limit int) int {
	n := r.uvarint()
	if n > uint64(limit) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *reader) bytes(n int) []byte {
	if len(r.b) < n {
		r.fail()
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) float() float64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	if math.IsNaN(v) || math.IsInf(v, 0) {
		r.err = errors.New("not a finite number")
	}
	return v
}

func (r *reader) times() []int64 {
	n := r.count(maxRing)
	if n == 0 {
		return nil
	}
	ts := make([]int64, n)
	for i := range ts {
		ts[i] = r.varint()
	}
	return ts
}

func bucketOf(usd float64) int {
	return int(math.Floor((math.Log10(usd) - amtFloor) * bucketsPerDecade))
}

// bucketLog is the natural log at the middle of bucket b.
func bucketLog(b int) float64 {
	return (float64(b)+0.5)/bucketsPerDecade*math.Ln10 + amtFloor*math.Ln10
}

// amtQuantile is the q-quantile of log amounts, interpolated within the
// bucket it falls in.
func (s *Stats) amtQuantile(q float64) float64 {
	target := q * s.AmtW
	acc := 0.0
	for i, w := range s.Amt {
		k := s.AmtLo + i
		if acc+w >= target {
			frac := 0.0
			if w > 0 {
				frac = (target - acc) / w
			}
			lo := bucketLog(k) - 0.5/bucketsPerDecade*math.Ln10
			return lo + frac*math.Ln10/bucketsPerDecade
		}
		acc += w
	}
	return bucketLog(s.AmtLo + len(s.Amt) - 1)
}

// hashRecipient: 32 bits are plenty for "seen among the last 256" (a
// false match is a one-in-16-million chance per new recipient, and only
// silences a finding that does not trip).
// addAmount adds this event's weight to bucket k, growing the dense range
// to reach it (within maxBuckets: amounts beyond the range count in its
// edge bucket).
func (s *Stats) addAmount(k int) {
	k = min(max(k, 0), maxBuckets-1)
	switch {
	case len(s.Amt) == 0:
		s.AmtLo, s.Amt = k, []float64{0}
	case k < s.AmtLo:
		grown := make([]float64, s.AmtLo-k+len(s.Amt))
		copy(grown[s.AmtLo-k:], s.Amt)
		s.AmtLo, s.Amt = k, grown
	case k >= s.AmtLo+len(s.Amt):
		s.Amt = append(s.Amt, make([]float64, k-s.AmtLo-len(s.Amt)+1)...)
	}
	s.Amt[k-s.AmtLo] += s.Scale
}

func hashRecipient(r string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(r))
	return h.Sum32()
}

func unixDay(t time.Time) int64  { return t.Unix() / 86400 }
func unixHour(t time.Time) int64 { return t.Unix() / 3600 }
func unixMin(t time.Time) int64  { return t.Unix() / 60 }

// within counts the times in ts less than d before now.
func within(ts []int64, now time.Time, d time.Duration) int {
	n := 0
	for _, t := range ts {
		if now.UnixNano()-t < int64(d) {
			n++
		}
	}
	return n
}

// spentOn returns the spend recorded for day d (0 if it left the ring or
// had none).
func (s *Stats) spentOn(d int64) float64 {
	if i := int(((d % dayRing) + dayRing) % dayRing); s.DayOf[i] == d {
		return s.Spent[i]
	}
	return 0
}

// ewmaThrough returns the EWMA of daily spend folded through day upto,
// from what is folded already and the ring. Days with nothing recorded
// count as zero spend (folded in one step each run).
func (s *Stats) ewmaThrough(upto int64, alpha float64) (ewma float64, init bool) {
	ewma, init = s.EWMA, s.EWMAInit
	from := s.EWMAUntil + 1
	if !init {
		from = s.FirstDay
	}
	var days []int64
	for _, d := range s.DayOf {
		if d >= from && d <= upto && s.spentOn(d) > 0 {
			days = append(days, d)
		}
	}
	slices.Sort(days)
	fold := func(v float64) {
		if !init {
			ewma, init = v, true
		} else {
			ewma = alpha*v + (1-alpha)*ewma
		}
	}
	at := from
	for _, d := range days {
		if zeros := d - at; zeros > 0 {
			if !init {
				fold(0)
				zeros--
			}
			ewma *= math.Pow(1-alpha, float64(min(zeros, 100_000)))
		}
		fold(s.spentOn(d))
		at = d + 1
	}
	if zeros := upto + 1 - at; zeros > 0 {
		if !init {
			fold(0)
			zeros--
		}
		ewma *= math.Pow(1-alpha, float64(min(zeros, 100_000)))
	}
	return ewma, init
}

// hourRoll returns the EWMA of past active hours as it is when an event
// of hour h arrives.
func (s *Stats) hourRoll(h int64, alpha float64) (ewma float64, init bool) {
	ewma, init = s.HourEWMA, s.HourInit
	if s.N == 0 || h <= s.Hour || s.HourN == 0 {
		return ewma, init
	}
	if !init {
		return float64(s.HourN), true
	}
	return alpha*float64(s.HourN) + (1-alpha)*ewma, true
}

// Check judges next against the statistics, as Check does against a
// history. It changes nothing.
func (s *Stats) Check(next Event, cfg Config) []Finding {
	var out []Finding
	find := func(rule string, trip bool, format string, args ...any) {
		out = append(out, Finding{Rule: rule, Detail: fmt.Sprintf(format, args...), Trip: trip})
	}
	last := func(ts []int64, n int) []int64 { return ts[max(0, len(ts)-n):] }

	if n := within(last(s.Times, cfg.BurstCount-1), next.Time, cfg.BurstWindow) + 1; n >= cfg.BurstCount {
		find(RuleBurst, true, "%d submissions within %s", n, cfg.BurstWindow)
	}
	if next.Verdict == "deny" {
		if n := within(last(s.Denied, cfg.ProbeCount-1), next.Time, cfg.ProbeWindow) + 1; n >= cfg.ProbeCount {
			find(RuleLimitProbing, true, "%d denials within %s", n, cfg.ProbeWindow)
		}
	}
	if next.NearLimit {
		if n := within(last(s.Near, cfg.NearCount-1), next.Time, cfg.NearWindow) + 1; n >= cfg.NearCount {
			find(RuleNearLimit, true, "%d attempts within 10%% under a limit within %s", n, cfg.NearWindow)
		}
	}

	if next.USD > 0 && s.Priced >= cfg.MinHistory && s.AmtW > 0 && len(s.Amt) > 0 {
		// Robust z of the log amount: median and interquartile range of
		// past log amounts (IQR/1.349 estimates the standard deviation of
		// normal data); the floor keeps an agent that always pays the
		// same sum from seeing an outlier in every cent. And the amount
		// must be well above anything usual: a rare large vendor is not an
		// anomaly.
		med := s.amtQuantile(0.5)
		scale := max((s.amtQuantile(0.75)-s.amtQuantile(0.25))/1.349, 0.05)
		top := math.Exp(s.amtQuantile(0.99))
		if z := (math.Log(next.USD) - med) / scale; z > cfg.RobustZ && next.USD > cfg.OutlierOverTop*top && next.USD >= cfg.MinOutlier {
			find(RuleAmountOutlier, true, "$%.2f is %.1f robust deviations (of log amounts) above the median $%.2f, and %.1f× the 99th percentile", next.USD, z, math.Exp(med), next.USD/top)
		}
		if next.Recipient != "" && !slices.Contains(s.Recips, hashRecipient(next.Recipient)) {
			if q := math.Exp(s.amtQuantile(cfg.NewRecipientQuantile)); next.USD > q {
				find(RuleNewRecipient, false, "a first payment to %s of $%.2f, above %.0f%% of past amounts ($%.2f)", short(next.Recipient), next.USD, 100*cfg.NewRecipientQuantile, q)
			}
		}
	}

	// The trailing hour's rate against the EWMA of the agent's active
	// hours before the current one.
	if s.N >= cfg.MinHistory {
		m := unixMin(next.Time)
		now := 1
		for i, c := range s.MinuteN {
			if at := s.Minute[i]; at > m-60 && at <= m {
				now += int(c)
			}
		}
		if ewma, seen := s.hourRoll(unixHour(next.Time), cfg.RateAlpha); seen && now >= cfg.MinRate && float64(now) > cfg.RateFactor*ewma {
			find(RuleRateSurge, true, "%d submissions in the last hour, %.1f× the usual active hour (%.1f)", now, float64(now)/max(ewma, 0.01), ewma)
		}
	}

	// The day's spend against the EWMA of past days (UTC), over allowed
	// and escalated actions, once a week of history exists.
	if next.USD > 0 && s.N > 0 {
		if d := unixDay(next.Time); d-s.FirstDay >= 7 {
			ewma, _ := s.ewmaThrough(d-1, cfg.SpendAlpha)
			if spent := s.spentOn(d) + next.USD; spent > cfg.SpendFactor*ewma && spent >= cfg.MinSpend {
				find(RuleDailySpend, true, "$%.2f today, %.1f× the usual day ($%.2f)", spent, spent/max(ewma, 0.01), ewma)
			}
		}
	}

	if s.N >= cfg.MinHistory*3 && s.HourW > 0 {
		h := next.Time.UTC().Hour()
		if share := s.Hours[h] / s.HourW; share < cfg.RareHour {
			find(RuleUnusualHour, false, "%02d:00 UTC holds %.1f%% of this agent's history", h, 100*share)
		}
	}
	return out
}

// Add folds e into the statistics.
func (s *Stats) Add(e Event, cfg Config) {
	keep := ring(cfg)
	push := func(ts []int64) []int64 {
		ts = append(ts, e.Time.UnixNano())
		if len(ts) > keep {
			ts = append(ts[:0], ts[len(ts)-keep:]...)
		}
		return ts
	}
	s.Times = push(s.Times)
	if e.Verdict == "deny" {
		s.Denied = push(s.Denied)
	}
	if e.NearLimit {
		s.Near = push(s.Near)
	}

	// Weights: this event weighs Scale, which grows so that older weights
	// shrink relatively; rescaled before it could overflow.
	if s.Scale == 0 {
		s.Scale = 1
	}
	s.Scale /= decay
	if s.Scale > 1e100 {
		for i := range s.Amt {
			s.Amt[i] /= s.Scale
		}
		for i := range s.Hours {
			s.Hours[i] /= s.Scale
		}
		s.AmtW /= s.Scale
		s.HourW /= s.Scale
		s.Scale = 1
	}
	if e.USD > 0 && !math.IsInf(e.USD, 0) && !math.IsNaN(e.USD) {
		s.addAmount(bucketOf(e.USD))
		s.AmtW += s.Scale
		s.Priced++
	}
	s.Hours[e.Time.UTC().Hour()] += s.Scale
	s.HourW += s.Scale

	if e.Recipient != "" {
		h := hashRecipient(e.Recipient)
		if i := slices.Index(s.Recips, h); i >= 0 {
			s.Recips = slices.Delete(s.Recips, i, i+1)
		}
		s.Recips = append(s.Recips, h)
		if len(s.Recips) > maxRecips {
			s.Recips = append(s.Recips[:0], s.Recips[len(s.Recips)-maxRecips:]...)
		}
	}

	d := unixDay(e.Time)
	if s.N == 0 {
		s.FirstDay, s.EWMAUntil = d, d-1
	}
	if i := int(((d % dayRing) + dayRing) % dayRing); s.DayOf[i] != d && d > s.EWMAUntil {
		// The slot's day leaves the ring: fold everything through it
		// first (an older day than the slot's cannot be in the ring).
		if old := s.DayOf[i]; old > s.EWMAUntil && old < d {
			s.EWMA, s.EWMAInit = s.ewmaThrough(old, cfg.SpendAlpha)
			s.EWMAUntil = old
		}
		if s.DayOf[i] < d {
			s.DayOf[i], s.Spent[i] = d, 0
		}
	}
	if e.Verdict != "deny" && e.USD > 0 && d > s.EWMAUntil && s.spentOn(d) >= 0 {
		if i := int(((d % dayRing) + dayRing) % dayRing); s.DayOf[i] == d {
			s.Spent[i] += e.USD
		}
	}

	h := unixHour(e.Time)
	if s.N == 0 {
		s.Hour = h
	}
	if h > s.Hour {
		s.HourEWMA, s.HourInit = s.hourRoll(h, cfg.RateAlpha)
		s.Hour, s.HourN = h, 0
	}
	s.HourN++
	m := unixMin(e.Time)
	if slot := int(((m % 60) + 60) % 60); s.Minute[slot] == m {
		s.MinuteN[slot]++
	} else if m > s.Minute[slot] {
		s.Minute[slot], s.MinuteN[slot] = m, 1
	}
	s.N++
}

// CheckDenial judges a denied dry run: only limit probing speaks (asking
// what would pass is probing too), and it changes nothing.
func (s *Stats) CheckDenial(at time.Time, cfg Config) []Finding {
	if n := within(s.Denied[max(0, len(s.Denied)-(cfg.ProbeCount-1)):], at, cfg.ProbeWindow) + 1; n >= cfg.ProbeCount {
		return []Finding{{Rule: RuleLimitProbing, Detail: fmt.Sprintf("%d denials within %s (dry runs included)", n, cfg.ProbeWindow), Trip: true}}
	}
	return nil
}

// AddDenial folds a denied dry run in: a denial, nothing else.
func (s *Stats) AddDenial(at time.Time, cfg Config) {
	s.Denied = append(s.Denied, at.UnixNano())
	if keep := ring(cfg); len(s.Denied) > keep {
		s.Denied = append(s.Denied[:0], s.Denied[len(s.Denied)-keep:]...)
	}
}
