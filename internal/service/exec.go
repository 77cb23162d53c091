package service

import (
	"context"
	"errors"
	"time"

	"github.com/daoguard/daoguard"
)

// The execution protocol (crash-safe, replica-safe):
//
//  1. claim:   in one transaction, queued → executing with a new attempt ID
//              and a lease (owner, until); committed before any side effect.
//  2. execute: Executor.Execute(action, attempt) — idempotent per attempt.
//  3. finish:  in one transaction, executing → executed | failed with the
//              result, only if the action still carries the same attempt.
//
// A crash between 1 and 3 leaves the action executing. Reconcile finds it
// (at start for this node's own leases, later for any lease that ended),
// asks Executor.Lookup what the attempt did, and records that; only if the
// attempt provably had no effect does it call Execute again with the same
// attempt ID. Nothing is re-run blindly and nothing is dropped.

// Wake asks Run to sweep for due work now rather than at the next tick.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run reconciles interrupted executions, then expires, executes and
// reconciles due actions until ctx ends. Errors of one sweep are logged and
// retried at the next; Run returns only ctx's error.
func (s *Service) Run(ctx context.Context) error {
	if s.Prober != nil {
		for _, t := range s.Probes {
			if t.Every > 0 {
				go s.probeLoop(ctx, t)
			}
		}
	}
	if _, err := s.Reconcile(ctx, true); err != nil && ctx.Err() == nil {
		s.Logger.Error("reconcile at start", "err", err)
	}
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.Logger.Error("sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-s.wake:
		}
	}
}

// Sweep does one round of due work: expiry, execution, reconciliation of
// leases that ended.
func (s *Service) Sweep(ctx context.Context) error {
	_, err1 := s.ExpireDue(ctx)
	_, err2 := s.ExecuteDue(ctx)
	_, err3 := s.Reconcile(ctx, false)
	return errors.Join(err1, err2, err3)
}

