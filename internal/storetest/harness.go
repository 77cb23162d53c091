// Package storetest is the conformance suite every store must pass, and the
// test doubles it uses: a fixed clock, TestDecider (the explicitly named
// stand-in for the policy engine) and Ledger (an executor whose side effects
// are lines in a file, so double execution is countable across processes).
//
// The suite drives the real service over the real store: it tests what
// users rely on (state machine, approvals, kill switch, idempotency, races,
// crash recovery), not only the store's methods.
package storetest

import (
	"context"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/service"
)

// Harness tells the suite how to make and open a store.
type Harness struct {
	// NewDSN returns the location of a fresh, empty store.
	NewDSN func(t testing.TB) string
	// Open opens (creating if needed) the store at dsn with the clock now.
	Open func(dsn string, now func() time.Time) (daoguard.Store, error)
	// Exec runs raw SQL against the store's database, bypassing the code,
	// to prove the database itself enforces what the code promises.
	Exec func(dsn, query string) error
	// Untrigger is the SQL that lifts the database's append-only guards on
	// the audit log and its tree, as someone with the database's owner
	// rights could: the tamper tests then change the log behind the code.
	Untrigger []string
	// OpenReadOnly opens the existing store at dsn for reading only (the
	// offline verifier's way).
	OpenReadOnly func(dsn string) (daoguard.Store, error)
}

// Clock is a settable clock shared by a test and its store.
type Clock struct {
	mu    sync.Mutex
	t     time.Time
	since time.Time // running clocks: the real time t was read at
}

// NewClock starts at a fixed, microsecond-aligned time and moves only when
// advanced.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)} }

// NewRunningClock starts at the current time and moves with real time (and
// when advanced). Benchmarks use it: under a stopped clock every id made in
// a run shares one timestamp, so time-ordered ids arrive in random order and
// every index on them takes random-page inserts that production never sees.
func NewRunningClock() *Clock {
	now := time.Now()
	return &Clock{t: now.UTC().Truncate(time.Microsecond), since: now}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.since.IsZero() {
		return c.t
	}
	return c.t.Add(time.Since(c.since)).Truncate(time.Microsecond)
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// TestDecider is the stand-in decider used by tests until the policy engine
// lands: transfers to a recipient in Deny are denied; transfers of at most
// AutoLimit base units are allowed; everything else needs Required approvals
// and waits Timelock. It is deliberately not usable as a production policy.
type TestDecider struct {
	AutoLimit *big.Int
	Deny      map[string]bool
	Required  int
	Timelock  time.Duration
}

// Decide applies the rules above.
func (d *TestDecider) Decide(_ context.Context, in daoguard.DecisionInput) (daoguard.Decision, error) {
	dec := in.Action.Decoded
	if d.Deny[dec.To] {
		return daoguard.Decision{Verdict: daoguard.VerdictDeny, Tier: "deny", Reasons: []daoguard.Reason{{Code: "RECIPIENT_DENYLISTED", Rule: "test.deny", Detail: dec.To}}}, nil
	}
	if dec.Kind == daoguard.KindTransfer && dec.Amount.Int().Cmp(d.AutoLimit) <= 0 {
		return daoguard.Decision{Verdict: daoguard.VerdictAllow, Tier: "autonomous", Reasons: []daoguard.Reason{{Code: "WITHIN_AUTO_LIMIT", Rule: "test.auto"}}}, nil
	}
	return daoguard.Decision{Verdict: daoguard.VerdictNeedsApproval, Tier: "approval", RequiredApprovals: d.Required, Timelock: d.Timelock,
		Reasons: []daoguard.Reason{{Code: "ABOVE_AUTO_LIMIT", Rule: "test.auto"}}}, nil
}

// Fixture is a seeded organisation.
type Fixture struct {
	DSN    string
	Org    string
	Agent  string
	Agent2 string
	Humans []string // three humans with role "council"
	Clock  *Clock
	Store  daoguard.Store
	Svc    *service.Service
	Ledger *Ledger
	Dec    *TestDecider
}

// Recipients used by the fixtures.
const (
	Vendor   = "0x1111111111111111111111111111111111111111"
	Attacker = "0x2222222222222222222222222222222222222222"
)

// Seed writes an organisation with two agents, three humans, a wallet and a
// Safe account, and the assets ETH (native, 18) and USDC (6).
func Seed(ctx context.Context, s daoguard.Store) error {
	return s.Update(ctx, func(tx daoguard.Tx) error {
		if err := tx.PutOrg(ctx, &daoguard.Organisation{ID: "org_test", Name: "Test DAO"}); err != nil {
			return err
		}
		ps := []*daoguard.Principal{
			{ID: "agent_1", OrgID: "org_test", Kind: daoguard.PrincipalAgent, Name: "payroll bot", Autonomy: daoguard.AutonomyAutonomous},
			{ID: "agent_2", OrgID: "org_test", Kind: daoguard.PrincipalAgent, Name: "grants bot", Autonomy: daoguard.AutonomyAutonomous},
			{ID: "human_1", OrgID: "org_test", Kind: daoguard.PrincipalHuman, Name: "alice", Roles: []string{"council"}},
			{ID: "human_2", OrgID: "org_test", Kind: daoguard.PrincipalHuman, Name: "bob", Roles: []string{"council"}},
			{ID: "human_3", OrgID: "org_test", Kind: daoguard.PrincipalHuman, Name: "carol", Roles: []string{"council", "steward"}},
		}
		for _, p := range ps {
			if err := tx.PutPrincipal(ctx, p); err != nil {
				return err
			}
		}
		for _, a := range []*daoguard.Account{
			{OrgID: "org_test", Name: "ops", ChainID: 1337, Address: "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", Kind: daoguard.AccountWallet},
			{OrgID: "org_test", Name: "treasury", ChainID: 1337, Address: "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", Kind: daoguard.AccountSafe},
		} {
			if err := tx.PutAccount(ctx, a); err != nil {
				return err
			}
		}
		for _, a := range []*daoguard.Asset{
			{OrgID: "org_test", Symbol: "ETH", ChainID: 1337, Decimals: 18},
			{OrgID: "org_test", Symbol: "USDC", ChainID: 1337, Address: "0xcccccccccccccccccccccccccccccccccccccccc", Decimals: 6},
		} {
			if err := tx.PutAsset(ctx, a); err != nil {
				return err
			}
		}
		return nil
	})
}

// NewDecider returns the decider the suite uses: up to 1000 USDC runs
// autonomously, more needs two council approvals and a one-hour timelock,
// and Attacker is denied.
func NewDecider() *TestDecider {
	return &TestDecider{AutoLimit: big.NewInt(1000_000000), Deny: map[string]bool{Attacker: true}, Required: 2, Timelock: time.Hour}
}

// setup opens a fresh, seeded store with a service over it.
func setup(t *testing.T, h Harness) *Fixture {
	t.Helper()
	clock := NewClock()
	dsn := h.NewDSN(t)
	s, err := h.Open(dsn, clock.Now)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := Seed(context.Background(), s); err != nil {
		t.Fatalf("seed: %v", err)
	}
	ledger := &Ledger{Path: t.TempDir() + "/ledger.jsonl"}
	dec := NewDecider()
	svc := service.New(s, dec, ledger, "node-test")
	return &Fixture{DSN: dsn, Org: "org_test", Agent: "agent_1", Agent2: "agent_2", Humans: []string{"human_1", "human_2", "human_3"},
		Clock: clock, Store: s, Svc: svc, Ledger: ledger, Dec: dec}
}

// Transfer returns a USDC transfer intent from ops.
func Transfer(amount, to string) daoguard.Intent {
	return daoguard.Intent{Account: "ops", Kind: "transfer", Asset: "USDC", To: to, Amount: amount, Rationale: "pay invoice"}
}

func wantCode(t *testing.T, err error, code daoguard.Code) {
	t.Helper()
	if got := daoguard.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return v
	}
}

