// Package service is the gateway's one straight path: it runs each request
// through the pipeline stages in order (validate and decode, decide, record)
// and owns every authorization rule that is not a scope check. Stores only
// persist; they never decide who may do what.
package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/anomaly"
	"github.com/daoguard/daoguard/internal/decider"
	"github.com/daoguard/daoguard/internal/policy"
	"github.com/daoguard/daoguard/internal/probe"
	"github.com/daoguard/daoguard/internal/screen"
	"github.com/daoguard/daoguard/internal/secrets"
	"golang.org/x/mod/sumdb/note"
)

// Defaults copied into a new Service; change the exported fields before use.
const (
	DefaultApprovalTTL    = 72 * time.Hour      // an escalated action waits this long for its approvals
	DefaultExecutionGrace = 14 * 24 * time.Hour // a queued action must run within this after its timelock (Compound's grace period)
	DefaultLease          = 5 * time.Minute     // how long one process owns an executing action before another may reconcile it
	DefaultExecTimeout    = 2 * time.Minute     // bound on one Execute or Lookup call; must stay below the lease
	DefaultInterval       = time.Second         // how often Run sweeps for due work
	DefaultBatch          = 100                 // actions handled per sweep
)

// Service runs the action pipeline over a Store, a Decider and an Executor.
type Service struct {
	Store    daoguard.Store
	Decider  daoguard.Decider
	Executor daoguard.Executor // nil: nothing executes (queued actions wait)
	Node     string            // this process's name in execution leases; unique per process
	Logger   *slog.Logger

	// Simulator, if set, runs every transfer and call on the chain before
	// it is decided; policy judges what the simulation saw.
	Simulator       Simulator
	SimulateTimeout time.Duration
	// Signatures, if set, checks the owner signature an approval of a Safe
	// action must carry.
	Signatures OwnerSignatures
	// Contracts are the configured contracts' ABIs: each call action's
	// calls are decoded with them (and the standard ones) for approvers.
	// The policy decider (decider.Policy) needs the same registry to judge opaque calldata.
	Contracts *policy.Registry

	// AuditSigner signs checkpoints of the audit log on demand (a proof
	// of an entry the latest checkpoint does not cover yet);
	// AuditVerifier checks the stored ones. Without them the audit proof
	// endpoints are UNAVAILABLE.
	AuditSigner   note.Signer
	AuditVerifier note.Verifier
	ckMu          sync.Mutex // one checkpoint signing at a time
	// Published, if set, is handed every checkpoint this service signs,
	// to publish outside the database (its errors are its own to log).
	Published func(ctx context.Context, note []byte)

	Keyring     *secrets.Keyring // seals hmac secrets of new credentials
	Environment string           // "test" | "live": the environment of new credentials

	ApprovalTTL    time.Duration
	ExecutionGrace time.Duration
	// Loosening is what resuming a pause or raising an agent's autonomy
	// takes (see loosen.go).
	Loosening   Loosening
	Lease       time.Duration
	ExecTimeout time.Duration
	Interval    time.Duration
	Batch       int

	// Anomaly, if set, runs the anomaly rules on every agent submission
	// after it commits (Watch); a tripping finding moves the agent to
	// supervised.
	Anomaly *anomaly.Config

	// Prober puts alignment probe suites to agents' decision endpoints:
	// Probes on their schedules (Run) and on demand (RunProbes).
	Prober *probe.Runner
	Probes []ProbeTarget

	// Observer, if set, is told of decisions, breaker trips, probe runs
	// and autonomy changes, after they commit (metrics, alerts).
	Observer Observer

	wake  chan struct{}
	stats statsCache // the anomaly breaker's statistics, parsed
}

// New returns a Service with the defaults.
func New(store daoguard.Store, decider daoguard.Decider, exec daoguard.Executor, node string) *Service {
	return &Service{
		Store: store, Decider: decider, Executor: exec, Node: node,
		Logger:          slog.Default(),
		ApprovalTTL:     DefaultApprovalTTL,
		ExecutionGrace:  DefaultExecutionGrace,
		Loosening:       DefaultLoosening,
		Lease:           DefaultLease,
		ExecTimeout:     DefaultExecTimeout,
		SimulateTimeout: DefaultSimulateTimeout,
		Interval:        DefaultInterval,
		Batch:           DefaultBatch,
		wake:            make(chan struct{}, 1),
	}
}

// Submit runs one intent through the pipeline: it validates and decodes it,
// asks the decider, and records the action in its resulting state, all in
// one transaction with the audit entries. A repeated idempotency key returns
// the original action unchanged.
//
// Errors: NOT_FOUND (principal), ORG_PAUSED and AGENT_SUSPENDED (agents),
// IDEMPOTENCY_MISMATCH, INVALID_ARGUMENT, INVALID_AMOUNT, UNKNOWN_ACCOUNT,
// UNKNOWN_ASSET.
func (s *Service) Submit(ctx context.Context, principalID, idemKey string, in daoguard.Intent) (*daoguard.Action, error) {
	return s.SubmitSigned(ctx, nil, principalID, idemKey, in)
}

