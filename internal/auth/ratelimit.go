package auth

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/daoguard/daoguard"
	"golang.org/x/time/rate"
)

// Limiter is a set of token buckets by key (a key id, a source address).
// Limits are per process: with N gateway replicas behind a load balancer a
// client can get up to N times the rate (docs/ARCHITECTURE.md says why
// that is the chosen trade-off).
type Limiter struct {
	Name  string     // the policy name in RateLimit headers
	Rate  rate.Limit // tokens per second; 0 disables the limiter
	Burst int

	mu sync.Mutex
	m  map[string]*rate.Limiter
}

// NewLimiter returns a limiter of perSecond with the given burst.
func NewLimiter(name string, perSecond float64, burst int) *Limiter {
	return &Limiter{Name: name, Rate: rate.Limit(perSecond), Burst: max(burst, 1), m: map[string]*rate.Limiter{}}
}

// State is what a limiter tells the client in RateLimit headers.
type State struct {
	Name      string // the policy's name
	Policy    string // RateLimit-Policy value
	Remaining int
	Reset     time.Duration // until the bucket is full again
}

func (l *Limiter) bucket(key string) *rate.Limiter {
	b, ok := l.m[key]
	if !ok {
		b = rate.NewLimiter(l.Rate, l.Burst)
		l.m[key] = b
	}
	return b
}

// Take spends one token of key's bucket. It returns ok=false and the wait
// when the bucket is empty (and then spends nothing).
func (l *Limiter) Take(key string, now time.Time) (st State, ok bool, retry time.Duration) {
	if l == nil || l.Rate <= 0 {
		return State{}, true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key)
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return l.state(b, now), false, d
	}
	return l.state(b, now), true, 0
}

func (l *Limiter) state(b *rate.Limiter, now time.Time) State {
	t := b.TokensAt(now)
	window := math.Ceil(float64(l.Burst) / float64(l.Rate))
	return State{
		Name:      l.Name,
		Policy:    fmt.Sprintf("%q;q=%d;w=%d", l.Name, l.Burst, int64(window)),
		Remaining: max(int(t), 0),
		Reset:     time.Duration((float64(l.Burst) - t) / float64(l.Rate) * float64(time.Second)),
	}
}

// Sweep forgets buckets that are full again: they hold no information, and
// without this an attacker cycling source addresses would grow the map.
func (l *Limiter) Sweep(now time.Time) {
	if l == nil || l.Rate <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, b := range l.m {
		if b.TokensAt(now) >= float64(l.Burst) {
			delete(l.m, k)
		}
	}
}

// LimitError is RATE_LIMITED with what the client needs to back off.
type LimitError struct {
	Err        *daoguard.Error
	State      State
	RetryAfter time.Duration
}

func (e *LimitError) Error() string { return e.Err.Error() }
func (e *LimitError) Unwrap() error { return e.Err }

func limited(st State, retry time.Duration, what string) *LimitError {
	return &LimitError{State: st, RetryAfter: retry,
		Err: &daoguard.Error{Code: daoguard.CodeRateLimited, Message: "too many requests " + what, Hint: "wait for Retry-After seconds"}}
}
