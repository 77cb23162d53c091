// Package anomaly watches each agent's behaviour against its own history:
// amounts far outside its usual range, bursts, clusters of attempts just
// under a limit, repeated denials (limit probing), new recipients for
// large sums, a day's spend far above its usual, unusual hours. A finding
// that trips moves the agent to supervised (the circuit breaker); only a
// human moves it back. Everything here is deterministic arithmetic over
// the history handed in: no state, no I/O.
package anomaly

import (
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
// time order): the running statistics of that history, checked. The
// service keeps the statistics instead of the history (Stats).
func Check(history []Event, next Event, cfg Config) []Finding {
	s := &Stats{}
	for _, e := range history {
		s.Add(e, cfg)
	}
	return s.Check(next, cfg)
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

func short(addr string) string {
	if len(addr) > 12 {
		return addr[:8] + "…" + addr[len(addr)-4:]
	}
	return addr
}