// SubmitSigned is Submit for a signed request: the request's nonce is used
// as the first step of the same transaction. If it was used before (a
// replay: NONCE_REUSED), nothing changes. If the pipeline refuses the
// intent before writing anything (bad input, kill switch, suspended
// agent), the nonce's use still commits, so that the refused request
// cannot be replayed later, when it might pass. One transaction instead of
// two saves a durable commit per submission. A nil nonce is Submit.
func (s *Service) SubmitSigned(ctx context.Context, nonce *daoguard.Nonce, principalID, idemKey string, in daoguard.Intent) (*daoguard.Action, error) {
	if err := checkIdempotencyKey(idemKey); err != nil {
		return nil, err
	}
	pre := s.presimulate(ctx, principalID, in)
	var out *daoguard.Action
	var refused error
	err := s.Store.Update(ctx, func(tx daoguard.Tx) error {
		out, refused = nil, nil
		if nonce != nil {
			if err := nonce.Use(ctx, tx); err != nil {
				return err
			}
		}
		a, wrote, err := s.submit(ctx, tx, principalID, idemKey, in, pre)
		if err != nil && nonce != nil && !wrote && daoguard.ErrorCode(err) != daoguard.CodeInternal && daoguard.ErrorCode(err) != daoguard.CodeUnavailable {
			refused = err
			return nil
		}
		out = a
		return err
	})
	if err == nil {
		err = refused
	}
	if err != nil {
		return nil, err
	}
	if out.State == daoguard.StateQueued {
		s.Wake()
	}
	if s.Observer != nil && out.Logged != nil { // a new action, not a replay
		s.Observer.Decided(out)
	}
	return out, nil
}

// submit is Submit's unit of work. wrote reports whether it wrote anything
// before failing.
func (s *Service) submit(ctx context.Context, tx daoguard.Tx, principalID, idemKey string, in daoguard.Intent, pre *presim) (out *daoguard.Action, wrote bool, err error) {
	{
		now := tx.Now()
		p, err := tx.Principal(ctx, principalID)
		if err != nil {
			return nil, false, err
		}
		if idemKey != "" {
			if a, err := replay(ctx, tx, p.ID, idemKey, in); a != nil || err != nil {
				return a, false, err
			}
		}
		org, err := tx.Org(ctx, p.OrgID)
		if err != nil {
			return nil, false, err
		}
		if p.Kind == daoguard.PrincipalAgent {
			if org.Paused {
				return nil, false, &daoguard.Error{Code: daoguard.CodeOrgPaused, Message: "the organisation is paused; agent submissions are refused", Hint: "a human must resume it"}
			}
			if p.Autonomy == daoguard.AutonomySuspended || !p.Autonomy.Valid() {
				return nil, false, daoguard.Errorf(daoguard.CodeAgentSuspended, "agent %s is suspended", p.ID)
			}
		}
		dec, err := Decode(ctx, tx, org.ID, in)
		if err != nil {
			return nil, false, err
		}
		s.attach(&dec, pre)
		if err := s.describe(ctx, tx, org.ID, &dec, in.Policy); err != nil {
			return nil, false, err
		}
		a := &daoguard.Action{
			ID: daoguard.NewID("act", now), OrgID: org.ID, PrincipalID: p.ID,
			IdempotencyKey: idemKey, RequestHash: in.Hash(),
			Intent: in, Decoded: dec, State: daoguard.StatePending,
		}
		if a.Decision, err = s.decide(ctx, daoguard.DecisionInput{Org: org, Principal: p, Action: a, Tx: tx}); err != nil {
			return nil, false, err
		}
		to := daoguard.StateDenied
		switch a.Decision.Verdict {
		case daoguard.VerdictAllow:
			to = daoguard.StateQueued
			a.RunnableAt = now.Add(a.Decision.Timelock)
			a.ExpiresAt = a.RunnableAt.Add(s.ExecutionGrace)
		case daoguard.VerdictNeedsApproval:
			to = daoguard.StateAwaitingApproval
			a.ExpiresAt = now.Add(s.ApprovalTTL)
		}
		// The action is written once, already in the state its decision
		// gives; both steps (submitted, then decided) are in the audit log.
		if err := daoguard.CheckTransition(a.State, to); err != nil {
			return nil, false, err
		}
		a.State = to
		if err := tx.CreateAction(ctx, a); err != nil {
			if daoguard.IsIdempotencyKeyUsed(err) { // lost a race with a concurrent twin
				out, err = replay(ctx, tx, p.ID, idemKey, in)
				return out, false, err
			}
			return nil, true, err
		}
		if to != daoguard.StateDenied {
			// What goes ahead counts against the windows from now on, also
			// while it waits for approval (queueing many small requests
			// must not get around a window), and holds what it can move.
			if a.Decision.Counts {
				if err := s.addLedgerEntry(ctx, tx, p, a); err != nil {
					return nil, true, err
				}
			}
			if err := tx.AddReservations(ctx, reservations(a)); err != nil {
				return nil, true, err
			}
		}
		if err := appendEntry(ctx, tx, p.ID, p.Kind.String(), a, "action.submitted", map[string]any{"request_hash": a.RequestHash, "kind": dec.Kind, "account": dec.Account}); err != nil {
			return nil, true, err
		}
		if err := appendEntry(ctx, tx, p.ID, p.Kind.String(), a, "action."+to.String(), decisionDetail(a.Decision)); err != nil {
			return nil, true, err
		}
		return a, true, nil
	}
}

