package storetest

import (
	"context"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/anomaly"
	"github.com/daoguard/daoguard/internal/decider"
	"github.com/daoguard/daoguard/internal/policy"
	"github.com/daoguard/daoguard/internal/service"
)

// ExposurePolicy lets agents pay the vendor up to 0.5 ETH or 500 USDC a
// payment, with a day's window per agent in each asset (%s and %s in
// display units); beyond the window the council approves. The units check
// allows the whole balance in one action, so that only reservations stand
// between parallel payments and an overdraft.
const ExposurePolicy = `version: 1
name: exposure
lists:
  vendors: ["` + Vendor + `"]
groups:
  council: {role: council}
council: {group: council, approvals: 2, timelock: 1h}
units: {max_holdings_pct: "100"}
rules:
  - name: agent-vendor-payments
    principal_kinds: [agent]
    accounts: [ops]
    actions: [transfer]
    assets: [ETH, USDC]
    recipients: {lists: [vendors]}
    tier: autonomous
    limits:
      windows:
        - {period: 24h, per: agent, asset: ETH, max_amount: "%s"}
        - {period: 24h, per: agent, asset: USDC, max_amount: "%s"}
    over_limit: approval
    approval: {group: council, approvals: 2, timelock: 1h}
  - name: humans
    principal_kinds: [human]
    tier: approval
    approval: {group: council, approvals: 2, timelock: 1h}
`

// SetHoldings is a holdings snapshot a test sets: balances by symbol in
// base units, read at At — the same for every account, unless set for one.
type SetHoldings struct {
	mu   sync.Mutex
	bal  map[string]*big.Int
	each map[string]map[string]*big.Int // by lower-case address
	at   time.Time
}

// Set replaces the snapshot.
func (h *SetHoldings) Set(at time.Time, bal map[string]*big.Int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bal, h.at = bal, at
}

// SetAccount sets one account's balances.
func (h *SetHoldings) SetAccount(address string, bal map[string]*big.Int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.each == nil {
		h.each = map[string]map[string]*big.Int{}
	}
	h.each[strings.ToLower(address)] = bal
}

// Holdings implements decider.Holdings.
func (h *SetHoldings) Holdings(_ uint64, account string) (map[string]*big.Int, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if b, ok := h.each[strings.ToLower(account)]; ok {
		return b, h.at
	}
	return h.bal, h.at
}

