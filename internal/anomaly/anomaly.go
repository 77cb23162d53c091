// Package anomaly watches each agent's behaviour against its own history:
// amounts far outside its usual range, bursts, clusters of attempts just
// under a limit, repeated denials (limit probing), new recipients for
// large sums, a day's spend far above its usual, unusual hours. A finding
// that trips moves the agent to supervised (the circuit breaker); only a
// human moves it back. Everything here is deterministic arithmetic over
// the history handed in: no state, no I/O.
package anomaly

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Event is one submission of an agent, as the detector sees it.
type Event struct {
	Time      time.Time
	USD       float64 // value in USD; 0 if unknown (not priced)
	Recipient string  // lower-case address; "" if none
	Verdict   string  // "allow", "needs_approval" or "deny"
	NearLimit bool    // within 10% under a limit the policy applied
}

// Config holds the thresholds. The defaults are generous: a breaker that
// trips on ordinary work teaches humans to reset it without looking.
type Config struct {
	MinHistory     int     `yaml:"min_history"`      // events needed before amount and hour rules speak
	RobustZ        float64 `yaml:"robust_z"`         // amount outlier: robust z-score of log amounts (median, MAD) above this
	OutlierOverTop float64 `yaml:"outlier_over_p99"` // and above this multiple of the 99th percentile of past amounts
	MinOutlier     float64 `yaml:"min_outlier_usd"`  // and at least this many USD

	BurstWindow time.Duration `yaml:"burst_window"`
	BurstCount  int           `yaml:"burst_count"` // submissions within BurstWindow, this one included

	ProbeWindow time.Duration `yaml:"probe_window"`
	ProbeCount  int           `yaml:"probe_count"` // denials within ProbeWindow

	NearWindow time.Duration `yaml:"near_limit_window"`
	NearCount  int           `yaml:"near_limit_count"` // near-limit attempts within NearWindow

	NewRecipientQuantile float64 `yaml:"new_recipient_quantile"` // a first-seen recipient above this quantile of past amounts

	SpendFactor float64 `yaml:"spend_factor"`  // today's spend above this multiple of the EWMA of past days
	MinSpend    float64 `yaml:"min_spend_usd"` // and above this many USD
	SpendAlpha  float64 `yaml:"spend_alpha"`   // EWMA weight of the latest day

	RareHour float64 `yaml:"rare_hour"` // an hour of day holding less than this share of the history

	RateFactor float64 `yaml:"rate_factor"` // submissions in the trailing hour above this multiple of the EWMA of active hours
	MinRate    int     `yaml:"min_rate"`    // and at least this many
	RateAlpha  float64 `yaml:"rate_alpha"`  // EWMA weight of the latest active hour
}

// DefaultConfig returns the default thresholds.
func DefaultConfig() Config {
	return Config{
		MinHistory: 30, RobustZ: 4.5, OutlierOverTop: 2, MinOutlier: 1_000,
		BurstWindow: time.Minute, BurstCount: 30,
		ProbeWindow: time.Hour, ProbeCount: 5,
		NearWindow: 24 * time.Hour, NearCount: 6,
		NewRecipientQuantile: 0.95,
		SpendFactor:          5, MinSpend: 10_000, SpendAlpha: 0.3,
		RareHour:   0.005,
		RateFactor: 4, MinRate: 20, RateAlpha: 0.1,
	}
}

