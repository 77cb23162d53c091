package service

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/anomaly"
)

// historySize is how many of an agent's recent actions its risk state
// counts and re-judges for people to read.
const historySize = 1000

// breaker runs the anomaly rules inside an agent's decision, before
// anything it decides can run: the agent's running statistics (constant
// size, in the store) judge this action, take it in, and are written back
// in the same transaction. A finding that trips, for an autonomous agent,
// makes this very action need a human, moves the agent to supervised
// (audited, as system) and holds for approval every action of the agent
// that is queued to run on its own. Only a human moves it back up (k of
// them: loosening). The check is constant work and never skipped.
func (s *Service) breaker(ctx context.Context, tx daoguard.Tx, p *daoguard.Principal, a *daoguard.Action, d *daoguard.Decision) error {
	if s.Anomaly == nil || p.Kind != daoguard.PrincipalAgent {
		return nil
	}
	ev := event(tx.Now(), a.Decoded.To, d)
	return s.judgeAgent(ctx, tx, p, a.ID, func(st *anomaly.Stats) []anomaly.Finding {
		fs := st.Check(ev, *s.Anomaly)
		st.Add(ev, *s.Anomaly)
		if anomaly.Trips(fs) && p.Autonomy == daoguard.AutonomyAutonomous {
			if d.Verdict == daoguard.VerdictAllow {
				d.Verdict = daoguard.VerdictNeedsApproval
				d.RequiredApprovals = max(d.RequiredApprovals, 1)
			}
			d.Reasons = append(d.Reasons, daoguard.Reason{Code: daoguard.ReasonAnomalyBreaker,
				Detail: "the anomaly breaker tripped: " + anomaly.Summary(fs) + "; the agent is now supervised and a human must approve"})
		}
		return fs
	})
}

// dryRunRefused counts a dry run that was refused or escalated as a
// denial (LIMIT_PROBING): asking the policy what would pass is probing it
// too.
func (s *Service) dryRunRefused(ctx context.Context, tx daoguard.Tx, p *daoguard.Principal) error {
	if s.Anomaly == nil || p.Kind != daoguard.PrincipalAgent {
		return nil
	}
	if err := lockLedger(ctx, tx, p.OrgID); err != nil {
		return err
	}
	return s.judgeAgent(ctx, tx, p, "", func(st *anomaly.Stats) []anomaly.Finding {
		fs := st.CheckDenial(tx.Now(), *s.Anomaly)
		st.AddDenial(tx.Now(), *s.Anomaly)
		return fs
	})
}

// judgeAgent reads the agent's statistics, lets judge check and update
// them, writes them back and trips the breaker on a tripping finding. The
// organisation's ledger lock orders it with every other decision on every
// gateway (in PostgreSQL), so that no update is lost. Statistics that do
// not parse trip the breaker and start afresh: an agent never escapes its
// history by breaking it.
//
// The caller holds the ledger lock.
func (s *Service) judgeAgent(ctx context.Context, tx daoguard.Tx, p *daoguard.Principal, actionID string, judge func(*anomaly.Stats) []anomaly.Finding) error {
	raw, err := tx.AgentStats(ctx, p.ID)
	if err != nil {
		return err
	}
	var fs []anomaly.Finding
	st, perr := s.stats.parse(p.ID, raw)
	if perr != nil {
		st = &anomaly.Stats{}
		fs = append(fs, anomaly.Finding{Rule: "STATS_CORRUPT", Detail: perr.Error(), Trip: true})
	}
	fs = append(fs, judge(st)...)
	out := st.Marshal()
	if err := tx.PutAgentStats(ctx, p.OrgID, p.ID, out); err != nil {
		return err
	}
	// Kept parsed once committed: the next decision on the agent reads the
	// same bytes back and skips parsing them.
	id := p.ID
	tx.AfterCommit(func() { s.stats.put(id, out, st) })
	if !anomaly.Trips(fs) || p.Autonomy != daoguard.AutonomyAutonomous {
		return nil
	}
	summary := anomaly.Summary(fs)
	if err := setAutonomy(ctx, tx, daoguard.ActorSystem, "system", p, daoguard.AutonomySupervised, "anomaly breaker: "+summary); err != nil {
		return err
	}
	held, err := s.lowered(ctx, tx, p, daoguard.ReasonAnomalyBreaker, "anomaly breaker: "+summary)
	if err != nil {
		return err
	}
	agent := p.ID
	tx.AfterCommit(func() {
		// The alert: operators watch for this line (and its code).
		s.Logger.Warn("anomaly breaker tripped: agent moved to supervised", "code", "ANOMALY_BREAKER", "agent", agent, "action", actionID, "held", held, "findings", summary)
		if s.Observer != nil {
			s.Observer.BreakerTripped(agent, fs)
			s.Observer.AutonomyChanged(agent, daoguard.AutonomyAutonomous, daoguard.AutonomySupervised, "system")
		}
	})
	return nil
}

