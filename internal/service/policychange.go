package service

import (
	"context"
	"fmt"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/policy"
)

// ActorOperator is the audit actor of what the operator does from the
// command line with the data directory (the root of trust).
const ActorOperator = "operator"

// LoadFirstPolicy puts the first policy of an organisation in force. It is
// the operator's bootstrap, from the command line: once a policy is in
// force, changes are actions (kind policy) that the council approves and a
// timelock delays, and this refuses.
//
// Errors: INVALID_POLICY (with every problem), CONFLICT (a policy is in
// force), NOT_FOUND (organisation).
func (s *Service) LoadFirstPolicy(ctx context.Context, orgID, source string) (*daoguard.PolicyVersion, error) {
	if _, err := policy.Parse([]byte(source)); err != nil {
		return nil, PolicyError(err)
	}
	var out *daoguard.PolicyVersion
	err := s.Store.Update(ctx, func(tx daoguard.Tx) error {
		if _, err := tx.OrgForUpdate(ctx, orgID); err != nil {
			return err
		}
		if err := lockLedger(ctx, tx, orgID); err != nil {
			return err
		}
		cur, err := tx.CurrentPolicy(ctx, orgID)
		if err != nil {
			return err
		}
		if cur != 0 {
			return &daoguard.Error{Code: daoguard.CodeConflict, Message: fmt.Sprintf("policy version %d is in force; the operator only loads the first one", cur),
				Hint: "submit the new document as an action of kind policy (POST /v1/actions or 'daoguard policy propose'): the council approves it and a timelock delays it"}
		}
		pv := &daoguard.PolicyVersion{OrgID: orgID, Version: 1, Source: source, Digest: policy.Digest([]byte(source)), By: ActorOperator}
		if err := tx.AddPolicy(ctx, pv); err != nil {
			return err
		}
		out = pv
		return tx.Append(ctx, &daoguard.AuditEntry{Time: tx.Now(), OrgID: orgID, ActorID: ActorOperator, ActorKind: "operator", Event: "policy.loaded",
			Detail: mustJSON(map[string]any{"version": 1, "digest": pv.Digest, "diff": policy.Diff("", source)})})
	})
	return out, err
}

// applyPolicy puts an approved policy action in force once its timelock has
// ended: queued → executing → executed in one transaction with the new
// version, so it happens exactly once. If another change landed after this
// one was submitted, it fails instead: the humans approved a diff against
// a version that is no longer in force.
func (s *Service) applyPolicy(ctx context.Context, actionID string) (bool, error) {
	done := false
	err := s.Store.Update(ctx, func(tx daoguard.Tx) error {
		done = false
		now := tx.Now()
		a, err := tx.Action(ctx, actionID)
		if err != nil {
			return err
		}
		if a.State != daoguard.StateQueued || now.Before(a.RunnableAt) || !now.Before(a.ExpiresAt) || a.Decoded.Policy == nil {
			return nil
		}
		org, err := tx.OrgForUpdate(ctx, a.OrgID)
		if err != nil {
			return err
		}
		if org.Paused {
			return nil
		}
		a.Attempt = daoguard.NewID("att", now)
		if err := transition(ctx, tx, a, daoguard.StateExecuting, daoguard.ActorSystem, "system", map[string]any{"attempt": a.Attempt, "node": s.Node}); err != nil {
			return err
		}
		if err := lockLedger(ctx, tx, a.OrgID); err != nil {
			return err
		}
		cur, err := tx.CurrentPolicy(ctx, a.OrgID)
		if err != nil {
			return err
		}
		res := daoguard.ExecResult{}
		_, perr := policy.Parse([]byte(a.Intent.Policy))
		switch {
		case cur != a.Decoded.Policy.Base:
			res.Detail = fmt.Sprintf("not applied: it changes version %d, but version %d is in force now; submit it again against the new version", a.Decoded.Policy.Base, cur)
		case perr != nil:
			res.Detail = "not applied: the document no longer compiles: " + perr.Error()
		default:
			pv := &daoguard.PolicyVersion{OrgID: a.OrgID, Version: cur + 1, Source: a.Intent.Policy, Digest: a.Decoded.Policy.Digest, ActionID: a.ID, By: a.PrincipalID}
			if err := tx.AddPolicy(ctx, pv); err != nil {
				return err
			}
			if err := appendEntry(ctx, tx, daoguard.ActorSystem, "system", a, "policy.applied", map[string]any{"version": pv.Version, "digest": pv.Digest, "diff": a.Decoded.Policy.Diff}); err != nil {
				return err
			}
			res = daoguard.ExecResult{Success: true, Detail: fmt.Sprintf("policy version %d is in force", pv.Version)}
		}
		to := daoguard.StateFailed
		if res.Success {
			to = daoguard.StateExecuted
		}
		a.Result = &res
		done = true
		return transition(ctx, tx, a, to, daoguard.ActorSystem, "system", map[string]any{"attempt": a.Attempt, "detail": res.Detail})
	})
	return done, err
}