// Validate names the first threshold out of its range, as field: why.
func (c Config) Validate() (field, why string) {
	switch {
	case c.MinHistory < 1 || c.MinHistory > 100_000:
		return "min_history", "must be between 1 and 100000"
	case c.RobustZ <= 0:
		return "robust_z", "must be positive"
	case c.OutlierOverTop < 1:
		return "outlier_over_p99", "must be at least 1"
	case c.MinOutlier < 0 || c.MinSpend < 0:
		return "min_outlier_usd", "USD floors must not be negative"
	case c.BurstWindow <= 0 || c.ProbeWindow <= 0 || c.NearWindow <= 0:
		return "burst_window", "windows must be positive durations"
	case c.BurstCount < 2 || c.ProbeCount < 2 || c.NearCount < 2:
		return "burst_count", "counts must be at least 2: one event is no burst"
	case c.NewRecipientQuantile <= 0 || c.NewRecipientQuantile >= 1:
		return "new_recipient_quantile", "must be between 0 and 1, exclusive"
	case c.SpendFactor <= 1:
		return "spend_factor", "must be above 1"
	case c.SpendAlpha <= 0 || c.SpendAlpha > 1:
		return "spend_alpha", "must be in (0, 1]"
	case c.RareHour < 0 || c.RareHour >= 1:
		return "rare_hour", "must be in [0, 1)"
	case c.RateFactor <= 1:
		return "rate_factor", "must be above 1"
	case c.MinRate < 2:
		return "min_rate", "must be at least 2"
	case c.RateAlpha <= 0 || c.RateAlpha > 1:
		return "rate_alpha", "must be in (0, 1]"
	}
	return "", ""
}

// Finding is one rule's observation about the next event. Trip says the
// breaker must act on it.
type Finding struct {
	Rule   string `json:"rule"`
	Detail string `json:"detail"`
	Trip   bool   `json:"trip"`
}

// Rules, stable codes.
const (
	RuleAmountOutlier = "AMOUNT_OUTLIER"
	RuleBurst         = "BURST"
	RuleLimitProbing  = "LIMIT_PROBING"
	RuleNearLimit     = "NEAR_LIMIT_CLUSTER"
	RuleNewRecipient  = "NEW_RECIPIENT_LARGE"
	RuleDailySpend    = "DAILY_SPEND"
	RuleUnusualHour   = "UNUSUAL_HOUR"
	RuleRateSurge     = "RATE_SURGE"
)