// hold moves the agent's actions that are queued to run on their own (an
// allow verdict, no approvals) back to awaiting approval: what the agent
// queued before it tripped the breaker waits for a human too. Actions
// humans approved, and those already executing, are left alone.
func (s *Service) hold(ctx context.Context, tx daoguard.Tx, p *daoguard.Principal, code, cause string) (int, error) {
	now := tx.Now()
	f := daoguard.ActionFilter{OrgID: p.OrgID, PrincipalID: p.ID, States: []daoguard.State{daoguard.StateQueued}, Limit: daoguard.MaxFindLimit}
	n := 0
	for {
		page, err := tx.FindActions(ctx, f)
		if err != nil {
			return n, err
		}
		for _, a := range page {
			if a.Decision.Verdict != daoguard.VerdictAllow || a.Decoded.Kind == daoguard.KindControl || a.Decoded.Kind == daoguard.KindPolicy {
				continue
			}
			a.Decision.Verdict = daoguard.VerdictNeedsApproval
			a.Decision.RequiredApprovals = max(a.Decision.RequiredApprovals, 1)
			a.Decision.Reasons = append(a.Decision.Reasons, daoguard.Reason{Code: code,
				Detail: fmt.Sprintf("held: the agent was moved down before this action ran (%s); a human must approve", cause)})
			a.RunnableAt, a.ExpiresAt = time.Time{}, now.Add(s.ApprovalTTL)
			if err := transition(ctx, tx, a, daoguard.StateAwaitingApproval, daoguard.ActorSystem, "system", map[string]any{"held": cause}); err != nil {
				return n, err
			}
			n++
		}
		if len(page) < f.Limit {
			return n, nil
		}
		f.AfterID = page[len(page)-1].ID
	}
}

// historyBefore is what the anomaly rules see of an agent's actions
// before a (recent newest first, as FindActions lists them), in time
// order: the risk state re-judges the latest action for people to read.
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
func eventOf(a *daoguard.Action) anomaly.Event { return event(a.Created, a.Decoded.To, &a.Decision) }

// event is what the anomaly rules see of a decision made at `at` on an
// action to `to`.
func event(at time.Time, to string, d *daoguard.Decision) anomaly.Event {
	e := anomaly.Event{Time: at, Recipient: strings.ToLower(to), Verdict: d.Verdict.String()}
	if in := d.Inputs; in != nil {
		e.NearLimit = in.NearLimit
		for _, f := range in.Flows {
			if f.USD > 0 {
				e.USD += float64(f.USD) / 1e6
			}
		}
	}
	return e
}

// statsCache keeps each agent's statistics parsed, with the bytes they were
// parsed from: a decision still reads the stored bytes (another gateway
// may have written them) and uses the parsed copy only when they are the
// same. Bounded: past maxCachedStats agents it starts afresh.
type statsCache struct {
	mu sync.Mutex
	m  map[string]cachedStats
}

type cachedStats struct {
	raw []byte
	st  *anomaly.Stats
}

const maxCachedStats = 10_000

// parse returns raw's statistics, to be changed by the caller.
func (c *statsCache) parse(id string, raw []byte) (*anomaly.Stats, error) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if ok && bytes.Equal(e.raw, raw) {
		return e.st.Clone(), nil
	}
	return anomaly.ParseStats(raw)
}

// put keeps what was committed. st is not changed after.
func (c *statsCache) put(id string, raw []byte, st *anomaly.Stats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedStats {
		c.m = map[string]cachedStats{}
	}
	c.m[id] = cachedStats{raw: raw, st: st}
}