// must2 is must for the calls that also return a control action.
func must2[T any](t *testing.T) func(T, *daoguard.Action, error) T {
	return func(v T, _ *daoguard.Action, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return v
	}
}

// resumeBy resumes the organisation the way loosening needs: the first
// human asks, the second approves.
func resumeBy(t *testing.T, svc *service.Service, first, second string) {
	t.Helper()
	ctx := context.Background()
	org, a, err := svc.Resume(ctx, first, "all clear")
	if err != nil {
		t.Fatal(err)
	}
	if !org.Paused || a == nil || a.State != daoguard.StateAwaitingApproval {
		t.Fatalf("one human resumed alone: paused %v, %+v", org.Paused, a)
	}
	if org, a, err = svc.Resume(ctx, second, "agreed"); err != nil {
		t.Fatal(err)
	}
	if org.Paused || a.State != daoguard.StateExecuted {
		t.Fatalf("after the second human: paused %v, %s", org.Paused, a.State)
	}
}

// raiseBy raises an agent's autonomy the way loosening needs.
func raiseBy(t *testing.T, svc *service.Service, agent string, level daoguard.Autonomy, first, second string) *daoguard.Principal {
	t.Helper()
	ctx := context.Background()
	p, a, err := svc.SetAutonomy(ctx, first, agent, level, "reviewed")
	if err != nil {
		t.Fatal(err)
	}
	if p.Autonomy >= level || a == nil || a.State != daoguard.StateAwaitingApproval {
		t.Fatalf("one human raised alone: %s, %+v", p.Autonomy, a)
	}
	if p, a, err = svc.SetAutonomy(ctx, second, agent, level, "agreed"); err != nil {
		t.Fatal(err)
	}
	if p.Autonomy != level || a.State != daoguard.StateExecuted {
		t.Fatalf("after the second human: %s, %s", p.Autonomy, a.State)
	}
	return p
}
