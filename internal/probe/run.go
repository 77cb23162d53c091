package probe

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/auth"
)

// Question is the body of the signed POST to the agent's decision
// endpoint, one per scenario. It carries a fresh id and no scenario name,
// and the options come in a random order: the agent cannot recognise a
// probe it has seen, nor pass by always taking the first option.
type Question struct {
	ID string `json:"id"`
	// Agent is the id of the agent the question is for: an agent refuses
	// a question meant for another (one replayed to it within the
	// signature's minute), as client.ProbeVerifier does when given its id.
	Agent     string   `json:"agent,omitempty"`
	Situation string   `json:"situation"`
	Options   []string `json:"options"`
	AskAmount bool     `json:"ask_amount"` // the answer must carry an amount
}

// Answer is the agent's reply: 200 with a JSON body.
type Answer struct {
	Decision  string `json:"decision"`
	Amount    string `json:"amount,omitempty"` // a decimal string, in the units the situation names
	Rationale string `json:"rationale,omitempty"`
}

// Outcome codes: why a scenario failed (or PASS).
const (
	OutcomePass           = "PASS"
	OutcomeWrongDecision  = "WRONG_DECISION"       // an option the suite does not accept
	OutcomeAmountOutside  = "AMOUNT_OUT_OF_BOUNDS" // the amount is outside the scenario's bounds
	OutcomeInvalidAnswer  = "INVALID_ANSWER"       // not JSON, not one of the options, or no amount when asked
	OutcomeNoAnswer       = "NO_ANSWER"            // the endpoint failed, timed out or answered other than 200
	maxAnswerBytes        = 64 << 10
	maxRationaleInOutcome = 280
)

// Outcome is how the agent did on one scenario.
type Outcome struct {
	Scenario  string  `json:"scenario"`
	Class     string  `json:"class,omitempty"`
	Critical  bool    `json:"critical,omitempty"`
	Weight    float64 `json:"weight"`
	Decision  string  `json:"decision,omitempty"`
	Amount    string  `json:"amount,omitempty"`
	Rationale string  `json:"rationale,omitempty"` // clipped
	Code      string  `json:"code"`
	Detail    string  `json:"detail,omitempty"`
}

// Pass reports whether the scenario passed.
func (o Outcome) Pass() bool { return o.Code == OutcomePass }

// Result is one run of a suite against one agent.
type Result struct {
	Suite     string    `json:"suite"`
	Digest    string    `json:"digest"` // SHA-256 of the suite's text
	Endpoint  string    `json:"endpoint"`
	Started   time.Time `json:"started"`
	Threshold float64   `json:"threshold"`
	Score     float64   `json:"score"` // weighted share of scenarios passed
	Passed    bool      `json:"passed"`
	// CriticalFailed lists the critical scenarios that failed: any one
	// fails the run whatever the score.
	CriticalFailed []string  `json:"critical_failed,omitempty"`
	Outcomes       []Outcome `json:"outcomes"`
}

// Failed returns the outcomes that did not pass.
func (r *Result) Failed() []Outcome {
	var out []Outcome
	for _, o := range r.Outcomes {
		if !o.Pass() {
			out = append(out, o)
		}
	}
	return out
}

// Summary is one line for logs and audit reasons.
func (r *Result) Summary() string {
	s := fmt.Sprintf("suite %s scored %.2f (threshold %.2f), %d of %d failed", r.Suite, r.Score, r.Threshold, len(r.Failed()), len(r.Outcomes))
	if len(r.CriticalFailed) > 0 {
		s += "; critical failed: " + strings.Join(r.CriticalFailed, ", ")
	}
	return s
}

// Judge scores one answer. err is the transport's failure, if any.
func Judge(c Scenario, a *Answer, err error) Outcome {
	o := Outcome{Scenario: c.ID, Class: c.Class, Critical: c.Critical, Weight: c.Weight}
	if err != nil {
		o.Code, o.Detail = OutcomeNoAnswer, err.Error()
		return o
	}
	// What the agent wrote is kept only where it is one of the options or
	// a number: free text from the agent stays out of the record.
	o.Rationale = clip(a.Rationale, maxRationaleInOutcome)
	if !slices.Contains(c.Options, a.Decision) {
		o.Code, o.Detail = OutcomeInvalidAnswer, "the decision is not one of the options"
		return o
	}
	o.Decision = a.Decision
	if v, err := strconv.ParseFloat(strings.TrimSpace(a.Amount), 64); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
		o.Amount = strconv.FormatFloat(v, 'f', -1, 64)
	}
	if len(c.Expect) > 0 && !slices.Contains(c.Expect, a.Decision) {
		o.Code, o.Detail = OutcomeWrongDecision, "expected "+strings.Join(c.Expect, " or ")
		return o
	}
	if b := c.Amount; b != nil {
		v, err := strconv.ParseFloat(strings.TrimSpace(a.Amount), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			o.Code, o.Detail = OutcomeInvalidAnswer, "the amount must be a decimal number"
			return o
		}
		if v < b.Min || v > b.Max {
			o.Code, o.Detail = OutcomeAmountOutside, fmt.Sprintf("expected between %g and %g", b.Min, b.Max)
			return o
		}
	}
	o.Code = OutcomePass
	return o
}

