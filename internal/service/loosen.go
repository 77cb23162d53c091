package service

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/daoguard/daoguard"
)

// Loosening is what undoing a protection takes. Tightening — pausing the
// organisation, lowering an agent's autonomy — is instant and needs one
// human: a kill switch that waits for a quorum is no kill switch. Loosening
// — resuming, raising an agent back up — is an action of kind control that
// needs Approvals distinct humans (the one who asks counts as the first)
// and then waits Timelock, during which any human may veto it; a single
// stolen human key can then never undo what another human pulled.
type Loosening struct {
	// Approvals is k. Whatever it says, it is at least 2 while the
	// organisation has two or more humans, and at most the number of
	// humans it has (so that a small organisation is never locked out).
	Approvals int
	Timelock  time.Duration
}

// DefaultLoosening: two humans, no delay.
var DefaultLoosening = Loosening{Approvals: 2}

// loosening returns k and the timelock for orgID.
func (s *Service) loosening(ctx context.Context, tx daoguard.Tx, orgID string) (int, time.Duration, error) {
	ps, err := tx.Principals(ctx, orgID)
	if err != nil {
		return 0, 0, err
	}
	humans := 0
	for _, p := range ps {
		if p.IsHuman() {
			humans++
		}
	}
	k := max(s.Loosening.Approvals, min(2, humans))
	k = max(1, min(k, humans))
	return k, s.Loosening.Timelock, nil
}

