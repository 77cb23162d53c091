// Package alert posts the risk controls' alerts to an operator's webhook:
// the anomaly breaker tripping, an agent failing its alignment probes, a
// human moving an agent back up. Each alert is a JSON POST signed with
// daoguard's outgoing key (RFC 9421, the API's profile; `daoguard probe
// key` prints it), so the receiver can tell it from a forgery.
//
// Delivery is best effort: a bounded queue, a few retries, then the alert
// is dropped and counted. The audit log, not the webhook, is the record;
// every alert names the entry's event so the receiver can look it up.
package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/anomaly"
	"github.com/daoguard/daoguard/internal/auth"
	"github.com/daoguard/daoguard/internal/service"
)

// Alert kinds.
const (
	KindBreaker     = "anomaly_breaker" // an agent moved to supervised by the anomaly breaker
	KindProbeFailed = "probe_failed"    // an agent failed an alignment probe suite
	KindRaised      = "autonomy_raised" // a human moved an agent up (a breaker or probe reset)
)

// Alert is the body of one POST.
type Alert struct {
	Kind     string            `json:"kind"`
	Agent    string            `json:"agent"`
	Time     time.Time         `json:"time"`
	Summary  string            `json:"summary"`
	Findings []anomaly.Finding `json:"findings,omitempty"`
	Probe    *ProbeSummary     `json:"probe,omitempty"`
	Autonomy daoguard.Autonomy `json:"autonomy,omitempty"` // the agent's level after the event
}

// ProbeSummary is a failed run, as the alert carries it.
type ProbeSummary struct {
	Suite          string   `json:"suite"`
	Score          float64  `json:"score"`
	Threshold      float64  `json:"threshold"`
	CriticalFailed []string `json:"critical_failed,omitempty"`
	LogIndex       uint64   `json:"log_index"`
}

// Sender queues alerts and posts them from Run.
type Sender struct {
	URL    string
	Signer auth.Signer
	Logger *slog.Logger
	// Count, if set, is told each alert's fate: "sent", "failed" (after
	// the retries) or "dropped" (the queue was full).
	Count   func(result string)
	HTTP    *http.Client
	Retries int           // default 3
	Backoff time.Duration // first retry's wait, doubled each time; default 1s
	Now     func() time.Time

	q chan Alert
}

var _ service.Observer = (*Sender)(nil)

// NewSender returns a sender to url signing with s.
func NewSender(url string, s auth.Signer, log *slog.Logger) *Sender {
	return &Sender{URL: url, Signer: s, Logger: log, Retries: 3, Backoff: time.Second, Now: time.Now, q: make(chan Alert, 256),
		HTTP: &http.Client{Timeout: 10 * time.Second,
			// A redirect would carry the signed alert elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (s *Sender) count(result string) {
	if s.Count != nil {
		s.Count(result)
	}
}

func (s *Sender) offer(a Alert) {
	a.Time = s.Now().UTC()
	select {
	case s.q <- a:
	default:
		s.count("dropped")
		s.Logger.Warn("alert dropped: queue full", "kind", a.Kind, "agent", a.Agent)
	}
}

func (s *Sender) Decided(*daoguard.Action) {}

func (s *Sender) BreakerTripped(agentID string, f []anomaly.Finding) {
	s.offer(Alert{Kind: KindBreaker, Agent: agentID, Summary: "anomaly breaker: " + anomaly.Summary(f), Findings: f, Autonomy: daoguard.AutonomySupervised})
}

func (s *Sender) ProbeRan(run *service.ProbeRun) {
	if run.Passed {
		return
	}
	s.offer(Alert{Kind: KindProbeFailed, Agent: run.Agent, Summary: "alignment probes: " + run.Summary(), Autonomy: run.Autonomy,
		Probe: &ProbeSummary{Suite: run.Suite, Score: run.Score, Threshold: run.Threshold, CriticalFailed: run.CriticalFailed, LogIndex: run.LogIndex}})
}

func (s *Sender) AutonomyChanged(agentID string, from, to daoguard.Autonomy, actorKind string) {
	if to > from && actorKind == "human" {
		s.offer(Alert{Kind: KindRaised, Agent: agentID, Summary: fmt.Sprintf("a human moved the agent from %s to %s", from, to), Autonomy: to})
	}
}

// Run posts queued alerts until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-s.q:
			if err := s.send(ctx, a); err != nil {
				s.count("failed")
				s.Logger.Warn("alert not delivered", "kind", a.Kind, "agent", a.Agent, "err", err)
			} else {
				s.count("sent")
			}
		}
	}
}

func (s *Sender) send(ctx context.Context, a Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	wait := s.Backoff
	for try := 0; ; try++ {
		err = s.post(ctx, body)
		if err == nil || try >= s.Retries {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func (s *Sender) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := auth.SignRequest(req, body, s.Signer, s.Now()); err != nil {
		return err
	}
	res, err := s.HTTP.Do(req)
	if ue, ok := err.(*url.Error); ok {
		return ue.Err // without the URL: a token in its query stays out of the log
	} else if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("the webhook answered %s", res.Status)
	}
	return nil
}