// addLedgerEntry records the window ledger entry of action a, which goes
// ahead, and tells a decider that keeps the ledger in memory.
func (s *Service) addLedgerEntry(ctx context.Context, tx daoguard.Tx, p *daoguard.Principal, a *daoguard.Action) error {
	e := &daoguard.LedgerEntry{OrgID: a.OrgID, ActionID: a.ID, PrincipalID: p.ID,
		Agent: p.Kind == daoguard.PrincipalAgent, Roles: p.Roles, Flows: []daoguard.Flow{}}
	if a.Decision.Inputs != nil && a.Decision.Inputs.Flows != nil {
		e.Flows = a.Decision.Inputs.Flows
	}
	if err := tx.AddLedgerEntry(ctx, e); err != nil {
		return err
	}
	if k, ok := s.Decider.(daoguard.LedgerKeeper); ok {
		k.Added(tx, *e, a.Decision.LedgerSeq)
	}
	return nil
}

// checkIdempotencyKey allows up to 255 printable ASCII characters: a key is
// an opaque client token, and anything else (control bytes, NUL) is either a
// bug or an attempt to confuse logs and storage.
func checkIdempotencyKey(k string) error {
	if len(k) > 255 {
		return daoguard.FieldError(daoguard.CodeInvalid, "Idempotency-Key", "idempotency key is longer than 255 bytes")
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return daoguard.FieldError(daoguard.CodeInvalid, "Idempotency-Key", "idempotency key must be printable ASCII")
		}
		if k[i] == ',' {
			// A comma joins repeated header lines: "a, b" signed as one
			// line could be sent as two and read as "a".
			return daoguard.FieldError(daoguard.CodeInvalid, "Idempotency-Key", "idempotency key must not contain a comma")
		}
	}
	return nil
}

