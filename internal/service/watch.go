package service

import (
	"context"
	"slices"
	"strings"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/anomaly"
)

// historySize is how many of an agent's earlier actions the anomaly rules
// see.
const historySize = 1000

// Watch runs the anomaly rules on an agent's action against the agent's
// history, and trips the circuit breaker on a finding that trips: the
// agent is moved to supervised, an audited change of its autonomy whose
// reason lists the findings, which only a human can undo. Humans, agents
// already supervised and actions of no principal are left alone. It
// returns the findings.
func (s *Service) Watch(ctx context.Context, a *daoguard.Action) ([]anomaly.Finding, error) {
	if s.Anomaly == nil {
		return nil, nil
	}
	var findings []anomaly.Finding
	var agent *daoguard.Principal
	err := s.Store.View(ctx, func(tx daoguard.Tx) error {
		p, err := tx.Principal(ctx, a.PrincipalID)
		if err != nil {
			return err
		}
		if p.Kind != daoguard.PrincipalAgent || p.Autonomy != daoguard.AutonomyAutonomous {
			return nil
		}
		agent = p
		// The newest actions (ids order by millisecond only), then those
		// before this one, in time order.
		recent, err := tx.FindActions(ctx, daoguard.ActionFilter{OrgID: p.OrgID, PrincipalID: p.ID, Newest: true, Limit: historySize + 1})
		if err != nil {
			return err
		}
		findings = anomaly.Check(historyBefore(recent, a), eventOf(a), *s.Anomaly)
		return nil
	})
	if err != nil || agent == nil || !anomaly.Trips(findings) {
		return findings, err
	}
	reason := "anomaly breaker: " + anomaly.Summary(findings)
	if _, _, err := s.SetAutonomy(ctx, daoguard.ActorSystem, agent.ID, daoguard.AutonomySupervised, reason); err != nil {
		return findings, err
	}
	// The alert: operators watch for this line (and its code).
	s.Logger.Warn("anomaly breaker tripped: agent moved to supervised", "code", "ANOMALY_BREAKER", "agent", agent.ID, "action", a.ID, "findings", anomaly.Summary(findings))
	if s.Observer != nil {
		s.Observer.BreakerTripped(agent.ID, findings)
	}
	return findings, nil
}

// historyBefore is what the anomaly rules see of an agent's actions
// before a (recent newest first, as FindActions lists them), in time
// order.
func historyBefore(recent []*daoguard.Action, a *daoguard.Action) []anomaly.Event {
	history := make([]anomaly.Event, 0, len(recent))
	for i := len(recent) - 1; i >= 0; i-- {
		if r := recent[i]; r.ID != a.ID && !r.Created.After(a.Created) {
			history = append(history, eventOf(r))
		}
	}
	slices.SortStableFunc(history, func(x, y anomaly.Event) int { return x.Time.Compare(y.Time) })
	return history
}

// eventOf is what the anomaly rules see of an action.
func eventOf(a *daoguard.Action) anomaly.Event {
	e := anomaly.Event{Time: a.Created, Recipient: strings.ToLower(a.Decoded.To), Verdict: a.Decision.Verdict.String()}
	if in := a.Decision.Inputs; in != nil {
		e.NearLimit = in.NearLimit
		for _, f := range in.Flows {
			if f.USD > 0 {
				e.USD += float64(f.USD) / 1e6
			}
		}
	}
	return e
}

// watchLoop runs Watch on submissions handed to it, after they commit,
// until ctx ends. A full queue drops the check rather than slow
// submissions; the next submission's check sees the dropped one in its
// history.
func (s *Service) watchLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-s.watchQ:
			if _, err := s.Watch(ctx, a); err != nil && ctx.Err() == nil {
				s.Logger.Error("anomaly check failed", "action", a.ID, "err", err)
			}
		}
	}
}