// ExpireDue moves actions whose approval or execution window has ended to
// expired. It returns how many it expired.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	var due []*daoguard.Action
	err := s.Store.View(ctx, func(tx daoguard.Tx) (err error) {
		due, err = tx.FindActions(ctx, daoguard.ActionFilter{
			States:    []daoguard.State{daoguard.StateAwaitingApproval, daoguard.StateQueued},
			ExpiresBy: tx.Now(), Limit: s.Batch,
		})
		return err
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range due {
		expired := false
		err := s.Store.Update(ctx, func(tx daoguard.Tx) error {
			expired = false
			a, err := tx.Action(ctx, d.ID)
			if err != nil {
				return err
			}
			// Re-check under the lock: it may have been approved, executed or
			// cancelled since the read above.
			if !daoguard.CanTransition(a.State, daoguard.StateExpired) || tx.Now().Before(a.ExpiresAt) {
				return nil
			}
			expired = true
			return transition(ctx, tx, a, daoguard.StateExpired, daoguard.ActorSystem, "system", map[string]any{"expires_at": a.ExpiresAt})
		})
		if err != nil {
			return n, err
		}
		if expired {
			n++
		}
	}
	return n, nil
}

// ExecuteDue executes queued actions whose timelock has ended, unless the
// organisation is paused. It returns how many it finished.
//
// Policy actions are applied by the service itself, executor or not.
func (s *Service) ExecuteDue(ctx context.Context) (int, error) {
	var due []*daoguard.Action
	err := s.Store.View(ctx, func(tx daoguard.Tx) error {
		f := daoguard.ActionFilter{States: []daoguard.State{daoguard.StateQueued}, RunnableBy: tx.Now(), NotPaused: true, Limit: s.Batch}
		if s.Executor != nil {
			page, err := tx.FindActions(ctx, f)
			due = page
			return err
		}
		// Without an executor only policy and control actions can run:
		// asked for by kind, not found by reading past every transfer
		// that waits for an executor.
		for _, k := range []daoguard.ActionKind{daoguard.KindPolicy, daoguard.KindControl} {
			f.Kind = k
			page, err := tx.FindActions(ctx, f)
			if err != nil {
				return err
			}
			due = append(due, page...)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	// A resume runs while paused (it is what ends a pause): the paused
	// organisations' queued control actions.
	err = s.Store.View(ctx, func(tx daoguard.Tx) error {
		page, err := tx.FindActions(ctx, daoguard.ActionFilter{States: []daoguard.State{daoguard.StateQueued}, RunnableBy: tx.Now(), Paused: true, Kind: daoguard.KindControl, Limit: s.Batch})
		due = append(due, page...)
		return err
	})
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, d := range due {
		var done bool
		var err error
		switch {
		case d.Decoded.Kind == daoguard.KindControl:
			done, err = s.applyControl(ctx, d.ID)
		case d.Decoded.Kind == daoguard.KindPolicy:
			done, err = s.applyPolicy(ctx, d.ID)
		case s.Executor == nil:
			continue
		default:
			done, err = s.Execute(ctx, d.ID)
		}
		if err != nil {
			errs = append(errs, err)
		}
		if done {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// Execute runs one queued action if it is due and the organisation is not
// paused. It returns false, nil when there was nothing to do (not due,
// already claimed by another process, paused). Errors from the executor
// leave the action executing for Reconcile.
func (s *Service) Execute(ctx context.Context, actionID string) (bool, error) {
	a, err := s.claim(ctx, actionID)
	if a == nil || err != nil {
		return false, err
	}
	return s.run(ctx, a, false)
}

// claim commits queued → executing with a fresh attempt and lease. It
// returns nil when the action is not claimable now.
func (s *Service) claim(ctx context.Context, actionID string) (*daoguard.Action, error) {
	var out *daoguard.Action
	err := s.Store.Update(ctx, func(tx daoguard.Tx) error {
		out = nil
		now := tx.Now()
		a, err := tx.Action(ctx, actionID)
		if err != nil {
			return err
		}
		if a.State != daoguard.StateQueued || now.Before(a.RunnableAt) {
			return nil // someone else claimed it, it was vetoed, or it is not due
		}
		if a.Decoded.Kind == daoguard.KindPolicy || a.Decoded.Kind == daoguard.KindControl {
			return nil // daoguard applies it itself (applyPolicy, applyControl); no executor ever sees it
		}
		if !now.Before(a.ExpiresAt) {
			return nil // ExpireDue will expire it
		}
		org, err := tx.Org(ctx, a.OrgID)
		if err != nil {
			return err
		}
		if org.Paused {
			return nil
		}
		if a.Decision.RequiredApprovals == 0 {
			// Allowed to run on its own: only while its agent still may.
			// (Lowering holds such actions; this is the last check.)
			p, err := tx.Principal(ctx, a.PrincipalID)
			if err != nil {
				return err
			}
			if p.Kind == daoguard.PrincipalAgent && p.Autonomy != daoguard.AutonomyAutonomous {
				return nil
			}
		}
		a.Attempt = daoguard.NewID("att", now)
		a.LeaseOwner, a.LeaseUntil = s.Node, now.Add(s.Lease)
		if err := transition(ctx, tx, a, daoguard.StateExecuting, daoguard.ActorSystem, "system", map[string]any{"attempt": a.Attempt, "node": s.Node}); err != nil {
			return err
		}
		out = a
		return nil
	})
	return out, err
}

// run performs (or, when lookupFirst, first looks up) the claimed attempt
// and records its result.
func (s *Service) run(ctx context.Context, a *daoguard.Action, lookupFirst bool) (bool, error) {
	ectx, cancel := context.WithTimeout(ctx, s.ExecTimeout)
	defer cancel()
	var res daoguard.ExecResult
	found := false
	if lookupFirst {
		var err error
		res, found, err = s.Executor.Lookup(ectx, a, a.Attempt)
		if err != nil {
			return false, err
		}
	}
	if !found {
		var err error
		if res, err = s.Executor.Execute(ectx, a, a.Attempt); err != nil {
			s.Logger.Warn("execution outcome unknown; will reconcile", "action", a.ID, "attempt", a.Attempt, "err", err)
			return false, err
		}
	}
	return true, s.finish(ctx, a.ID, a.Attempt, res)
}

// finish records the result of an attempt: executing → executed | failed.
func (s *Service) finish(ctx context.Context, actionID, attempt string, res daoguard.ExecResult) error {
	return s.Store.Update(ctx, func(tx daoguard.Tx) error {
		a, err := tx.Action(ctx, actionID)
		if err != nil {
			return err
		}
		if a.State != daoguard.StateExecuting || a.Attempt != attempt {
			return daoguard.Errorf(daoguard.CodeConflict, "action %s is %s with attempt %s; result of attempt %s not recorded", a.ID, a.State, a.Attempt, attempt)
		}
		to := daoguard.StateFailed
		if res.Success {
			to = daoguard.StateExecuted
		}
		r := res
		a.Result = &r
		a.LeaseUntil = time.Time{}
		return transition(ctx, tx, a, to, daoguard.ActorSystem, "system", map[string]any{"attempt": attempt, "tx_hash": res.TxHash, "detail": res.Detail})
	})
}

// Reconcile settles executing actions whose process may have died: at
// start (atStart) those leased by this node, which cannot still be running,
// and at any time those whose lease ended. For each it takes over the
// lease, asks the executor what the attempt did, and records the outcome.
// While the organisation is paused it records outcomes but starts nothing.
func (s *Service) Reconcile(ctx context.Context, atStart bool) (int, error) {
	if s.Executor == nil {
		return 0, nil
	}
	var stuck []*daoguard.Action
	err := s.Store.View(ctx, func(tx daoguard.Tx) error {
		ended, err := tx.FindActions(ctx, daoguard.ActionFilter{States: []daoguard.State{daoguard.StateExecuting}, LeaseEndedBy: tx.Now(), Limit: s.Batch})
		if err != nil {
			return err
		}
		stuck = ended
		if atStart {
			all, err := tx.FindActions(ctx, daoguard.ActionFilter{States: []daoguard.State{daoguard.StateExecuting}, Limit: daoguard.MaxFindLimit})
			if err != nil {
				return err
			}
			for _, a := range all {
				if a.LeaseOwner == s.Node && !a.LeaseUntil.Before(tx.Now()) {
					stuck = append(stuck, a)
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, d := range stuck {
		a, paused, expired, err := s.takeOver(ctx, d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if a == nil {
			continue
		}
		ectx, cancel := context.WithTimeout(ctx, s.ExecTimeout)
		res, found, err := s.Executor.Lookup(ectx, a, a.Attempt)
		cancel()
		switch {
		case err != nil:
			errs = append(errs, err)
		case found:
			if err := s.finish(ctx, a.ID, a.Attempt, res); err != nil {
				errs = append(errs, err)
			} else {
				n++
			}
		case paused:
			// No effect yet, and nothing may start while paused; the lease
			// will end and a sweep after resume picks it up.
		case expired:
			// No effect yet, and its window has ended: humans approved it to
			// run by then, not weeks later after an outage. It fails unrun.
			res := daoguard.ExecResult{Success: false, Detail: "not executed: the execution window ended before it could run"}
			if err := s.finish(ctx, a.ID, a.Attempt, res); err != nil {
				errs = append(errs, err)
			} else {
				n++
			}
		default:
			if ok, err := s.run(ctx, a, false); err != nil {
				errs = append(errs, err)
			} else if ok {
				n++
			}
		}
	}
	return n, errors.Join(errs...)
}

// takeOver renews the lease of a stuck action for this node, provided it is
// still executing the same attempt and its lease really is ours or ended.
// It also reports whether the organisation is paused and whether the
// action's execution window has ended.
func (s *Service) takeOver(ctx context.Context, seen *daoguard.Action) (out *daoguard.Action, paused, expired bool, err error) {
	err = s.Store.Update(ctx, func(tx daoguard.Tx) error {
		out, paused, expired = nil, false, false
		now := tx.Now()
		a, err := tx.Action(ctx, seen.ID)
		if err != nil {
			return err
		}
		if a.State != daoguard.StateExecuting || a.Attempt != seen.Attempt || a.LeaseOwner != seen.LeaseOwner || !a.LeaseUntil.Equal(seen.LeaseUntil) {
			return nil // settled or taken over meanwhile
		}
		if a.LeaseOwner != s.Node && now.Before(a.LeaseUntil) {
			return nil
		}
		org, err := tx.Org(ctx, a.OrgID)
		if err != nil {
			return err
		}
		paused, expired = org.Paused, !now.Before(a.ExpiresAt)
		a.LeaseOwner, a.LeaseUntil = s.Node, now.Add(s.Lease)
		if err := tx.UpdateAction(ctx, a); err != nil {
			return err
		}
		out = a
		return appendEntry(ctx, tx, daoguard.ActorSystem, "system", a, "action.reconcile", map[string]any{"attempt": a.Attempt, "node": s.Node})
	})
	return out, paused, expired, err
}
