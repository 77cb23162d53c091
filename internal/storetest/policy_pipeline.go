package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/decider"
	"github.com/daoguard/daoguard/internal/policy"
	"github.com/daoguard/daoguard/internal/service"
)

// PipelinePolicy is the policy the pipeline tests load: agents pay the
// vendor up to 1,000 USD per payment and 1,000 USD per day in all; beyond
// that the council approves; humans always need the council.
const PipelinePolicy = `version: 1
name: conformance
lists:
  vendors: ["` + Vendor + `"]
groups:
  council: {role: council}
council: {group: council, approvals: 2, timelock: 1h}
rules:
  - name: agent-vendor-payments
    principal_kinds: [agent]
    accounts: [ops]
    actions: [transfer]
    assets: [USDC]
    recipients: {lists: [vendors]}
    tier: autonomous
    limits:
      max_usd: "1000"
      windows:
        - {period: 24h, per: org, max_usd: "1000"}
    over_limit: approval
    approval: {group: council, approvals: 2, timelock: 1h}
  - name: humans
    principal_kinds: [human]
    tier: approval
    approval: {group: council, approvals: 2, timelock: 2h}
`

// ClockPrices prices USDC at 1 USD from two sources, read just now: the
// stand-in for the HTTP price poller (tested on its own over loopback).
type ClockPrices struct{ Clock *Clock }

func (p ClockPrices) Quotes() map[string]*policy.Quotes {
	one, _ := policy.ParsePrice("1")
	now := p.Clock.Now()
	return map[string]*policy.Quotes{"USDC": policy.NewQuotes(
		policy.Reading{Source: "a", Price: one, At: now}, policy.Reading{Source: "b", Price: one, At: now})}
}

// FixedHoldings says every account holds 1,000,000,000 USDC, read at the
// beginning of time: every settled reservation still counts against it.
type FixedHoldings struct{}

func (FixedHoldings) Holdings(uint64, string) (map[string]*big.Int, time.Time) {
	return map[string]*big.Int{"USDC": big.NewInt(1_000_000_000_000000)}, time.Time{}
}

// NewPolicyDecider returns the policy engine as decider, with ClockPrices
// and FixedHoldings.
func NewPolicyDecider(clock *Clock) *decider.Policy {
	return &decider.Policy{Prices: ClockPrices{clock}, Holdings: FixedHoldings{}}
}

// BenchPolicy is the policy the end-to-end benchmarks load: PipelinePolicy
// with three rolling windows (per agent in USD, per recipient in USDC, and
// a count over the whole organisation) whose limits the benchmark never
// reaches, so that every submission is judged in full, passes
// autonomously, and is recorded in the window ledger.
var BenchPolicy = func() string {
	const one = "        - {period: 24h, per: org, max_usd: \"1000\"}\n"
	if !strings.Contains(PipelinePolicy, one) {
		panic("storetest: PipelinePolicy no longer has its daily window")
	}
	return strings.Replace(PipelinePolicy, one, `        - {period: 24h, per: agent, max_usd: "1000000000"}
        - {period: 7d, per: recipient, asset: USDC, max_amount: "1000000000"}
        - {period: 1h, per: org, max_count: 100000000}
`, 1)
}()

// policyService returns a service over s with the policy engine as decider.
func policyService(s daoguard.Store, clock *Clock) *service.Service {
	return service.New(s, NewPolicyDecider(clock), nil, "node-policy")
}