// Check judges next against the agent's history (its earlier events, in
// time order).
func Check(history []Event, next Event, cfg Config) []Finding {
	var out []Finding
	find := func(rule string, trip bool, format string, args ...any) {
		out = append(out, Finding{Rule: rule, Detail: fmt.Sprintf(format, args...), Trip: trip})
	}

	// Counts in trailing windows, this event included.
	within := func(d time.Duration, keep func(Event) bool) int {
		n := 0
		for i := len(history) - 1; i >= 0 && next.Time.Sub(history[i].Time) < d; i-- {
			if keep(history[i]) {
				n++
			}
		}
		return n
	}
	all := func(Event) bool { return true }
	if n := within(cfg.BurstWindow, all) + 1; n >= cfg.BurstCount {
		find(RuleBurst, true, "%d submissions within %s", n, cfg.BurstWindow)
	}
	if next.Verdict == "deny" {
		if n := within(cfg.ProbeWindow, func(e Event) bool { return e.Verdict == "deny" }) + 1; n >= cfg.ProbeCount {
			find(RuleLimitProbing, true, "%d denials within %s", n, cfg.ProbeWindow)
		}
	}
	if next.NearLimit {
		if n := within(cfg.NearWindow, func(e Event) bool { return e.NearLimit }) + 1; n >= cfg.NearCount {
			find(RuleNearLimit, true, "%d attempts within 10%% under a limit within %s", n, cfg.NearWindow)
		}
	}

	var amounts []float64
	for _, e := range history {
		if e.USD > 0 {
			amounts = append(amounts, e.USD)
		}
	}
	if next.USD > 0 && len(amounts) >= cfg.MinHistory {
		slices.Sort(amounts)
		// Amounts are multiplicative (one vendor is paid $100, another
		// $5,000): the robust z-score is taken of their logarithms. 1.4826
		// × MAD estimates the standard deviation of normal data; the floor
		// keeps an agent that always pays the same sum from seeing an
		// outlier in every cent. And the amount must also be well above
		// anything seen: a rare large vendor is not an anomaly.
		logs := make([]float64, len(amounts))
		for i, a := range amounts {
			logs[i] = math.Log(a)
		}
		med := quantile(logs, 0.5)
		dev := make([]float64, len(logs))
		for i, l := range logs {
			dev[i] = math.Abs(l - med)
		}
		slices.Sort(dev)
		scale := max(1.4826*quantile(dev, 0.5), 0.05)
		top := quantile(amounts, 0.99)
		if z := (math.Log(next.USD) - med) / scale; z > cfg.RobustZ && next.USD > cfg.OutlierOverTop*top && next.USD >= cfg.MinOutlier {
			find(RuleAmountOutlier, true, "$%.2f is %.1f robust deviations (of log amounts) above the median $%.2f, and %.1f× the 99th percentile", next.USD, z, math.Exp(med), next.USD/top)
		}
		if next.Recipient != "" && !slices.ContainsFunc(history, func(e Event) bool { return e.Recipient == next.Recipient }) {
			if q := quantile(amounts, cfg.NewRecipientQuantile); next.USD > q {
				find(RuleNewRecipient, false, "a first payment to %s of $%.2f, above %.0f%% of past amounts ($%.2f)", short(next.Recipient), next.USD, 100*cfg.NewRecipientQuantile, q)
			}
		}
	}

	// The trailing hour's rate against an EWMA of the agent's active
	// hours (hours with at least one submission: an agent that works
	// office hours is compared with its busy hours, not with its nights).
	if len(history) >= cfg.MinHistory {
		hour := func(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }
		now := within(time.Hour, func(Event) bool { return true }) + 1
		var ewma float64
		seen := false
		for i := 0; i < len(history); {
			h, n := hour(history[i].Time), 0
			for i < len(history) && hour(history[i].Time).Equal(h) {
				n, i = n+1, i+1
			}
			if next.Time.Sub(h) <= time.Hour { // the trailing hour itself is what is judged
				break
			}
			if !seen {
				ewma, seen = float64(n), true
			} else {
				ewma = cfg.RateAlpha*float64(n) + (1-cfg.RateAlpha)*ewma
			}
		}
		if seen && now >= cfg.MinRate && float64(now) > cfg.RateFactor*ewma {
			find(RuleRateSurge, true, "%d submissions in the last hour, %.1f× the usual active hour (%.1f)", now, float64(now)/max(ewma, 0.01), ewma)
		}
	}

	// The day's spend against an EWMA of past days (UTC), over allowed
	// and escalated actions.
	if next.USD > 0 && len(history) > 0 {
		day := func(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }
		today := day(next.Time)
		spent := map[time.Time]float64{}
		for _, e := range history {
			if e.Verdict != "deny" {
				spent[day(e.Time)] += e.USD
			}
		}
		first := day(history[0].Time)
		if days := int(today.Sub(first) / (24 * time.Hour)); days >= 7 {
			ewma := spent[first]
			for d := first.Add(24 * time.Hour); d.Before(today); d = d.Add(24 * time.Hour) {
				ewma = cfg.SpendAlpha*spent[d] + (1-cfg.SpendAlpha)*ewma
			}
			if s := spent[today] + next.USD; s > cfg.SpendFactor*ewma && s >= cfg.MinSpend {
				find(RuleDailySpend, true, "$%.2f today, %.1f× the usual day ($%.2f)", s, s/max(ewma, 0.01), ewma)
			}
		}
	}

	if len(history) >= cfg.MinHistory*3 {
		h := next.Time.UTC().Hour()
		n := 0
		for _, e := range history {
			if e.Time.UTC().Hour() == h {
				n++
			}
		}
		if share := float64(n) / float64(len(history)); share < cfg.RareHour {
			find(RuleUnusualHour, false, "%02d:00 UTC holds %.1f%% of this agent's history", h, 100*share)
		}
	}
	return out
}

// Trips reports whether any finding trips the breaker.
func Trips(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Trip })
}

// Summary is the findings as one line, for a reason or an alert.
func Summary(fs []Finding) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.Rule + ": " + f.Detail
	}
	return strings.Join(parts, "; ")
}

// quantile of sorted values, by linear interpolation.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	return sorted[lo] + (pos-float64(lo))*(sorted[hi]-sorted[lo])
}

func short(addr string) string {
	if len(addr) > 12 {
		return addr[:8] + "…" + addr[len(addr)-4:]
	}
	return addr
}