// openControl returns the organisation's open (awaiting approval or
// queued) control action doing c, or nil.
func openControl(ctx context.Context, tx daoguard.Tx, orgID string, c daoguard.Control) (*daoguard.Action, error) {
	f := daoguard.ActionFilter{OrgID: orgID, States: []daoguard.State{daoguard.StateAwaitingApproval, daoguard.StateQueued}, Limit: daoguard.MaxFindLimit}
	for {
		page, err := tx.FindActions(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, a := range page {
			if x := a.Decoded.Control; a.Decoded.Kind == daoguard.KindControl && x != nil && x.Op == c.Op && x.Agent == c.Agent && x.Level == c.Level {
				return a, nil
			}
		}
		if len(page) < f.Limit {
			return nil, nil
		}
		f.AfterID = page[len(page)-1].ID
	}
}

// requestLoosening returns the open control action doing c, creating it
// (with p's approval as the first) if there is none, and whether p should
// now vote on an existing one. The caller holds the lock on what c changes
// (OrgForUpdate, PrincipalForUpdate), so that two humans asking at once
// make one request, not two.
func (s *Service) requestLoosening(ctx context.Context, tx daoguard.Tx, p *daoguard.Principal, c daoguard.Control, reason string) (a *daoguard.Action, vote bool, err error) {
	if len(reason) > maxRationaleLen {
		return nil, false, daoguard.FieldError(daoguard.CodeInvalid, "reason", "reason is longer than %d bytes", maxRationaleLen)
	}
	open, err := openControl(ctx, tx, p.OrgID, c)
	if err != nil {
		return nil, false, err
	}
	if open != nil {
		if open.State != daoguard.StateAwaitingApproval || open.PrincipalID == p.ID {
			return open, false, nil
		}
		aps, err := tx.Approvals(ctx, open.ID)
		if err != nil {
			return nil, false, err
		}
		voted := slices.ContainsFunc(aps, func(ap daoguard.Approval) bool { return ap.PrincipalID == p.ID })
		return open, !voted, nil
	}
	k, timelock, err := s.loosening(ctx, tx, p.OrgID)
	if err != nil {
		return nil, false, err
	}
	now := tx.Now()
	what := "resuming the organisation"
	if c.Op == daoguard.ControlAutonomy {
		what = fmt.Sprintf("raising agent %s from %s to %s", c.Agent, c.From, c.Level)
	}
	a = &daoguard.Action{
		ID: daoguard.NewID("act", now), OrgID: p.OrgID, PrincipalID: p.ID,
		Intent:  daoguard.Intent{Kind: daoguard.KindControl.String(), Rationale: reason},
		Decoded: daoguard.Decoded{Kind: daoguard.KindControl, Control: &c},
		State:   daoguard.StatePending,
		Decision: daoguard.Decision{
			Verdict: daoguard.VerdictNeedsApproval, Tier: "loosening", RequiredApprovals: k, Timelock: timelock,
			Reasons: []daoguard.Reason{{Code: daoguard.ReasonLoosening,
				Detail:    fmt.Sprintf("%s loosens a protection: %d humans must approve (the one who asks counts) and a %s timelock follows, during which any human may veto", what, k, timelock),
				WouldPass: "another human approves: the same command, or approve this action"}},
		},
	}
	a.RequestHash = a.Intent.Hash()
	to := daoguard.StateAwaitingApproval
	a.ExpiresAt = now.Add(s.ApprovalTTL)
	if k <= 1 {
		to = daoguard.StateQueued
		a.RunnableAt = now.Add(timelock)
		a.ExpiresAt = a.RunnableAt.Add(s.ExecutionGrace)
	}
	a.State = to
	if err := tx.CreateAction(ctx, a); err != nil {
		return nil, false, err
	}
	if err := appendEntry(ctx, tx, p.ID, "human", a, "action.submitted", map[string]any{"request_hash": a.RequestHash, "kind": a.Decoded.Kind, "control": c}); err != nil {
		return nil, false, err
	}
	if err := appendEntry(ctx, tx, p.ID, "human", a, "action."+to.String(), decisionDetail(a.Decision)); err != nil {
		return nil, false, err
	}
	// Asking is the asker's approval.
	if err := tx.AddApproval(ctx, &daoguard.Approval{ActionID: a.ID, PrincipalID: p.ID, Approve: true, Comment: reason, Created: now}); err != nil {
		return nil, false, err
	}
	return a, false, appendEntry(ctx, tx, p.ID, "human", a, "action.approval", map[string]any{"signed": false, "requester": true})
}

// lowered follows an agent's move down (by a human, the breaker or the
// probes): what it queued to run on its own is held for approval, and any
// open request to raise it is cancelled (it was asked for before the
// reason to lower it). cause names what lowered it.
func (s *Service) lowered(ctx context.Context, tx daoguard.Tx, agent *daoguard.Principal, code, cause string) (int, error) {
	held, err := s.hold(ctx, tx, agent, code, cause)
	if err != nil {
		return held, err
	}
	f := daoguard.ActionFilter{OrgID: agent.OrgID, States: []daoguard.State{daoguard.StateAwaitingApproval, daoguard.StateQueued}, Limit: daoguard.MaxFindLimit}
	for {
		page, err := tx.FindActions(ctx, f)
		if err != nil {
			return held, err
		}
		for _, a := range page {
			if c := a.Decoded.Control; a.Decoded.Kind == daoguard.KindControl && c != nil && c.Op == daoguard.ControlAutonomy && c.Agent == agent.ID {
				if err := transition(ctx, tx, a, daoguard.StateCancelled, daoguard.ActorSystem, "system", map[string]any{"reason": "the agent was lowered since: " + cause}); err != nil {
					return held, err
				}
			}
		}
		if len(page) < f.Limit {
			return held, nil
		}
		f.AfterID = page[len(page)-1].ID
	}
}

// settleLoosening votes for a when asked to, and applies it at once if it
// is queued and due: with no timelock, the last approval resumes.
func (s *Service) settleLoosening(ctx context.Context, principalID string, a *daoguard.Action, vote bool, reason string) (*daoguard.Action, error) {
	if vote {
		var err error
		if a, err = s.vote(ctx, principalID, a.ID, true, "", reason); err != nil {
			return nil, err
		}
	}
	if a.State == daoguard.StateQueued {
		if _, err := s.applyControl(ctx, a.ID); err != nil {
			return nil, err
		}
		var err error
		if a, _, err = s.Action(ctx, principalID, a.ID); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// applyControl applies an approved control action once its timelock has
// ended, paused or not (resuming is what it is for): queued → executing →
// executed in one transaction with the change, so it happens exactly once.
func (s *Service) applyControl(ctx context.Context, actionID string) (bool, error) {
	done := false
	var changed *daoguard.Principal
	var from daoguard.Autonomy
	err := s.Store.Update(ctx, func(tx daoguard.Tx) error {
		done, changed = false, nil
		now := tx.Now()
		a, err := tx.Action(ctx, actionID)
		if err != nil {
			return err
		}
		c := a.Decoded.Control
		if a.State != daoguard.StateQueued || now.Before(a.RunnableAt) || !now.Before(a.ExpiresAt) || c == nil {
			return nil
		}
		a.Attempt = daoguard.NewID("att", now)
		if err := transition(ctx, tx, a, daoguard.StateExecuting, daoguard.ActorSystem, "system", map[string]any{"attempt": a.Attempt, "node": s.Node}); err != nil {
			return err
		}
		aps, err := tx.Approvals(ctx, a.ID)
		if err != nil {
			return err
		}
		var by []string
		for _, ap := range aps {
			if ap.Approve {
				by = append(by, ap.PrincipalID)
			}
		}
		res := daoguard.ExecResult{Success: true}
		switch c.Op {
		case daoguard.ControlResume:
			org, err := tx.OrgForUpdate(ctx, a.OrgID)
			if err != nil {
				return err
			}
			if !org.Paused {
				res.Detail = "the organisation was not paused any more"
				break
			}
			org.Paused, org.PausedBy, org.PausedAt = false, a.PrincipalID, now
			if err := tx.PutOrg(ctx, org); err != nil {
				return err
			}
			if err := appendEntry(ctx, tx, a.PrincipalID, "human", &daoguard.Action{OrgID: org.ID}, "org.resumed", map[string]any{"reason": a.Intent.Rationale, "action": a.ID, "approved_by": by}); err != nil {
				return err
			}
			res.Detail = "the organisation is resumed"
		case daoguard.ControlAutonomy:
			agent, err := tx.PrincipalForUpdate(ctx, c.Agent)
			if err != nil {
				return err
			}
			if agent.Autonomy >= c.Level {
				res.Detail = fmt.Sprintf("agent %s was already %s", agent.ID, agent.Autonomy)
				break
			}
			if agent.Autonomy != c.From {
				// Lowered again since the request (a trip, a suspension):
				// the humans approved raising it from another level.
				res = daoguard.ExecResult{Detail: fmt.Sprintf("not applied: agent %s is %s now, not %s as when the raise was asked for; ask again", agent.ID, agent.Autonomy, c.From)}
				break
			}
			from = agent.Autonomy
			if err := setAutonomy(ctx, tx, a.PrincipalID, "human", agent, c.Level, fmt.Sprintf("%s (action %s, approved by %v)", a.Intent.Rationale, a.ID, by)); err != nil {
				return err
			}
			changed = agent
			res.Detail = fmt.Sprintf("agent %s is %s", agent.ID, agent.Autonomy)
		default:
			res = daoguard.ExecResult{Detail: "unknown control " + c.Op}
		}
		to := daoguard.StateExecuted
		if !res.Success {
			to = daoguard.StateFailed
		}
		a.Result = &res
		done = true
		return transition(ctx, tx, a, to, daoguard.ActorSystem, "system", map[string]any{"attempt": a.Attempt, "detail": res.Detail})
	})
	if err == nil && changed != nil && s.Observer != nil {
		s.Observer.AutonomyChanged(changed.ID, from, changed.Autonomy, "human")
	}
	if err == nil && done {
		s.Wake()
	}
	return done, err
}