func runExposure(t *testing.T, h Harness) {
	ctx := context.Background()
	amount := func(s string, dec int) *big.Int {
		v, err := daoguard.ParseAmount(s, dec)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	// 50 payments at once, each under every per-action limit, whose sum
	// exceeds the account's holdings and the day's window: what runs on its
	// own never exceeds the window, what goes ahead at all (autonomous or
	// awaiting approval) never exceeds the holdings, and exactly as much as
	// fits goes ahead — on one gateway and across two on one database.
	for _, tc := range []struct {
		name, asset, pay string
		dec              int
		holdings, window string
		queued, waiting  int // how many fit: autonomously, and for approval
	}{
		// Holdings bind: 11 × 0.44 = 4.84 ≤ 5.2 < 5.28.
		{"ETH_Holdings", "ETH", "0.44", 18, "5.2", "100", 11, 0},
		// The window binds first (10 × 0.44 = 4.4), then the holdings:
		// one more waits for approval, reserving 4.84 in all.
		{"ETH_Window", "ETH", "0.44", 18, "5.2", "4.4", 10, 1},
		{"USDC_Holdings", "USDC", "440", 6, "5200", "100000", 11, 0},
		{"USDC_Window", "USDC", "440", 6, "5200", "4400", 10, 1},
	} {
		for _, gateways := range []int{1, 2} {
			t.Run(fmt.Sprintf("OK_ParallelDrain_%s_%dGateways", tc.name, gateways), func(t *testing.T) {
				f := setup(t, h)
				hold := &SetHoldings{}
				hold.Set(time.Time{}, map[string]*big.Int{tc.asset: amount(tc.holdings, tc.dec)})
				win := map[string]string{"ETH": "100", "USDC": "100000"}
				win[tc.asset] = tc.window
				doc := fmt.Sprintf(ExposurePolicy, win["ETH"], win["USDC"])
				svcs := []*service.Service{service.New(f.Store, &decider.Policy{Prices: ClockPrices{f.Clock}, Holdings: hold}, nil, "gw-1")}
				if gateways == 2 {
					s2, err := h.Open(f.DSN, f.Clock.Now)
					if err != nil {
						t.Fatal(err)
					}
					defer s2.Close()
					svcs = append(svcs, service.New(s2, &decider.Policy{Prices: ClockPrices{f.Clock}, Holdings: hold}, nil, "gw-2"))
				}
				if _, err := svcs[0].LoadFirstPolicy(ctx, f.Org, doc); err != nil {
					t.Fatal(err)
				}
				intent := daoguard.Intent{Account: "ops", Kind: "transfer", Asset: tc.asset, To: Vendor, Amount: tc.pay, Rationale: "pay invoice"}
				states := make([]*daoguard.Action, 50)
				errs := race(50, func(i int) (err error) {
					states[i], err = svcs[i%len(svcs)].Submit(ctx, f.Agent, "", intent)
					return err
				})
				for _, err := range errs {
					if err != nil {
						t.Fatal(err)
					}
				}
				count := map[daoguard.State]int{}
				for _, a := range states {
					count[a.State]++
					if a.State == daoguard.StateDenied && !hasReason(a.Decision, policy.ReasonInsufficientHoldings) {
						t.Fatalf("denied without INSUFFICIENT_HOLDINGS: %+v", a.Decision.Reasons)
					}
				}
				if count[daoguard.StateQueued] != tc.queued || count[daoguard.StateAwaitingApproval] != tc.waiting || count[daoguard.StateDenied] != 50-tc.queued-tc.waiting {
					t.Fatalf("queued %d, awaiting approval %d, denied %d; want %d, %d, %d", count[daoguard.StateQueued], count[daoguard.StateAwaitingApproval], count[daoguard.StateDenied], tc.queued, tc.waiting, 50-tc.queued-tc.waiting)
				}
				pay, hl, w := amount(tc.pay, tc.dec), amount(tc.holdings, tc.dec), amount(tc.window, tc.dec)
				auto := new(big.Int).Mul(pay, big.NewInt(int64(count[daoguard.StateQueued])))
				ahead := new(big.Int).Mul(pay, big.NewInt(int64(tc.queued+tc.waiting)))
				if auto.Cmp(w) > 0 || ahead.Cmp(hl) > 0 {
					t.Fatalf("autonomous %s > window %s or ahead %s > holdings %s", auto, w, ahead, hl)
				}
				// The store holds exactly what went ahead, on every gateway.
				for _, svc := range svcs {
					ev, err := svc.Evaluate(ctx, nil, f.Agent, intent)
					if err != nil {
						t.Fatal(err)
					}
					if got := ev.Decision.Inputs.Reserved[tc.asset]; got == nil || got.Int().Cmp(ahead) != 0 {
						t.Fatalf("reserved %v, want %s", got, ahead)
					}
				}
			})
		}
	}

	// Denied dry runs are denials: asking what would pass, five times in an
	// hour, is limit probing like submitting it, and trips the breaker.
	t.Run("OK_DryRunProbingTrips", func(t *testing.T) {
		f := setup(t, h)
		cfg := anomaly.DefaultConfig()
		f.Svc.Anomaly = &cfg
		queued := must[*daoguard.Action](t)(f.Svc.Submit(ctx, f.Agent, "", Transfer("5", Vendor)))
		for i := range cfg.ProbeCount {
			// An allowed dry run in between counts for nothing.
			must[*daoguard.Action](t)(f.Svc.Evaluate(ctx, nil, f.Agent, Transfer("5", Vendor)))
			ev := must[*daoguard.Action](t)(f.Svc.Evaluate(ctx, nil, f.Agent, Transfer("5", Attacker)))
			if ev.Decision.Verdict != daoguard.VerdictDeny {
				t.Fatalf("dry run %d: %s", i+1, ev.Decision.Verdict)
			}
			var p *daoguard.Principal
			must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) { p, err = tx.Principal(ctx, f.Agent); return err }))
			if want := i == cfg.ProbeCount-1; (p.Autonomy == daoguard.AutonomySupervised) != want {
				t.Fatalf("after %d denied dry runs: %s", i+1, p.Autonomy)
			}
		}
		// What the agent had queued waits for a human now.
		if got, _, err := f.Svc.Action(ctx, f.Humans[0], queued.ID); err != nil || got.State != daoguard.StateAwaitingApproval {
			t.Fatalf("queued before the trip: %v %s", err, got.State)
		}
	})

	// A reservation ends with its action: given back when the action ends
	// without moving funds, kept as settled when it executes until a
	// holdings snapshot read after the payment shows it.
	// The window snapshot: the store keeps the one reaching furthest; a
	// gateway warmed from it (and the entries after it) judges exactly as
	// the one that wrote it; one that does not parse is passed over for
	// the entries themselves.
	t.Run("OK_WindowSnapshot", func(t *testing.T) {
		f := setup(t, h)
		put := func(seq uint64, data string) {
			t.Helper()
			if err := f.Store.Update(ctx, func(tx daoguard.Tx) error {
				return tx.PutLedgerSnapshot(ctx, &daoguard.LedgerSnapshot{OrgID: f.Org, Seq: seq, Data: []byte(data)})
			}); err != nil {
				t.Fatal(err)
			}
		}
		get := func() *daoguard.LedgerSnapshot {
			t.Helper()
			var s *daoguard.LedgerSnapshot
			if err := f.Store.View(ctx, func(tx daoguard.Tx) (err error) { s, err = tx.LedgerSnapshot(ctx, f.Org); return err }); err != nil {
				t.Fatal(err)
			}
			return s
		}
		if err := f.Store.View(ctx, func(tx daoguard.Tx) error { _, err := tx.LedgerSnapshot(ctx, f.Org); return err }); daoguard.ErrorCode(err) != daoguard.CodeNotFound {
			t.Fatalf("no snapshot yet: %v", err)
		}
		put(5, "five")
		put(3, "three") // older: ignored
		if s := get(); s.Seq != 5 || string(s.Data) != "five" || s.At.IsZero() {
			t.Fatalf("%d %q %v", s.Seq, s.Data, s.At)
		}

		f = setup(t, h)
		hold := &SetHoldings{}
		hold.Set(time.Time{}, map[string]*big.Int{"ETH": amount("1000", 18), "USDC": amount("1000000", 6)})
		newDecider := func() *decider.Policy {
			return &decider.Policy{Prices: ClockPrices{f.Clock}, Holdings: hold}
		}
		d1 := newDecider()
		svc := service.New(f.Store, d1, nil, "gw-1")
		if _, err := svc.LoadFirstPolicy(ctx, f.Org, fmt.Sprintf(ExposurePolicy, "100", "100000")); err != nil {
			t.Fatal(err)
		}
		pay := func(n int) {
			for i := 0; i < n; i++ {
				f.Clock.Advance(7 * time.Minute)
				for _, in := range []daoguard.Intent{
					{Account: "ops", Kind: "transfer", Asset: "USDC", To: Vendor, Amount: "3", Rationale: "pay invoice"},
					{Account: "ops", Kind: "transfer", Asset: "ETH", To: Vendor, Amount: "0.01", Rationale: "pay invoice"},
				} {
					if a, err := svc.Submit(ctx, []string{f.Agent, f.Agent2}[i%2], "", in); err != nil || a.State == daoguard.StateDenied {
						t.Fatalf("%v %+v", err, a)
					}
				}
			}
		}
		judged := func(svc *service.Service) string {
			t.Helper()
			var out []string
			for _, asset := range []string{"USDC", "ETH"} {
				ev, err := svc.Evaluate(ctx, nil, f.Agent, daoguard.Intent{Account: "ops", Kind: "transfer", Asset: asset, To: Vendor, Amount: "1", Rationale: "pay invoice"})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range ev.Decision.Reasons {
					out = append(out, r.Code+" "+r.Detail)
				}
			}
			return strings.Join(out, "\n")
		}
		pay(30)
		if ok, err := d1.Snapshot(ctx, f.Store, f.Org, 0); err != nil || !ok {
			t.Fatalf("snapshot: %v %v", ok, err)
		}
		pay(4) // after the snapshot: read as its tail
		want := judged(svc)
		if !strings.Contains(want, "+ 1") {
			t.Fatalf("no window in\n%s", want)
		}
		d2 := newDecider()
		if err := d2.Warm(ctx, f.Store, f.Org); err != nil {
			t.Fatal(err)
		}
		if got := judged(service.New(f.Store, d2, nil, "gw-2")); got != want {
			t.Fatalf("warmed from the snapshot:\n%s\nwant\n%s", got, want)
		}
		put(get().Seq+1000, "not a window")
		d3 := newDecider()
		if err := d3.Warm(ctx, f.Store, f.Org); err != nil {
			t.Fatal(err)
		}
		if got := judged(service.New(f.Store, d3, nil, "gw-3")); got != want {
			t.Fatalf("warmed past a broken snapshot:\n%s\nwant\n%s", got, want)
		}
	})

	t.Run("OK_ReleaseAndSettle", func(t *testing.T) {
		f := setup(t, h)
		hold := &SetHoldings{}
		hold.Set(time.Time{}, map[string]*big.Int{"USDC": amount("1000", 6)})
		svc := service.New(f.Store, &decider.Policy{Prices: ClockPrices{f.Clock}, Holdings: hold}, f.Ledger, "gw-1")
		if _, err := svc.LoadFirstPolicy(ctx, f.Org, fmt.Sprintf(ExposurePolicy, "100", "100000")); err != nil {
			t.Fatal(err)
		}
		pay := func(amt string) *daoguard.Action {
			t.Helper()
			return must[*daoguard.Action](t)(svc.Submit(ctx, f.Agent, "", Transfer(amt, Vendor)))
		}
		a, b := pay("400"), pay("400")
		if a.State != daoguard.StateQueued || b.State != daoguard.StateQueued {
			t.Fatalf("%s %s", a.State, b.State)
		}
		if c := pay("400"); c.State != daoguard.StateDenied || !hasReason(c.Decision, policy.ReasonInsufficientHoldings) {
			t.Fatalf("third: %s %+v", c.State, c.Decision.Reasons)
		} else if d := reasonDetail(c.Decision, policy.ReasonInsufficientHoldings); !strings.Contains(d, "800 are reserved by open actions (200 available)") {
			t.Fatalf("detail %q", d)
		}
		// A veto gives a's 400 back.
		must[*daoguard.Action](t)(svc.Veto(ctx, f.Humans[0], a.ID, "not now"))
		if c := pay("400"); c.State != daoguard.StateQueued {
			t.Fatalf("after the veto: %s %+v", c.State, c.Decision.Reasons)
		}
		// Executed: still counted against the old snapshot.
		if n, err := svc.ExecuteDue(ctx); err != nil || n != 2 {
			t.Fatalf("executed %d: %v", n, err)
		}
		if c := pay("400"); c.State != daoguard.StateDenied {
			t.Fatalf("after execution, on the old snapshot: %s %+v", c.State, c.Decision.Reasons)
		}
		// A snapshot read after the payments shows them: 200 left, free
		// (once past the margin for clocks that disagree; within it, still
		// counted as reserved).
		f.Clock.Advance(30 * time.Second)
		hold.Set(f.Clock.Now(), map[string]*big.Int{"USDC": amount("200", 6)})
		if c := pay("200"); c.State != daoguard.StateDenied {
			t.Fatalf("within the margin: %s %+v", c.State, c.Decision.Reasons)
		}
		f.Clock.Advance(time.Minute)
		hold.Set(f.Clock.Now(), map[string]*big.Int{"USDC": amount("200", 6)})
		if c := pay("200"); c.State != daoguard.StateQueued {
			t.Fatalf("on a new snapshot: %s %+v", c.State, c.Decision.Reasons)
		}
		if c := pay("0.000001"); c.State != daoguard.StateDenied {
			t.Fatalf("nothing left: %s %+v", c.State, c.Decision.Reasons)
		}
	})
}

