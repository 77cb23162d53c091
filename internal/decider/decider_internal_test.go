package decider

import (
	"context"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/policy"
)

// ledgerDB is a store's ledger table, shared by the fake units below.
type ledgerDB struct {
	mu      sync.Mutex
	entries []daoguard.LedgerEntry
	next    uint64
}

func (db *ledgerDB) add(e daoguard.LedgerEntry) uint64 {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.next++
	e.Seq = db.next
	db.entries = append(db.entries, e)
	return e.Seq
}

func (db *ledgerDB) remove(seq uint64) {
	db.mu.Lock()
	defer db.mu.Unlock()
	for i, e := range db.entries {
		if e.Seq == seq {
			db.entries = append(db.entries[:i], db.entries[i+1:]...)
			return
		}
	}
}

// fakeUnit is one unit of work over ledgerDB: just what Decide uses, with
// its undo and after-commit functions kept for the test to run.
type fakeUnit struct {
	daoguard.Tx // nil: any other method panics
	db          *ledgerDB
	now         time.Time
	beforeTail  func() // runs while "waiting for the ledger lock"
	undo, after []func()
	added       []uint64
}

const syncPolicy = `version: 1
name: t
groups: {c: {role: council}}
council: {group: c, approvals: 1, timelock: 1h}
rules:
  - name: pay
    principal_kinds: [agent]
    actions: [transfer]
    tier: autonomous
    limits:
      windows: [{period: 24h, per: org, max_count: 1000}]
`