// replay returns the action an idempotency key already produced, nil if the
// key is new, or IDEMPOTENCY_MISMATCH if it was used for another request.
func replay(ctx context.Context, tx daoguard.Tx, principalID, key string, in daoguard.Intent) (*daoguard.Action, error) {
	a, err := tx.ActionByIdempotencyKey(ctx, principalID, key)
	if daoguard.IsNotFound(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if a.RequestHash != in.Hash() {
		return nil, &daoguard.Error{Code: daoguard.CodeIdempotencyMismatch, Message: "this Idempotency-Key was used for a different request", Hint: "use a new key for a new request"}
	}
	// The answer carries the position of the action's latest entry, as a
	// fresh submission's does.
	es, err := tx.ActionAudit(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	if len(es) > 0 {
		a.Logged = &es[len(es)-1]
	}
	return a, nil
}

// describe decodes a call action's calls for its approvers.
// For a policy change (doc, the new document), how it moves each agent's
// bounds.
func (s *Service) describe(ctx context.Context, tx daoguard.Tx, orgID string, dec *daoguard.Decoded, doc string) error {
	if dec.Kind == daoguard.KindPolicy && dec.Policy != nil {
		var err error
		dec.Policy.Bounds, err = s.boundChanges(ctx, tx, orgID, dec.Policy.Base, doc)
		return err
	}
	if dec.Kind != daoguard.KindCall {
		return nil
	}
	assets, err := tx.Assets(ctx, orgID)
	if err != nil {
		return err
	}
	dec.Calls = policy.DescribeCalls(dec, policy.NewCatalog(assets), s.Contracts)
	return nil
}

// decide asks the decider and makes its answer safe to act on: an error or
// an unusable decision denies, and a supervised agent never gets more than
// needs_approval. Nothing here can loosen what the decider said.
//
// A store error while the decider reads its snapshot is returned instead:
// the unit is then not written at all (and PostgreSQL may rerun it), since
// a denial recorded for an outage would be a lie in the audit log.
func (s *Service) decide(ctx context.Context, in daoguard.DecisionInput) (daoguard.Decision, error) {
	d, err := s.Decider.Decide(ctx, in)
	if err != nil {
		var se *decider.StoreError
		if errors.As(err, &se) {
			return daoguard.Decision{}, se.Err
		}
		s.Logger.Error("decider failed; denying", "action", in.Action.ID, "err", err)
		return daoguard.Decision{Verdict: daoguard.VerdictDeny, Tier: "deny", Reasons: []daoguard.Reason{{Code: daoguard.ReasonDeciderError, Detail: "policy evaluation failed; denied (fail closed)"}}}, nil
	}
	bad := func(why string) (daoguard.Decision, error) {
		return daoguard.Decision{Verdict: daoguard.VerdictDeny, Tier: "deny", PolicyVersion: d.PolicyVersion,
			Reasons: append(d.Reasons, daoguard.Reason{Code: daoguard.ReasonInvalidDecision, Detail: why})}, nil
	}
	switch d.Verdict {
	case daoguard.VerdictAllow, daoguard.VerdictDeny:
	case daoguard.VerdictNeedsApproval:
		if d.RequiredApprovals < 1 {
			return bad("needs_approval with fewer than one required approval")
		}
	default:
		return bad("unknown verdict")
	}
	if d.Timelock < 0 {
		return bad("negative timelock")
	}
	if !in.DryRun && in.Principal.Kind == daoguard.PrincipalAgent {
		// The agent as it is now, under the organisation's ledger lock: a
		// breaker trip committed by another gateway while this decision
		// was being prepared must be seen (in PostgreSQL the principal was
		// read before the lock).
		if err := lockLedger(ctx, in.Tx, in.Org.ID); err != nil {
			return daoguard.Decision{}, err
		}
		fresh, err := in.Tx.Principal(ctx, in.Principal.ID)
		if err != nil {
			return daoguard.Decision{}, err
		}
		*in.Principal = *fresh
		if in.Principal.Autonomy == daoguard.AutonomySuspended {
			return daoguard.Decision{}, daoguard.Errorf(daoguard.CodeAgentSuspended, "agent %s is suspended", in.Principal.ID)
		}
	}
	if d.Verdict == daoguard.VerdictAllow && in.Principal.Kind == daoguard.PrincipalAgent && in.Principal.Autonomy != daoguard.AutonomyAutonomous {
		d.Verdict = daoguard.VerdictNeedsApproval
		d.RequiredApprovals = max(d.RequiredApprovals, 1)
		d.Reasons = append(d.Reasons, daoguard.Reason{Code: daoguard.ReasonAgentSupervised, Detail: "the agent is supervised; a human must approve"})
	}
	// Text is data, never authority: a rationale that reads as an attack on
	// whoever reads it raises the action to approval, with what was found;
	// a clean one changes nothing.
	raise := func(code, detail string) {
		d.Reasons = append(d.Reasons, daoguard.Reason{Code: code, Detail: detail})
		if d.Verdict == daoguard.VerdictAllow {
			d.Verdict = daoguard.VerdictNeedsApproval
			d.RequiredApprovals = max(d.RequiredApprovals, 1)
		}
	}
	if r := screen.Text(in.Action.Intent.Rationale); r.Flagged {
		raise(daoguard.ReasonTextFlagged, fmt.Sprintf("the rationale reads as prompt injection (%s, score %.2f); a human must approve", strings.Join(r.Labels, ", "), r.Score))
	}
	// A transfer whose rationale names another recipient, asset or amount
	// than it moves (the units-confusion class): the text and the action
	// disagree, and a human decides which one was meant.
	if dec := in.Action.Decoded; dec.Kind == daoguard.KindTransfer && dec.Amount != nil {
		for _, m := range screen.Consistency(in.Action.Intent.Rationale, dec.To, dec.Asset, (*big.Int)(dec.Amount), dec.Decimals) {
			raise(daoguard.ReasonTextMismatch, m.String()+"; a human must approve")
		}
	}
	// The anomaly breaker, inside the decision: before anything runs.
	if !in.DryRun {
		if err := s.breaker(ctx, in.Tx, in.Principal, in.Action, &d); err != nil {
			return daoguard.Decision{}, err
		}
	}
	if d.Reasons == nil {
		d.Reasons = []daoguard.Reason{}
	}
	return d, nil
}

// Approve records one human's approval. Once the decision's required number
// of distinct humans have approved, the action is queued behind its
// timelock. A human counts once; agents never approve; the submitter cannot
// approve their own action.
//
// Errors: NOT_FOUND, NOT_HUMAN, FORBIDDEN, DUPLICATE_APPROVAL,
// ILLEGAL_TRANSITION, ACTION_EXPIRED.
func (s *Service) Approve(ctx context.Context, principalID, actionID, signature, comment string) (*daoguard.Action, error) {
	a, err := s.vote(ctx, principalID, actionID, true, signature, comment)
	if err == nil && a.Decoded.Kind == daoguard.KindControl {
		return s.settleLoosening(ctx, principalID, a, false, comment)
	}
	return a, err
}

// Reject records one human's rejection, which ends the action.
//
// Errors: as Approve.
func (s *Service) Reject(ctx context.Context, principalID, actionID, comment string) (*daoguard.Action, error) {
	return s.vote(ctx, principalID, actionID, false, "", comment)
}

func (s *Service) vote(ctx context.Context, principalID, actionID string, approve bool, signature, comment string) (*daoguard.Action, error) {
	owner := ""
	if approve {
		var err error
		if owner, err = s.checkOwnerSignature(ctx, principalID, actionID, signature); err != nil {
			return nil, err
		}
	}
	var out *daoguard.Action
	err := s.Store.Update(ctx, func(tx daoguard.Tx) error {
		now := tx.Now()
		p, a, err := humanAndAction(ctx, tx, principalID, actionID)
		if err != nil {
			return err
		}
		if a.State != daoguard.StateAwaitingApproval {
			return daoguard.Errorf(daoguard.CodeIllegalTransition, "action is %s; only an action awaiting approval can be approved or rejected", a.State)
		}
		if !now.Before(a.ExpiresAt) {
			return daoguard.Errorf(daoguard.CodeExpired, "the approval window of this action ended at %s", a.ExpiresAt.Format(time.RFC3339))
		}
		if a.PrincipalID == p.ID {
			return daoguard.Errorf(daoguard.CodeForbidden, "the submitter of an action cannot approve or reject it")
		}
		if a.Decoded.Kind == daoguard.KindControl && p.Created.After(a.Created) {
			// k means k humans who were there when it was asked for: a
			// human added since (perhaps by the asker, holding admin)
			// cannot make up the count.
			return daoguard.Errorf(daoguard.CodeForbidden, "only humans who existed when this request was made count for loosening")
		}
		if r := a.Decision.ApproverRole; r != "" && !p.HasRole(r) {
			return daoguard.Errorf(daoguard.CodeForbidden, "approvers of this action must hold role %q", r)
		}
		if owner != "" {
			// One owner, one signature: a second human presenting the same
			// owner's signature adds nothing the Safe would count.
			prev, err := tx.Approvals(ctx, a.ID)
			if err != nil {
				return err
			}
			for _, ap := range prev {
				if o, err := s.Signatures.Owner(a, ap.Signature); ap.Approve && err == nil && o == owner {
					return daoguard.Errorf(daoguard.CodeDuplicateSignature, "owner %s has already signed this Safe transaction", owner)
				}
			}
		}
		ap := &daoguard.Approval{ActionID: a.ID, PrincipalID: p.ID, Approve: approve, Signature: signature, Comment: comment, Created: now}
		if err := tx.AddApproval(ctx, ap); err != nil {
			return err
		}
		event := "action.approval"
		if !approve {
			event = "action.rejection"
		}
		detail := map[string]any{"signed": signature != ""}
		if owner != "" {
			detail["owner"] = owner
		}
		if err := appendEntry(ctx, tx, p.ID, "human", a, event, detail); err != nil {
			return err
		}
		switch {
		case !approve:
			err = transition(ctx, tx, a, daoguard.StateRejected, p.ID, "human", nil)
		default:
			aps, err2 := tx.Approvals(ctx, a.ID)
			if err2 != nil {
				return err2
			}
			if n := countApprovals(aps); n >= a.Decision.RequiredApprovals {
				a.RunnableAt = now.Add(a.Decision.Timelock)
				a.ExpiresAt = a.RunnableAt.Add(s.ExecutionGrace)
				err = transition(ctx, tx, a, daoguard.StateQueued, p.ID, "human", map[string]any{"approvals": n, "timelock_until": a.RunnableAt})
			} else {
				err = tx.UpdateAction(ctx, a) // bump the version: concurrent voters serialise on it
			}
		}
		out = a
		return err
	})
	if err != nil {
		return nil, err
	}
	if out.State == daoguard.StateQueued {
		s.Wake()
	}
	return out, nil
}

// countApprovals counts distinct approving humans. AddApproval already
// refuses a second vote by one human; counting distinct IDs keeps the rule
// true even if a store ever let one through.
func countApprovals(aps []daoguard.Approval) int {
	seen := map[string]bool{}
	for _, ap := range aps {
		if ap.Approve {
			seen[ap.PrincipalID] = true
		}
	}
	return len(seen)
}

// Veto stops a queued action during its timelock.
//
// Errors: NOT_FOUND, NOT_HUMAN, ILLEGAL_TRANSITION.
func (s *Service) Veto(ctx context.Context, principalID, actionID, comment string) (*daoguard.Action, error) {
	var out *daoguard.Action
	err := s.Store.Update(ctx, func(tx daoguard.Tx) error {
		p, a, err := humanAndAction(ctx, tx, principalID, actionID)
		if err != nil {
			return err
		}
		if a.State != daoguard.StateQueued {
			return daoguard.Errorf(daoguard.CodeIllegalTransition, "action is %s; only a queued action can be vetoed", a.State)
		}
		out = a
		return transition(ctx, tx, a, daoguard.StateVetoed, p.ID, "human", map[string]any{"comment": comment})
	})
	return out, err
}

// Cancel withdraws an action that awaits approval or is queued. The
// submitter or any human of the organisation may cancel.
//
// Errors: NOT_FOUND, FORBIDDEN, ILLEGAL_TRANSITION.
func (s *Service) Cancel(ctx context.Context, principalID, actionID string) (*daoguard.Action, error) {
	var out *daoguard.Action
	err := s.Store.Update(ctx, func(tx daoguard.Tx) error {
		p, err := tx.Principal(ctx, principalID)
		if err != nil {
			return err
		}
		a, err := actionOf(ctx, tx, p, actionID)
		if err != nil {
			return err
		}
		if a.PrincipalID != p.ID && !p.IsHuman() {
			return daoguard.Errorf(daoguard.CodeForbidden, "only the submitter or a human can cancel an action")
		}
		out = a
		return transition(ctx, tx, a, daoguard.StateCancelled, p.ID, p.Kind.String(), nil)
	})
	return out, err
}

// Action returns one action with its approvals, if the principal's
// organisation owns it; otherwise NOT_FOUND (reveal nothing).
func (s *Service) Action(ctx context.Context, principalID, actionID string) (*daoguard.Action, []daoguard.Approval, error) {
	var a *daoguard.Action
	var aps []daoguard.Approval
	err := s.Store.View(ctx, func(tx daoguard.Tx) error {
		p, err := tx.Principal(ctx, principalID)
		if err != nil {
			return err
		}
		if a, err = actionOf(ctx, tx, p, actionID); err != nil {
			return err
		}
		aps, err = tx.Approvals(ctx, a.ID)
		return err
	})
	return a, aps, err
}

// Pause turns the organisation's kill switch on: agents can submit nothing
// and nothing executes until a human resumes. Pausing a paused organisation
// changes nothing.
//
// Errors: NOT_FOUND, NOT_HUMAN.
func (s *Service) Pause(ctx context.Context, principalID, reason string) (*daoguard.Organisation, error) {
	return s.setPaused(ctx, principalID, true, reason)
}

// Resume asks to turn the kill switch off. Loosening needs k humans
// (Loosening): the first call makes a control action that holds the
// asker's approval; a call by another human approves it (as does approving
// the action); the last approval resumes the organisation once the
// loosening timelock has passed. It returns the organisation as it now is
// and the control action, nil if the organisation was not paused.
//
// Errors: NOT_FOUND, NOT_HUMAN, INVALID_ARGUMENT.
func (s *Service) Resume(ctx context.Context, principalID, reason string) (*daoguard.Organisation, *daoguard.Action, error) {
	var org *daoguard.Organisation
	var a *daoguard.Action
	var vote bool
	err := s.Store.Update(ctx, func(tx daoguard.Tx) error {
		org, a, vote = nil, nil, false
		p, err := tx.Principal(ctx, principalID)
		if err != nil {
			return err
		}
		if !p.IsHuman() {
			return daoguard.Errorf(daoguard.CodeNotHuman, "only a human can pause or resume the organisation")
		}
		if org, err = tx.OrgForUpdate(ctx, p.OrgID); err != nil {
			return err
		}
		if !org.Paused {
			return nil
		}
		a, vote, err = s.requestLoosening(ctx, tx, p, daoguard.Control{Op: daoguard.ControlResume}, reason)
		return err
	})
	if err != nil || a == nil {
		return org, nil, err
	}
	if a, err = s.settleLoosening(ctx, principalID, a, vote, reason); err != nil {
		return nil, nil, err
	}
	err = s.Store.View(ctx, func(tx daoguard.Tx) (err error) {
		org, err = tx.Org(ctx, org.ID)
		return err
	})
	return org, a, err
}

// setPaused pauses; resuming goes through Resume's k of n.
func (s *Service) setPaused(ctx context.Context, principalID string, paused bool, reason string) (*daoguard.Organisation, error) {
	var out *daoguard.Organisation
	err := s.Store.Update(ctx, func(tx daoguard.Tx) error {
		p, err := tx.Principal(ctx, principalID)
		if err != nil {
			return err
		}
		if !p.IsHuman() {
			return daoguard.Errorf(daoguard.CodeNotHuman, "only a human can pause or resume the organisation")
		}
		org, err := tx.OrgForUpdate(ctx, p.OrgID)
		if err != nil {
			return err
		}
		out = org
		if org.Paused == paused {
			return nil
		}
		org.Paused, org.PausedBy, org.PausedAt = paused, p.ID, tx.Now()
		if err := tx.PutOrg(ctx, org); err != nil {
			return err
		}
		event := "org.resumed"
		if paused {
			event = "org.paused"
		}
		return appendEntry(ctx, tx, p.ID, "human", &daoguard.Action{OrgID: org.ID}, event, map[string]any{"reason": reason})
	})
	return out, err
}

// SetAutonomy changes an agent's autonomy level. Lowering is instant: a
// human may lower any agent, an agent only itself, daoguard.ActorSystem
// (the anomaly detector, alignment probes) any agent. Raising is a human's
// request that needs k humans (Loosening), as Resume: it returns the
// control action, and the agent as it now is (raised only once the last
// approval is in and the timelock has passed).
//
// Errors: NOT_FOUND, INVALID_ARGUMENT, FORBIDDEN, AUTONOMY_RAISE_FORBIDDEN.
func (s *Service) SetAutonomy(ctx context.Context, actorID, agentID string, level daoguard.Autonomy, reason string) (*daoguard.Principal, *daoguard.Action, error) {
	if !level.Valid() {
		return nil, nil, daoguard.FieldError(daoguard.CodeInvalid, "autonomy", "unknown autonomy level")
	}
	var out *daoguard.Principal
	var from daoguard.Autonomy
	var actorKind string
	var a *daoguard.Action
	var vote bool
	err := s.Store.Update(ctx, func(tx daoguard.Tx) error {
		a, vote = nil, false
		agent, err := tx.PrincipalForUpdate(ctx, agentID)
		if err != nil {
			return err
		}
		from, actorKind = agent.Autonomy, "system"
		if actorID != daoguard.ActorSystem {
			actor, err := tx.Principal(ctx, actorID)
			if err != nil {
				return err
			}
			if actor.OrgID != agent.OrgID { // reveal nothing about other organisations
				return daoguard.Errorf(daoguard.CodeNotFound, "principal %s not found", agentID)
			}
			actorKind = actor.Kind.String()
			if !actor.IsHuman() && actor.ID != agent.ID {
				return daoguard.Errorf(daoguard.CodeForbidden, "an agent can change only its own autonomy")
			}
			if actor.IsHuman() && agent.Kind == daoguard.PrincipalAgent && level > agent.Autonomy {
				out = agent
				a, vote, err = s.requestLoosening(ctx, tx, actor, daoguard.Control{Op: daoguard.ControlAutonomy, Agent: agent.ID, From: agent.Autonomy, Level: level}, reason)
				return err
			}
		}
		out = agent
		if err := setAutonomy(ctx, tx, actorID, actorKind, agent, level, reason); err != nil {
			return err
		}
		if level < from && agent.Kind == daoguard.PrincipalAgent {
			_, err = s.lowered(ctx, tx, agent, daoguard.ReasonAgentSupervised, fmt.Sprintf("lowered to %s by %s", level, actorID))
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if a != nil {
		if a, err = s.settleLoosening(ctx, actorID, a, vote, reason); err != nil {
			return nil, nil, err
		}
		err = s.Store.View(ctx, func(tx daoguard.Tx) (err error) {
			out, err = tx.Principal(ctx, agentID)
			return err
		})
		return out, a, err
	}
	if s.Observer != nil && from != out.Autonomy {
		s.Observer.AutonomyChanged(out.ID, from, out.Autonomy, actorKind)
	}
	return out, nil, nil
}

// setAutonomy moves agent to level in tx, with its audit entry (whose
// subject is the agent: its risk history). Only a human raises.
func setAutonomy(ctx context.Context, tx daoguard.Tx, actorID, actorKind string, agent *daoguard.Principal, level daoguard.Autonomy, reason string) error {
	if agent.Kind != daoguard.PrincipalAgent {
		return daoguard.Errorf(daoguard.CodeInvalid, "%s is not an agent; only agents have an autonomy level", agent.ID)
	}
	if level > agent.Autonomy && actorKind != "human" {
		return &daoguard.Error{Code: daoguard.CodeAutonomyRaise, Message: "only a human can raise an agent's autonomy", Hint: "ask a steward"}
	}
	if level == agent.Autonomy {
		return nil
	}
	from := agent.Autonomy
	agent.Autonomy, agent.Updated = level, tx.Now()
	if err := tx.PutPrincipal(ctx, agent); err != nil {
		return err
	}
	return appendSubjectEntry(ctx, tx, actorID, actorKind, agent, "principal.autonomy",
		map[string]any{"agent": agent.ID, "from": from, "to": level, "reason": reason})
}

// appendSubjectEntry appends an entry about principal p (no action).
func appendSubjectEntry(ctx context.Context, tx daoguard.Tx, actorID, actorKind string, p *daoguard.Principal, event string, detail any) error {
	raw, err := json.Marshal(detail)
	if err != nil {
		return err
	}
	return tx.Append(ctx, &daoguard.AuditEntry{Time: tx.Now(), OrgID: p.OrgID, ActorID: actorID, ActorKind: actorKind,
		Event: event, Detail: raw, Subject: p.ID})
}

// humanAndAction loads a human principal and an action of their organisation.
func humanAndAction(ctx context.Context, tx daoguard.Tx, principalID, actionID string) (*daoguard.Principal, *daoguard.Action, error) {
	p, err := tx.Principal(ctx, principalID)
	if err != nil {
		return nil, nil, err
	}
	if !p.IsHuman() {
		return nil, nil, daoguard.Errorf(daoguard.CodeNotHuman, "only a human can approve, reject or veto")
	}
	a, err := actionOf(ctx, tx, p, actionID)
	return p, a, err
}

// actionOf loads an action that belongs to p's organisation. An action of
// another organisation is reported exactly like a missing one.
func actionOf(ctx context.Context, tx daoguard.Tx, p *daoguard.Principal, actionID string) (*daoguard.Action, error) {
	a, err := tx.Action(ctx, actionID)
	if err != nil {
		return nil, err
	}
	// Reveal nothing: another organisation's action, or, for an agent,
	// another principal's, looks like no action at all.
	if a.OrgID != p.OrgID || (!p.IsHuman() && a.PrincipalID != p.ID) {
		return nil, daoguard.Errorf(daoguard.CodeNotFound, "action %s not found", actionID)
	}
	return a, nil
}

// transition moves a to state to, checks the move against the state machine,
// writes the action and appends its audit entry, in the caller's transaction.
func transition(ctx context.Context, tx daoguard.Tx, a *daoguard.Action, to daoguard.State, actorID, actorKind string, detail any) error {
	if err := daoguard.CheckTransition(a.State, to); err != nil {
		return err
	}
	a.State = to
	if err := tx.UpdateAction(ctx, a); err != nil {
		return err
	}
	// An action that ends gives back what it reserved, or, executed, keeps
	// it as settled until the holdings snapshot shows the payment.
	if to.Terminal() {
		if err := tx.EndReservations(ctx, a.ID, to == daoguard.StateExecuted); err != nil {
			return err
		}
	}
	return appendEntry(ctx, tx, actorID, actorKind, a, "action."+to.String(), detail)
}

// reservations are what a that goes ahead holds of the accounts it moves
// funds from: its valued flows of assets the catalogue knows, summed per
// account and asset — its own account's, and another account's whose
// tokens it pulls under that account's allowance. (A flow of an unknown
// token has no holdings to reserve against; policy never lets an agent
// move one on its own.)
func reservations(a *daoguard.Action) []daoguard.Reservation {
	if a.Decision.Inputs == nil {
		return nil
	}
	var out []daoguard.Reservation
	for _, f := range a.Decision.Inputs.Flows {
		if f.Asset == "" || f.Allowance || f.Amount == nil || f.Amount.Int().Sign() <= 0 {
			continue
		}
		account := strings.ToLower(a.Decoded.From)
		if f.From != "" {
			account = f.From
		}
		i := slices.IndexFunc(out, func(r daoguard.Reservation) bool { return r.Asset == f.Asset && r.Account == account })
		if i < 0 {
			out = append(out, daoguard.Reservation{OrgID: a.OrgID, ActionID: a.ID, Account: account, Asset: f.Asset, Amount: daoguard.NewBigInt(new(big.Int)), USD: 0})
			i = len(out) - 1
		}
		r := &out[i]
		r.Amount = daoguard.NewBigInt(new(big.Int).Add(r.Amount.Int(), f.Amount.Int()))
		switch {
		case f.USD < 0 || r.USD < 0:
			r.USD = -1 // unpriced
		default:
			r.USD += f.USD
		}
	}
	return out
}

func appendEntry(ctx context.Context, tx daoguard.Tx, actorID, actorKind string, a *daoguard.Action, event string, detail any) error {
	var raw json.RawMessage
	if detail != nil {
		b, err := json.Marshal(detail)
		if err != nil {
			return err
		}
		raw = b
	}
	e := &daoguard.AuditEntry{
		Time: tx.Now(), OrgID: a.OrgID, ActorID: actorID, ActorKind: actorKind,
		ActionID: a.ID, Event: event, Detail: raw,
	}
	a.Logged = e
	return tx.Append(ctx, e)
}

func decisionDetail(d daoguard.Decision) map[string]any {
	codes := make([]string, len(d.Reasons))
	for i, r := range d.Reasons {
		codes[i] = r.Code
	}
	return map[string]any{"verdict": d.Verdict, "tier": d.Tier, "reasons": codes, "required_approvals": d.RequiredApprovals, "policy_version": d.PolicyVersion}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Timeline returns an action's audit entries, if the principal's
// organisation owns it; otherwise NOT_FOUND.
func (s *Service) Timeline(ctx context.Context, principalID, actionID string) ([]daoguard.AuditEntry, error) {
	var out []daoguard.AuditEntry
	err := s.Store.View(ctx, func(tx daoguard.Tx) error {
		p, err := tx.Principal(ctx, principalID)
		if err != nil {
			return err
		}
		if _, err := actionOf(ctx, tx, p, actionID); err != nil {
			return err
		}
		out, err = tx.ActionAudit(ctx, actionID)
		return err
	})
	return out, err
}

// Actions lists the principal's organisation's actions, oldest first.
// Agents see only their own.
func (s *Service) Actions(ctx context.Context, principalID string, f daoguard.ActionFilter) ([]*daoguard.Action, error) {
	var out []*daoguard.Action
	err := s.Store.View(ctx, func(tx daoguard.Tx) error {
		p, err := tx.Principal(ctx, principalID)
		if err != nil {
			return err
		}
		f.OrgID = p.OrgID
		if !p.IsHuman() {
			f.PrincipalID = p.ID
		}
		out, err = tx.FindActions(ctx, f)
		return err
	})
	return out, err
}

// AuditEntries reads the audit log from index from. Until the Merkle log
// lands it is a plain list; entries of other organisations are left out.
func (s *Service) AuditEntries(ctx context.Context, principalID string, from uint64, limit int) ([]daoguard.AuditEntry, error) {
	var out []daoguard.AuditEntry
	err := s.Store.View(ctx, func(tx daoguard.Tx) error {
		p, err := tx.Principal(ctx, principalID)
		if err != nil {
			return err
		}
		all, err := tx.AuditEntries(ctx, from, limit)
		for _, e := range all {
			// Entries of no organisation (refused anonymous requests,
			// with source addresses) are for humans only.
			if visible(p, &e) {
				out = append(out, e)
			}
		}
		return err
	})
	return out, err
}