// lockLedger takes the organisation's ledger lock (a tail read past every
// entry): a policy change is then ordered with every decision, which reads
// the version in force only once it holds the same lock.
func lockLedger(ctx context.Context, tx daoguard.Tx, orgID string) error {
	return tx.LockLedger(ctx, orgID)
}

// CurrentPolicy returns the policy version in force. Errors: NOT_FOUND.
func (s *Service) CurrentPolicy(ctx context.Context, orgID string) (*daoguard.PolicyVersion, error) {
	var out *daoguard.PolicyVersion
	err := s.Store.View(ctx, func(tx daoguard.Tx) (err error) {
		out, err = tx.Policy(ctx, orgID, 0)
		return err
	})
	return out, err
}

// Evaluate is a dry run: it decodes the intent and asks the decider, as a
// submission would, but records no action and adds nothing to the windows.
// The request itself is audited (who asked what, and the answer), since
// probing the policy is worth knowing about.
//
// A signed request's nonce (nil for none) is used in the transaction that
// audits the question.
//
// Errors: as Submit's validation errors, NONCE_REUSED.
func (s *Service) Evaluate(ctx context.Context, nonce *daoguard.Nonce, principalID string, in daoguard.Intent) (*daoguard.Action, error) {
	// The decision is made on a read-only snapshot: a dry run must not take
	// the ledger lock and hold up real submissions.
	pre := s.presimulate(ctx, principalID, in)
	var out *daoguard.Action
	var refused error
	var p *daoguard.Principal
	err := s.Store.View(ctx, func(tx daoguard.Tx) error {
		out, refused = nil, nil
		now := tx.Now()
		var err error
		if p, err = tx.Principal(ctx, principalID); err != nil {
			return err
		}
		org, err := tx.Org(ctx, p.OrgID)
		if err != nil {
			return err
		}
		dec, err := Decode(ctx, tx, org.ID, in)
		if err != nil {
			refused = err
			return nil
		}
		s.attach(&dec, pre)
		if err := s.describe(ctx, tx, org.ID, &dec, in.Policy); err != nil {
			return err
		}
		a := &daoguard.Action{ID: daoguard.NewID("dry", now), OrgID: org.ID, PrincipalID: p.ID, Intent: in, Decoded: dec, State: daoguard.StatePending, Created: now}
		if a.Decision, err = s.decide(ctx, daoguard.DecisionInput{Org: org, Principal: p, Action: a, Tx: tx, DryRun: true}); err != nil {
			return err
		}
		out = a
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The nonce is used whatever the answer, and the question is audited.
	err = s.Store.Update(ctx, func(tx daoguard.Tx) error {
		if nonce != nil {
			if err := nonce.Use(ctx, tx); err != nil {
				return err
			}
		}
		if refused != nil {
			return nil
		}
		if out.Decision.Verdict != daoguard.VerdictAllow {
			// A dry run that is refused or escalated is probing the
			// limits: it counts as a denial for LIMIT_PROBING.
			p, err := tx.Principal(ctx, p.ID)
			if err != nil {
				return err
			}
			if err := s.dryRunRefused(ctx, tx, p); err != nil {
				return err
			}
		}
		detail := decisionDetail(out.Decision)
		detail["request_hash"], detail["kind"] = in.Hash(), out.Decoded.Kind
		return tx.Append(ctx, &daoguard.AuditEntry{Time: tx.Now(), OrgID: out.OrgID, ActorID: p.ID, ActorKind: p.Kind.String(), Event: "policy.evaluated", Detail: mustJSON(detail)})
	})
	if err == nil {
		err = refused
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}