func (u *fakeUnit) Now() time.Time { return u.now }
func (u *fakeUnit) LedgerTail(_ context.Context, _ string, after uint64, since time.Time, limit int) ([]daoguard.LedgerEntry, error) {
	if u.beforeTail != nil {
		f := u.beforeTail
		u.beforeTail = nil
		f()
	}
	u.db.mu.Lock()
	defer u.db.mu.Unlock()
	var out []daoguard.LedgerEntry
	for _, e := range u.db.entries {
		if e.Seq > after && e.At.After(since) && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}
func (u *fakeUnit) CurrentPolicy(context.Context, string) (int, error) { return 1, nil }
func (u *fakeUnit) Policy(context.Context, string, int) (*daoguard.PolicyVersion, error) {
	return &daoguard.PolicyVersion{Version: 1, Source: syncPolicy}, nil
}
func (u *fakeUnit) Assets(context.Context, string) ([]*daoguard.Asset, error) {
	return []*daoguard.Asset{{Symbol: "USDC", ChainID: 1337, Address: "0xcccccccccccccccccccccccccccccccccccccccc", Decimals: 6}}, nil
}
func (u *fakeUnit) AfterCommit(fn func()) { u.after = append(u.after, fn) }
func (u *fakeUnit) OnUndo(fn func())      { u.undo = append(u.undo, fn) }
func (u *fakeUnit) AddLedgerEntry(_ context.Context, e *daoguard.LedgerEntry) error {
	e.At = u.now
	e.Seq = u.db.add(*e)
	u.added = append(u.added, e.Seq)
	return nil
}

// rollback undoes the unit as a store would: its undo functions newest
// first, then its rows go.
func (u *fakeUnit) rollback() {
	for i := len(u.undo) - 1; i >= 0; i-- {
		u.undo[i]()
	}
	for _, s := range u.added {
		u.db.remove(s)
	}
}

func (u *fakeUnit) commit() {
	for _, f := range u.after {
		f()
	}
}

// payment is a 1 USDC transfer from ops.
func payment() *daoguard.Action {
	return &daoguard.Action{ID: "act", Decoded: daoguard.Decoded{Kind: daoguard.KindTransfer, ChainID: 1337, Account: "ops", AccountKind: daoguard.AccountWallet,
		From: "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", To: "0x9f3a11111111111111111111111111111111c0de", Asset: "USDC",
		Token: "0xcccccccccccccccccccccccccccccccccccccccc", Decimals: 6, Amount: daoguard.NewBigInt(big.NewInt(1_000000)), Operation: daoguard.OpCall}}
}

// decide runs one payment through d in unit u, recording it if allowed.
func decide(t *testing.T, d *Policy, u *fakeUnit) {
	t.Helper()
	ctx := context.Background()
	a := payment()
	dec, err := d.Decide(ctx, daoguard.DecisionInput{Org: &daoguard.Organisation{ID: "org"}, Principal: &daoguard.Principal{ID: "agent", Kind: daoguard.PrincipalAgent}, Action: a, Tx: u})
	if err != nil {
		t.Fatal(err)
	}
	if dec.Verdict == daoguard.VerdictDeny {
		t.Fatalf("denied: %+v", dec.Reasons)
	}
	// As the service records what goes ahead.
	e := &daoguard.LedgerEntry{OrgID: "org", ActionID: a.ID, PrincipalID: "agent", Agent: true, Flows: dec.Inputs.Flows}
	if err := u.AddLedgerEntry(ctx, e); err != nil {
		t.Fatal(err)
	}
	d.Added(u, *e, dec.LedgerSeq)
}

// TestUndoneBatchWhileAnotherWaits: a batch that stages committed tail
// entries and its own, then rolls back while a unit of another batch waits
// for the ledger lock, must not leave that unit blind to the committed
// entries (PostgreSQL runs several batches at once). Every committed entry
// is counted exactly once, none of the undone one.
func TestUndoneBatchWhileAnotherWaits(t *testing.T) {
	db := &ledgerDB{}
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	d := &Policy{}
	flows := []daoguard.Flow{{Asset: "USDC", Amount: daoguard.NewBigInt(big.NewInt(1)), To: "0x9f3a11111111111111111111111111111111c0de"}}

	// Entry 1, decided and committed here: the ledger is built.
	u0 := &fakeUnit{db: db, now: now}
	decide(t, d, u0)
	u0.commit()
	// Entries 2 and 3: another gateway's, committed.
	for range 2 {
		db.add(daoguard.LedgerEntry{OrgID: "org", PrincipalID: "agent", At: now, Flows: flows})
	}
	// Batch B: a unit reads the tail (2, 3) and adds entry 4.
	uB := &fakeUnit{db: db, now: now}
	decide(t, d, uB)
	// Batch A: a unit starts deciding, then waits for the ledger lock,
	// during which B rolls back.
	uA := &fakeUnit{db: db, now: now, beforeTail: uB.rollback}
	decide(t, d, uA)
	uA.commit()

	o := d.org("org")
	o.mu.Lock()
	defer o.mu.Unlock()
	got := policy.Stack(o.win.l, o.stagedLedger()).Window(policy.Key{Per: policy.PerOrg}, now.Add(-time.Hour))
	if got.Count != 4 || o.win.seq != 5 {
		t.Fatalf("the window counts %d entries through seq %d; the store holds 4 (1, 2, 3, 5)", got.Count, o.win.seq)
	}
}

// stagedLedger returns the staged entries as a ledger. Under o.mu.
func (o *orgPolicy) stagedLedger() *policy.Ledger {
	l := policy.NewLedger(4, 4)
	for _, e := range o.staged {
		l.Record(e.At, e.PrincipalID, policyFlows(e.Flows))
	}
	return l
}

// TestPolicyChangeDoesNotCount: a policy change is judged without the
// windows, so it does not count in them (the service records no entry for
// it). Were it recorded, it would be staged over another gateway's entry
// that this one has not read yet: the window would miss that entry.
func TestPolicyChangeDoesNotCount(t *testing.T) {
	db := &ledgerDB{}
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	d := &Policy{}
	ctx := context.Background()
	org, pay := &daoguard.Organisation{ID: "org"}, payment()
	// A dry run on an empty ledger builds the window, at seq 0.
	u0 := &fakeUnit{db: db, now: now}
	if _, err := d.Decide(ctx, daoguard.DecisionInput{Org: org, Principal: &daoguard.Principal{ID: "agent", Kind: daoguard.PrincipalAgent}, Action: pay, Tx: u0, DryRun: true}); err != nil {
		t.Fatal(err)
	}
	u0.commit()
	// Entry 1: another gateway's payment.
	flows := []daoguard.Flow{{Asset: "USDC", Amount: daoguard.NewBigInt(big.NewInt(1)), To: "0x9f3a11111111111111111111111111111111c0de"}}
	db.add(daoguard.LedgerEntry{OrgID: "org", PrincipalID: "agent", At: now, Flows: flows})
	// A human proposes a policy change; the service records an entry only
	// for a decision that counts.
	u1 := &fakeUnit{db: db, now: now}
	a := &daoguard.Action{ID: "pol", Decoded: daoguard.Decoded{Kind: daoguard.KindPolicy}}
	dec, err := d.Decide(ctx, daoguard.DecisionInput{Org: org, Principal: &daoguard.Principal{ID: "human", Kind: daoguard.PrincipalHuman}, Action: a, Tx: u1})
	if err != nil {
		t.Fatal(err)
	}
	if dec.Verdict == daoguard.VerdictDeny {
		t.Fatalf("a policy change: %+v", dec.Reasons)
	}
	if dec.Counts {
		e := &daoguard.LedgerEntry{OrgID: "org", ActionID: a.ID, PrincipalID: "human"}
		if err := u1.AddLedgerEntry(ctx, e); err != nil {
			t.Fatal(err)
		}
		d.Added(u1, *e, dec.LedgerSeq)
	}
	u1.commit()
	// The next payment reads what it does not know and counts everything.
	u2 := &fakeUnit{db: db, now: now}
	decide(t, d, u2)
	u2.commit()
	o := d.org("org")
	o.mu.Lock()
	defer o.mu.Unlock()
	want := len(db.entries)
	if got := policy.Stack(o.win.l, o.stagedLedger()).Window(policy.Key{Per: policy.PerOrg}, now.Add(-time.Hour)).Count; got != want {
		t.Fatalf("the window counts %d entries; the store holds %d", got, want)
	}
}