func runPolicyPipeline(t *testing.T, h Harness) {
	ctx := context.Background()
	load := func(t *testing.T, f *Fixture, svc *service.Service) {
		t.Helper()
		if _, err := svc.LoadFirstPolicy(ctx, f.Org, PipelinePolicy); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("ErrNoPolicyDenies", func(t *testing.T) {
		f := setup(t, h)
		svc := policyService(f.Store, f.Clock)
		a := must[*daoguard.Action](t)(svc.Submit(ctx, f.Agent, "", Transfer("5", Vendor)))
		if a.State != daoguard.StateDenied || a.Decision.Reasons[0].Code != daoguard.ReasonNoPolicy {
			t.Fatalf("%s %+v", a.State, a.Decision)
		}
	})

	t.Run("ErrInvalidFirstPolicy", func(t *testing.T) {
		f := setup(t, h)
		svc := policyService(f.Store, f.Clock)
		bad := strings.Replace(PipelinePolicy, "period: 24h", "period: 24x", 1)
		_, err := svc.LoadFirstPolicy(ctx, f.Org, bad)
		wantCode(t, err, daoguard.CodeInvalidPolicy)
		if e := err.(*daoguard.Error); len(e.Details) != 1 || !strings.Contains(e.Details[0], "line 19") {
			t.Fatalf("details %q", e.Details)
		}
		if _, err := svc.CurrentPolicy(ctx, f.Org); daoguard.ErrorCode(err) != daoguard.CodeNotFound {
			t.Fatalf("an invalid policy was stored: %v", err)
		}
		load(t, f, svc)
		_, err = svc.LoadFirstPolicy(ctx, f.Org, PipelinePolicy)
		wantCode(t, err, daoguard.CodeConflict)
	})

	// Salami across time: payments each under the per-payment cap are
	// summed in the window, which survives a restart.
	t.Run("OK_WindowAcrossRestart", func(t *testing.T) {
		f := setup(t, h)
		svc := policyService(f.Store, f.Clock)
		load(t, f, svc)
		for i, want := range []daoguard.State{daoguard.StateQueued, daoguard.StateQueued} {
			a := must[*daoguard.Action](t)(svc.Submit(ctx, f.Agent, "", Transfer("400", Vendor)))
			if a.State != want {
				t.Fatalf("payment %d: %s %+v", i, a.State, a.Decision.Reasons)
			}
			f.Clock.Advance(time.Minute)
		}
		// A new process: a fresh decider over a reopened store.
		s2, err := h.Open(f.DSN, f.Clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		svc2 := policyService(s2, f.Clock)
		a := must[*daoguard.Action](t)(svc2.Submit(ctx, f.Agent, "", Transfer("400", Vendor)))
		if a.State != daoguard.StateAwaitingApproval || !hasReason(a.Decision, policy.ReasonWindowUSDExceeded) {
			t.Fatalf("third payment: %s %+v", a.State, a.Decision.Reasons)
		}
		if a.Decision.Inputs == nil || len(a.Decision.Inputs.Flows) != 1 || a.Decision.Inputs.Flows[0].USD != 400_000000 || a.Decision.Inputs.Prices["USDC"] != "1" {
			t.Fatalf("inputs %+v", a.Decision.Inputs)
		}
		// A denial does not count: the window is as before.
		d := must[*daoguard.Action](t)(svc2.Submit(ctx, f.Agent, "", Transfer("5", Attacker)))
		if d.State != daoguard.StateDenied {
			t.Fatalf("attacker: %s", d.State)
		}
		// A day later the window has emptied.
		f.Clock.Advance(25 * time.Hour)
		a = must[*daoguard.Action](t)(svc2.Submit(ctx, f.Agent, "", Transfer("400", Vendor)))
		if a.State != daoguard.StateQueued {
			t.Fatalf("next day: %s %+v", a.State, a.Decision.Reasons)
		}
	})

	// Salami across gateways: two processes on one database, each with its
	// own in-memory ledger, never let more than the window through.
	t.Run("OK_WindowAcrossGateways", func(t *testing.T) {
		f := setup(t, h)
		s2, err := h.Open(f.DSN, f.Clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		svcs := []*service.Service{policyService(f.Store, f.Clock), policyService(s2, f.Clock)}
		load(t, f, svcs[0])
		// Warm both deciders so that each holds a ledger of its own.
		for _, svc := range svcs {
			must[*daoguard.Action](t)(svc.Submit(ctx, f.Agent, "", Transfer("1", Vendor)))
		}
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, err := svcs[i%2].Submit(ctx, f.Agent, "", Transfer("100", Vendor))
				if err != nil {
					t.Error(err)
					return
				}
				if a.State == daoguard.StateQueued {
					allowed.Add(1)
				}
			}()
		}
		wg.Wait()
		// 2 USD spent warming up: 9 payments of 100 fit in 1,000.
		if n := allowed.Load(); n != 9 {
			t.Fatalf("%d payments of 100 went through autonomously; the window allows 9", n)
		}
	})

	// Units undone after their decision (here: every third, refused by the
	// store after its work) take their ledger entries back: concurrent
	// payments in shared batches let exactly the window's worth through
	// autonomously among those that committed, and the gateway's in-memory
	// ledger agrees with a fresh one read from the database.
	t.Run("OK_UndoneUnitsCountNothing", func(t *testing.T) {
		f := setup(t, h)
		flaky := &undoingStore{Store: f.Store}
		svc := service.New(flaky, NewPolicyDecider(f.Clock), nil, "node-policy")
		load(t, f, svc)
		var queued, committed atomic.Int64
		var wg sync.WaitGroup
		for range 45 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, err := svc.Submit(ctx, f.Agent, "", Transfer("100", Vendor))
				if errors.Is(err, errUndone) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				committed.Add(1)
				if a.State == daoguard.StateQueued {
					queued.Add(1)
				}
			}()
		}
		wg.Wait()
		if flaky.undone.Load() == 0 || committed.Load() < 10 {
			t.Fatalf("%d units undone, %d committed: the test needs both", flaky.undone.Load(), committed.Load())
		}
		if n := queued.Load(); n != 10 {
			t.Fatalf("%d payments of 100 went through autonomously; the window allows 10", n)
		}
		// Every committed payment counts (approval ones too), no undone one.
		probe := func(svc *service.Service) string {
			ev, err := svc.Evaluate(ctx, nil, f.Agent, Transfer("1", Vendor))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range ev.Decision.Reasons {
				if r.Code == policy.ReasonWindowUSDExceeded {
					return r.Detail
				}
			}
			t.Fatalf("probe: no window reason in %+v", ev.Decision.Reasons)
			return ""
		}
		live, fresh := probe(svc), probe(policyService(f.Store, f.Clock))
		want := fmt.Sprintf("%s USD so far", policy.FormatUSD(committed.Load()*100_000000))
		if live != fresh || !strings.Contains(live, want) {
			t.Fatalf("live ledger %q, fresh ledger %q, want %q", live, fresh, want)
		}
	})

	// Concurrent retries with one idempotency key make one action and one
	// ledger entry: a unit that loses the race must not count anything.
	t.Run("OK_IdempotentRetriesCountOnce", func(t *testing.T) {
		f := setup(t, h)
		svc := policyService(f.Store, f.Clock)
		load(t, f, svc)
		var wg sync.WaitGroup
		for k := range 5 {
			for range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := svc.Submit(ctx, f.Agent, fmt.Sprintf("key-%d", k), Transfer("10", Vendor)); err != nil {
						t.Error(err)
					}
				}()
			}
		}
		wg.Wait()
		var es []daoguard.LedgerEntry
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) {
			es, err = tx.LedgerTail(ctx, f.Org, 0, time.Time{}, 1000)
			return err
		}))
		if n := countActions(t, f.Store); n != 5 || len(es) != 5 {
			t.Fatalf("%d actions, %d ledger entries; want 5 and 5", n, len(es))
		}
	})

	t.Run("OK_PolicyChangeIsAnAction", func(t *testing.T) {
		f := setup(t, h)
		svc := policyService(f.Store, f.Clock)
		load(t, f, svc)
		next := strings.Replace(PipelinePolicy, `max_usd: "1000"
      windows`, `max_usd: "500"
      windows`, 1)
		change := daoguard.Intent{Kind: "policy", Policy: next, Rationale: "halve the per-payment cap"}
		// Agents can never change the policy.
		a := must[*daoguard.Action](t)(svc.Submit(ctx, f.Agent, "", change))
		if a.State != daoguard.StateDenied || a.Decision.Reasons[0].Code != policy.ReasonPolicyChange {
			t.Fatalf("agent change: %s %+v", a.State, a.Decision.Reasons)
		}
		// An invalid document is refused and nothing changes.
		_, err := svc.Submit(ctx, f.Humans[0], "", daoguard.Intent{Kind: "policy", Policy: "version: 1\nrules: [{tier: maybe}]\n"})
		wantCode(t, err, daoguard.CodeInvalidPolicy)
		// A human's change waits for the council and the longest timelock.
		h := must[*daoguard.Action](t)(svc.Submit(ctx, f.Humans[0], "", change))
		if h.State != daoguard.StateAwaitingApproval || h.Decision.RequiredApprovals != 2 || h.Decision.ApproverRole != "council" || h.Decision.Timelock != 2*time.Hour {
			t.Fatalf("human change: %s %+v", h.State, h.Decision)
		}
		if d := h.Decoded.Policy; d == nil || d.Base != 1 || !strings.Contains(d.Diff, `-      max_usd: "1000"`) || !strings.Contains(d.Diff, `+      max_usd: "500"`) {
			t.Fatalf("decoded %+v", h.Decoded.Policy)
		}
		must[*daoguard.Action](t)(svc.Approve(ctx, f.Humans[1], h.ID, "", ""))
		q := must[*daoguard.Action](t)(svc.Approve(ctx, f.Humans[2], h.ID, "", ""))
		if q.State != daoguard.StateQueued {
			t.Fatalf("after approvals: %s", q.State)
		}
		// Not before the timelock.
		must[int](t)(svc.ExecuteDue(ctx))
		if pv := must[*daoguard.PolicyVersion](t)(svc.CurrentPolicy(ctx, f.Org)); pv.Version != 1 {
			t.Fatalf("applied before the timelock: version %d", pv.Version)
		}
		f.Clock.Advance(2*time.Hour + time.Second)
		if n := must[int](t)(svc.ExecuteDue(ctx)); n != 1 {
			t.Fatalf("applied %d", n)
		}
		pv := must[*daoguard.PolicyVersion](t)(svc.CurrentPolicy(ctx, f.Org))
		if pv.Version != 2 || pv.Source != next || pv.ActionID != h.ID || pv.By != f.Humans[0] {
			t.Fatalf("in force: %+v", pv)
		}
		// The new cap is in force for the next decision.
		a = must[*daoguard.Action](t)(svc.Submit(ctx, f.Agent, "", Transfer("600", Vendor)))
		if a.State != daoguard.StateAwaitingApproval || !hasReason(a.Decision, policy.ReasonPerTxUSDExceeded) {
			t.Fatalf("under the new policy: %s %+v", a.State, a.Decision.Reasons)
		}
		var timeline []daoguard.AuditEntry
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) { timeline, err = tx.ActionAudit(ctx, h.ID); return err }))
		var applied bool
		for _, e := range timeline {
			applied = applied || e.Event == "policy.applied" && strings.Contains(string(e.Detail), `"version":2`)
		}
		if !applied {
			t.Fatalf("no policy.applied entry in %+v", timeline)
		}
		// Two changes against version 2, approved and due together.
		stale := must[*daoguard.Action](t)(svc.Submit(ctx, f.Humans[0], "", daoguard.Intent{Kind: "policy", Policy: PipelinePolicy}))
		must[*daoguard.Action](t)(svc.Approve(ctx, f.Humans[1], stale.ID, "", ""))
		must[*daoguard.Action](t)(svc.Approve(ctx, f.Humans[2], stale.ID, "", ""))
		late := must[*daoguard.Action](t)(svc.Submit(ctx, f.Humans[0], "", daoguard.Intent{Kind: "policy", Policy: PipelinePolicy + "# v3\n"}))
		must[*daoguard.Action](t)(svc.Approve(ctx, f.Humans[1], late.ID, "", ""))
		must[*daoguard.Action](t)(svc.Approve(ctx, f.Humans[2], late.ID, "", ""))
		f.Clock.Advance(2*time.Hour + time.Second)
		must[int](t)(svc.ExecuteDue(ctx))
		var got [2]*daoguard.Action
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) {
			if got[0], err = tx.Action(ctx, stale.ID); err == nil {
				got[1], err = tx.Action(ctx, late.ID)
			}
			return err
		}))
		// Both were approved against version 2: whichever runs first wins,
		// and the other must not overwrite it.
		if got[0].State == daoguard.StateFailed {
			got[0], got[1] = got[1], got[0]
		}
		if got[0].State != daoguard.StateExecuted || got[1].State != daoguard.StateFailed || !strings.Contains(got[1].Result.Detail, "version 3 is in force now") {
			t.Fatalf("states %s, %s: %+v", got[0].State, got[1].State, got[1].Result)
		}
		if pv := must[*daoguard.PolicyVersion](t)(svc.CurrentPolicy(ctx, f.Org)); pv.Version != 3 || pv.ActionID != got[0].ID {
			t.Fatalf("in force: %+v", pv)
		}
	})

	t.Run("OK_Replay", func(t *testing.T) {
		f := setup(t, h)
		svc := policyService(f.Store, f.Clock)
		load(t, f, svc)
		for _, amt := range []string{"400", "400", "400", "5"} {
			must[*daoguard.Action](t)(svc.Submit(ctx, f.Agent, "", Transfer(amt, Vendor)))
			f.Clock.Advance(time.Minute)
		}
		must[*daoguard.Action](t)(svc.Submit(ctx, f.Agent, "", Transfer("5", Attacker)))
		must[*daoguard.Action](t)(svc.Submit(ctx, f.Humans[0], "", Transfer("5", Vendor)))
		// The policy in force reproduces every recorded decision.
		same := must[*policy.Policy](t)(policy.Parse([]byte(PipelinePolicy)))
		rep := must[*service.ReplayReport](t)(svc.Replay(ctx, f.Org, same))
		if rep.Actions != 6 || len(rep.Changes) != 0 {
			t.Fatalf("replay under the same policy: %d actions, changes %+v", rep.Actions, rep.Changes)
		}
		// A window of 500: the second payment (800 so far) now escalates;
		// the third and fourth did already (the 1,000 window).
		cand := must[*policy.Policy](t)(policy.Parse([]byte(strings.Replace(PipelinePolicy, `per: org, max_usd: "1000"`, `per: org, max_usd: "500"`, 1))))
		rep = must[*service.ReplayReport](t)(svc.Replay(ctx, f.Org, cand))
		if len(rep.Changes) != 1 || rep.Stricter != 1 || rep.Changes[0].Was.Verdict != daoguard.VerdictAllow || rep.Changes[0].Would.Verdict != daoguard.VerdictNeedsApproval {
			t.Fatalf("stricter candidate: %+v", rep)
		}
		// A candidate without the window lets the third and fourth through.
		loose := must[*policy.Policy](t)(policy.Parse([]byte(strings.Replace(PipelinePolicy, "      windows:\n        - {period: 24h, per: org, max_usd: \"1000\"}\n", "", 1))))
		rep = must[*service.ReplayReport](t)(svc.Replay(ctx, f.Org, loose))
		if len(rep.Changes) != 2 || rep.Looser != 2 {
			t.Fatalf("looser candidate: %+v", rep)
		}
	})

	t.Run("OK_DryRunChangesNothing", func(t *testing.T) {
		f := setup(t, h)
		svc := policyService(f.Store, f.Clock)
		load(t, f, svc)
		before := countActions(t, f.Store)
		for range 3 {
			a := must[*daoguard.Action](t)(svc.Evaluate(ctx, nil, f.Agent, Transfer("900", Vendor)))
			if a.Decision.Verdict != daoguard.VerdictAllow {
				t.Fatalf("dry run: %+v", a.Decision)
			}
		}
		if n := countActions(t, f.Store); n != before {
			t.Fatalf("dry runs recorded %d actions", n-before)
		}
		// Three dry runs of 900 spent nothing: a real 900 still passes.
		a := must[*daoguard.Action](t)(svc.Submit(ctx, f.Agent, "", Transfer("900", Vendor)))
		if a.State != daoguard.StateQueued {
			t.Fatalf("after dry runs: %s %+v", a.State, a.Decision.Reasons)
		}
		_, err := svc.Evaluate(ctx, nil, f.Agent, Transfer("-1", Vendor))
		wantCode(t, err, daoguard.CodeInvalidAmount)
		var n int
		for _, e := range entries(t, f.Store) {
			if e.Event == "policy.evaluated" {
				n++
			}
		}
		if n != 3 {
			t.Fatalf("%d dry runs audited, want 3", n)
		}
	})
}

func hasReason(d daoguard.Decision, code string) bool {
	for _, r := range d.Reasons {
		if r.Code == code {
			return true
		}
	}
	return false
}

// undoingStore refuses every third unit of work after it has done all its
// work (as a failed write at the end would), so the store undoes it.
type undoingStore struct {
	daoguard.Store
	n, undone atomic.Int64
}

var errUndone = errors.New("unit refused by the test after its work")

func (s *undoingStore) Update(ctx context.Context, fn func(daoguard.Tx) error) error {
	return s.Store.Update(ctx, func(tx daoguard.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if s.n.Add(1)%3 == 0 {
			s.undone.Add(1)
			return errUndone
		}
		return nil
	})
}