// pullPolicy lets agents pay the vendor from ops, and pull the treasury's
// USDC to the vendor (transferFrom under its allowance), on their own —
// but the treasury is a Safe, so a pull still waits for approval.
const pullPolicy = `version: 1
name: pull
lists:
  vendors: ["` + Vendor + `"]
groups:
  council: {role: council}
council: {group: council, approvals: 2, timelock: 1h}
units: {max_holdings_pct: "100"}
rules:
  - {name: ops, principal_kinds: [agent], accounts: [ops], actions: [transfer], assets: [USDC], recipients: {lists: [vendors]}, tier: autonomous}
  - {name: treasury, principal_kinds: [agent], accounts: [treasury], actions: [transfer], assets: [USDC], recipients: {lists: [vendors]}, tier: autonomous, limits: {max_amount: "450"}}
`

// runPull: transferFrom of another account's tokens is that account's
// payment — its holdings less its reservations bound it, it reserves them,
// and the acting account's are untouched.
func runPull(t *testing.T, h Harness) {
	ctx := context.Background()
	const ops, treasury, usdc = "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "0xcccccccccccccccccccccccccccccccccccccccc"
	t.Run("OK_PullFromTreasury", func(t *testing.T) {
		f := setup(t, h)
		hold := &SetHoldings{}
		hold.SetAccount(ops, map[string]*big.Int{"USDC": big.NewInt(10_000000)})
		hold.SetAccount(treasury, map[string]*big.Int{"USDC": big.NewInt(1000_000000)})
		svc := service.New(f.Store, &decider.Policy{Prices: ClockPrices{f.Clock}, Holdings: hold}, f.Ledger, "gw-1")
		if _, err := svc.LoadFirstPolicy(ctx, f.Org, pullPolicy); err != nil {
			t.Fatal(err)
		}
		pull := func(amount int64) *daoguard.Action {
			t.Helper()
			data := fmt.Sprintf("0x23b872dd%064s%064s%064x", treasury[2:], Vendor[2:], amount)
			return must[*daoguard.Action](t)(svc.Submit(ctx, f.Agent, "", daoguard.Intent{Account: "ops", Kind: "call", To: usdc, Data: data, Rationale: "pay invoice"}))
		}
		// The treasury is a Safe: a pull of its funds waits for approval
		// (SAFE_PULL), and reserves them meanwhile.
		a, b := pull(400_000000), pull(400_000000)
		if a.State != daoguard.StateAwaitingApproval || b.State != daoguard.StateAwaitingApproval || !hasReason(a.Decision, policy.ReasonSafePull) {
			t.Fatalf("pulls within the treasury's holdings: %s %+v / %s %+v", a.State, a.Decision.Reasons, b.State, b.Decision.Reasons)
		}
		if o := a.Decision.Inputs.Owners[treasury]; o == nil || o.Account != "treasury" || o.Holdings["USDC"].Int().Int64() != 1000_000000 {
			t.Fatalf("the decision does not record the treasury it saw: %+v", a.Decision.Inputs)
		}
		// 800 of the treasury's 1000 are reserved: a third pull is refused
		// against the treasury, however the rule or ops' holdings stand.
		c := pull(400_000000)
		if c.State != daoguard.StateDenied || !strings.Contains(reasonDetail(c.Decision, policy.ReasonInsufficientHoldings), "account treasury holds 1000 USDC, of which 800 are reserved") {
			t.Fatalf("third pull: %s %+v", c.State, c.Decision.Reasons)
		}
		var opsRes, treRes map[string]*big.Int
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) {
			if opsRes, err = tx.Reserved(ctx, f.Org, ops, time.Time{}); err != nil {
				return err
			}
			treRes, err = tx.Reserved(ctx, f.Org, treasury, time.Time{})
			return err
		}))
		if opsRes["USDC"] != nil && opsRes["USDC"].Sign() != 0 || treRes["USDC"] == nil || treRes["USDC"].Int64() != 800_000000 {
			t.Fatalf("reserved: ops %v, treasury %v", opsRes, treRes)
		}
		// ops' own payment sees ops' holdings, untouched by the pulls.
		if d := must[*daoguard.Action](t)(svc.Submit(ctx, f.Agent, "", Transfer("10", Vendor))); d.State != daoguard.StateQueued {
			t.Fatalf("ops pays: %s %+v", d.State, d.Decision.Reasons)
		}
		// Released on a rejection.
		must[*daoguard.Action](t)(svc.Reject(ctx, f.Humans[0], a.ID, "not now"))
		if c := pull(400_000000); c.State != daoguard.StateAwaitingApproval {
			t.Fatalf("after the rejection: %s %+v", c.State, c.Decision.Reasons)
		}
	})
	// One action may hold the same asset of two accounts: its own, and
	// another's it pulls. Each is its own reservation, ended together.
	t.Run("OK_ReservationsPerAccount", func(t *testing.T) {
		f := setup(t, h)
		rs := []daoguard.Reservation{
			{OrgID: f.Org, ActionID: "act_two", Account: ops, Asset: "USDC", Amount: daoguard.NewBigInt(big.NewInt(5)), USD: 5},
			{OrgID: f.Org, ActionID: "act_two", Account: treasury, Asset: "USDC", Amount: daoguard.NewBigInt(big.NewInt(7)), USD: 7},
		}
		reserved := func(account string) int64 {
			var m map[string]*big.Int
			must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) { m, err = tx.Reserved(ctx, f.Org, account, f.Clock.Now()); return err }))
			if m["USDC"] == nil {
				return 0
			}
			return m["USDC"].Int64()
		}
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.AddReservations(ctx, rs) }))
		if reserved(ops) != 5 || reserved(treasury) != 7 {
			t.Fatalf("reserved ops %d, treasury %d", reserved(ops), reserved(treasury))
		}
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.EndReservations(ctx, "act_two", false) }))
		if reserved(ops) != 0 || reserved(treasury) != 0 {
			t.Fatalf("after release: ops %d, treasury %d", reserved(ops), reserved(treasury))
		}
	})
}

func reasonDetail(d daoguard.Decision, code string) string {
	for _, r := range d.Reasons {
		if r.Code == code {
			return r.Detail
		}
	}
	return ""
}