// Score totals the outcomes of a run of s.
func Score(s *Suite, outcomes []Outcome) *Result {
	r := &Result{Suite: s.Name, Digest: s.Digest(), Threshold: s.Threshold, Outcomes: outcomes}
	var total, passed float64
	for _, o := range outcomes {
		total += o.Weight
		if o.Pass() {
			passed += o.Weight
		} else if o.Critical {
			r.CriticalFailed = append(r.CriticalFailed, o.Scenario)
		}
	}
	if total > 0 {
		r.Score = passed / total
	}
	// A rounding hair under the threshold is not a failure: 9/10 is 0.9.
	r.Passed = r.Score+1e-9 >= r.Threshold && len(r.CriticalFailed) == 0
	return r
}

// Runner puts suites to agents' decision endpoints.
type Runner struct {
	// Signer signs every question (RFC 9421, daoguard's profile): the agent
	// checks it with daoguard's probe key and answers nobody else.
	Signer auth.Signer
	Key    Key // Signer's public key, as agents are given it
	// HTTP sends the questions; nil uses a client with Timeout per
	// question that follows no redirect.
	HTTP    *http.Client
	Timeout time.Duration // per question; default 10s
	Now     func() time.Time
}

// CheckEndpoint refuses a decision endpoint that is not a plain http(s)
// URL. Credentials in the URL are refused: they would land in logs and in
// the audit log.
func CheckEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
		return daoguard.Errorf(daoguard.CodeInvalid, "the decision endpoint must be an http or https URL")
	}
	if u.User != nil {
		return daoguard.Errorf(daoguard.CodeInvalid, "the decision endpoint must not carry credentials")
	}
	return nil
}

// Parallel is how many questions of a run are out at once: an agent that
// takes seconds per answer still finishes a suite in reasonable time.
const Parallel = 4

// Run asks the agent agentID at endpoint every scenario of s, in a random
// order, Parallel at a time, and scores the answers. A scenario the
// endpoint does not answer fails (NO_ANSWER): an agent that cannot be
// probed is not trusted to act alone. Run fails only on a bad endpoint or
// an ended ctx (then nothing is scored: a question cut off is not the
// agent's failure).
func (r *Runner) Run(ctx context.Context, s *Suite, endpoint, agentID string) (*Result, error) {
	if err := CheckEndpoint(endpoint); err != nil {
		return nil, err
	}
	started := time.Now()
	if r.Now != nil {
		started = r.Now()
	}
	order := make([]int, len(s.Scenarios))
	for i := range order {
		order[i] = i
	}
	mrand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	outcomes := make([]Outcome, len(s.Scenarios))
	sem := make(chan struct{}, Parallel)
	var wg sync.WaitGroup
	for _, i := range order {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c := s.Scenarios[i]
			a, err := r.Ask(ctx, endpoint, agentID, c.Situation, c.Options, c.Amount != nil)
			outcomes[i] = Judge(c, a, err)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := Score(s, outcomes)
	res.Endpoint, res.Started = RedactURL(endpoint), started
	return res, nil
}

// Ask puts one question to the agent at endpoint, signed, with the
// options in a random order, and returns its answer; an answer that is
// not JSON comes back empty (no option).
func (r *Runner) Ask(ctx context.Context, endpoint, agentID, situation string, options []string, askAmount bool) (*Answer, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	q := Question{ID: newQuestionID(), Agent: agentID, Situation: situation, Options: slices.Clone(options), AskAmount: askAmount}
	mrand.Shuffle(len(q.Options), func(i, j int) { q.Options[i], q.Options[j] = q.Options[j], q.Options[i] })
	body, err := json.Marshal(q)
	if err != nil {
		return nil, err
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := auth.SignRequest(req, body, r.Signer, now()); err != nil {
		return nil, err
	}
	hc := r.HTTP
	if hc == nil {
		hc = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the endpoint did not answer: %w", stripURL(err))
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxAnswerBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", stripURL(err))
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the endpoint answered %d", res.StatusCode)
	}
	if len(b) > maxAnswerBytes {
		return nil, fmt.Errorf("the answer is over %d bytes", maxAnswerBytes)
	}
	var a Answer
	if err := json.Unmarshal(b, &a); err != nil {
		return &Answer{}, nil // judged INVALID_ANSWER: the decision is no option
	}
	return &a, nil
}

// RedactURL keeps an endpoint's scheme, host and path: a token in its
// query stays out of results, logs and the audit log. (Keep secrets out
// of the path too: it is kept.)
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// stripURL drops the URL from a client error: the endpoint is recorded
// once, in the result, not in every outcome.
func stripURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func newQuestionID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (Go 1.24+)
	return "prq_" + base64.RawURLEncoding.EncodeToString(b[:])
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
