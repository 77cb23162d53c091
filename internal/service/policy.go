package service

import (
	"context"
	"math/big"
	"sync"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/policy"
)

// Prices is a snapshot source of price readings. Quotes must answer from
// memory (a background poller fills it): deciding does no network I/O.
type Prices interface {
	Quotes() map[string]*policy.Quotes
}

// Holdings is a snapshot source of account balances, by asset symbol in
// base units; nil or a missing account means unknown. Like Prices, it
// answers from memory.
type Holdings interface {
	Holdings(chainID uint64, account string) map[string]*big.Int
}

// Known counterparties are remembered for at least this long, whatever the
// longest window, for the look-alike check.
const counterpartyMemory = 30 * 24 * time.Hour

// tailLimit bounds one read of the ledger's newest entries.
const tailLimit = 10_000

// PolicyDecider is the Decider backed by the policy engine. Per
// organisation it keeps compiled policies by version and the window ledger
// in memory. Each decision, in its own unit: reads the ledger entries
// committed since the ledger was last brought up to date (in PostgreSQL
// under the organisation's ledger lock, so decisions and policy changes
// of every gateway on the database are serialised), then the policy
// version in force, evaluates, and hands back the ledger entry to record
// once the action is written. Nothing in memory changes until the unit
// has committed (AfterCommit): a unit that is rolled back or rerun leaves
// no trace.
type PolicyDecider struct {
	Prices   Prices   // nil: no prices, USD rules fail closed
	Holdings Holdings // nil: holdings unknown

	mu   sync.Mutex
	orgs map[string]*orgPolicy
}

// orgPolicy is one organisation's compiled policies and ledger. mu is
// never held across a store call: a unit waiting for the ledger lock in
// PostgreSQL while holding mu would deadlock with a unit of another batch
// that holds the lock and wants mu.
type orgPolicy struct {
	mu       sync.Mutex
	compiled map[int]*compiled // by version; the few most recent
	win      *window           // the committed ledger
}

type compiled struct {
	pol *policy.Policy
	cat *policy.Catalog
}

// window is a ledger with every committed entry through seq.
type window struct {
	l       *policy.Ledger
	seq     uint64
	horizon time.Duration // loaded back this far
	trimmed time.Time
}

// maxCompiled bounds the compiled versions kept per organisation.
const maxCompiled = 4

func (d *PolicyDecider) org(id string) *orgPolicy {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.orgs == nil {
		d.orgs = map[string]*orgPolicy{}
	}
	o := d.orgs[id]
	if o == nil {
		o = &orgPolicy{compiled: map[int]*compiled{}}
		d.orgs[id] = o
	}
	return o
}

// version returns policy version v compiled, with the catalogue as tx sees
// it. Only stored (validated) documents are compiled; one that no longer
// compiles (a newer document read by an older binary) fails closed.
func (o *orgPolicy) version(ctx context.Context, tx daoguard.Tx, orgID string, v int) (*compiled, error) {
	o.mu.Lock()
	c := o.compiled[v]
	o.mu.Unlock()
	if c != nil {
		return c, nil
	}
	pv, err := tx.Policy(ctx, orgID, v)
	if err != nil {
		return nil, stored(err)
	}
	pol, err := policy.Parse([]byte(pv.Source))
	if err != nil {
		return nil, daoguard.Errorf(daoguard.CodeInternal, "policy version %d does not compile: %v", v, err)
	}
	assets, err := tx.Assets(ctx, orgID)
	if err != nil {
		return nil, stored(err)
	}
	c = &compiled{pol: pol, cat: policy.NewCatalog(assets)}
	// Cached only once committed: the version may belong to this batch.
	tx.AfterCommit(func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		if len(o.compiled) >= maxCompiled {
			for k := range o.compiled {
				if k < v {
					delete(o.compiled, k)
					break
				}
			}
		}
		o.compiled[v] = c
	})
	return c, nil
}

func horizonOf(p *policy.Policy) time.Duration { return max(p.Horizon(), counterpartyMemory) }

func sameDigits(l *policy.Ledger, lead, trail int) bool {
	a, b := l.LookAlikeDigits()
	return a == lead && b == trail
}

// readTail reads the organisation's entries after seq and since, all of
// them, in seq order.
func readTail(ctx context.Context, tx daoguard.Tx, orgID string, after uint64, since time.Time) ([]daoguard.LedgerEntry, error) {
	var tail []daoguard.LedgerEntry
	for {
		es, err := tx.LedgerTail(ctx, orgID, after, since, tailLimit)
		if err != nil {
			return nil, stored(err)
		}
		tail = append(tail, es...)
		if len(es) < tailLimit {
			return tail, nil
		}
		after = es[len(es)-1].Seq
	}
}

// Decide implements daoguard.Decider.
func (d *PolicyDecider) Decide(ctx context.Context, in daoguard.DecisionInput) (daoguard.Decision, error) {
	tx, a, orgID := in.Tx, in.Action, in.Org.ID
	o := d.org(orgID)
	now := tx.Now()
	o.mu.Lock()
	w := o.win
	o.mu.Unlock()
	var from uint64 // the tail covers every entry after from
	since := now.Add(-counterpartyMemory)
	if w != nil {
		o.mu.Lock()
		from, since = w.seq, now.Add(-w.horizon)
		o.mu.Unlock()
	}
	// The tail first: in a write unit this takes the ledger lock, so the
	// policy version read next is ordered with every other decision and
	// policy change (applyPolicy takes the lock too).
	tail, err := readTail(ctx, tx, orgID, from, since)
	if err != nil {
		return daoguard.Decision{}, err
	}
	v, err := tx.CurrentPolicy(ctx, orgID)
	if err != nil {
		return daoguard.Decision{}, stored(err)
	}
	if v == 0 {
		dec, _ := daoguard.DenyAll{}.Decide(ctx, in)
		if a.Decoded.Kind == daoguard.KindPolicy {
			dec.Reasons[0].WouldPass = "the operator loads the first policy with 'daoguard policy apply --data DIR FILE'"
		}
		return dec, nil
	}
	c, err := o.version(ctx, tx, orgID, v)
	if err != nil {
		return daoguard.Decision{}, err
	}
	pol := c.pol
	if a.Decoded.Kind == daoguard.KindPolicy {
		return pol.ChangeDecision(in.Principal.Kind != daoguard.PrincipalHuman), nil
	}
	// A ledger that does not reach back as far as this policy looks, or
	// compares other look-alike digits, is rebuilt privately from what this
	// unit sees, and installed only once the unit has committed.
	lead, trail := pol.LookAlikeDigits()
	if w == nil || horizonOf(pol) > w.horizon || !sameDigits(w.l, lead, trail) {
		nw := &window{l: pol.NewLedger(), horizon: horizonOf(pol), trimmed: now}
		es, err := readTail(ctx, tx, orgID, 0, now.Add(-nw.horizon))
		if err != nil {
			return daoguard.Decision{}, err
		}
		for _, e := range es {
			nw.l.Record(e.At, e.PrincipalID, policyFlows(e.Flows))
			nw.seq = e.Seq
		}
		old := w
		tx.AfterCommit(func() {
			o.mu.Lock()
			defer o.mu.Unlock()
			if o.win == old {
				o.win = nw
			}
		})
		w, tail, from = nw, nil, nw.seq
	}
	var holdings map[string]*big.Int
	if d.Holdings != nil {
		holdings = d.Holdings.Holdings(a.Decoded.ChainID, a.Decoded.From)
	}
	var quotes map[string]*policy.Quotes
	if d.Prices != nil {
		quotes = d.Prices.Quotes()
	}
	// Evaluate under mu (pure computation, no store call), so that no fold
	// into w runs meanwhile: the tail is cut at w's current seq and
	// stacked on it, each entry counted exactly once.
	o.mu.Lock()
	if now.Sub(w.trimmed) > time.Minute {
		w.l.Trim(now.Add(-w.horizon))
		w.trimmed = now
	}
	var hist policy.History = w.l
	var recent *policy.Ledger
	for _, e := range tail {
		if e.Seq > w.seq {
			if recent == nil {
				recent = pol.NewLedger()
			}
			recent.Record(e.At, e.PrincipalID, policyFlows(e.Flows))
		}
	}
	if recent != nil {
		hist = policy.Stack(w.l, recent)
	}
	res := pol.Evaluate(&policy.Input{
		Now: now, Principal: in.Principal, Action: &a.Decoded, Catalog: c.cat,
		Prices: quotes, Holdings: holdings, History: hist,
	})
	o.mu.Unlock()
	dec := res.Decision
	dec.Inputs = decisionInputs(res, holdings)
	if in.DryRun {
		return dec, nil
	}
	// Once this unit commits, the tail it read is committed too: fold it
	// in. Then, if the action goes ahead, its own entry (Record).
	if len(tail) > 0 {
		tx.AfterCommit(func() { o.fold(from, tail) })
	}
	last := from
	if len(tail) > 0 {
		last = tail[len(tail)-1].Seq
	}
	if dec.Verdict != daoguard.VerdictDeny {
		flows := dec.Inputs.Flows
		dec.Record = func(ctx context.Context) error {
			// What goes ahead counts against the windows from now on, also
			// while it waits for approval: queueing many small requests
			// must not get around a window.
			e := &daoguard.LedgerEntry{OrgID: orgID, ActionID: a.ID, PrincipalID: in.Principal.ID, Flows: flows}
			if err := tx.AddLedgerEntry(ctx, e); err != nil {
				return err
			}
			tx.AfterCommit(func() { o.fold(last, []daoguard.LedgerEntry{*e}) })
			return nil
		}
	}
	return dec, nil
}

// fold adds committed entries that the ledger lacks. They must cover every
// entry after from: if the ledger is not up to from (another unit's fold
// has not run, or was skipped), folding them would leave a gap, so they are
// left for the next unit's tail, which reads everything after the ledger.
func (o *orgPolicy) fold(from uint64, es []daoguard.LedgerEntry) {
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.win
	if w == nil || w.seq < from {
		return
	}
	for i := range es {
		if e := &es[i]; e.Seq > w.seq {
			w.l.Record(e.At, e.PrincipalID, policyFlows(e.Flows))
			w.seq = e.Seq
		}
	}
}

// decisionInputs keeps what the decision saw, for the record and replays.
func decisionInputs(res policy.Result, holdings map[string]*big.Int) *daoguard.DecisionInputs {
	in := &daoguard.DecisionInputs{Flows: make([]daoguard.Flow, len(res.Flows))}
	for i, f := range res.Flows {
		in.Flows[i] = daoguard.Flow{Asset: f.Asset, Token: f.Token, Amount: daoguard.NewBigInt(f.Amount), USD: f.USD, To: f.To}
	}
	if len(res.Prices) > 0 {
		in.Prices = make(map[string]string, len(res.Prices))
		for sym, p := range res.Prices {
			in.Prices[sym] = daoguard.FormatAmount(p, 18) // exact: a replay parses it back
		}
	}
	if len(holdings) > 0 {
		in.Holdings = make(map[string]*daoguard.BigInt, len(holdings))
		for sym, v := range holdings {
			in.Holdings[sym] = daoguard.NewBigInt(v)
		}
	}
	return in
}

func policyFlows(fs []daoguard.Flow) []policy.Flow {
	out := make([]policy.Flow, len(fs))
	for i, f := range fs {
		amt := new(big.Int)
		if f.Amount != nil {
			amt = f.Amount.Int()
		}
		out[i] = policy.Flow{Asset: f.Asset, Token: f.Token, Amount: amt, USD: f.USD, To: f.To}
	}
	return out
}

// storeError marks a failure to read or write the store while deciding:
// the unit is abandoned (and may be rerun), never turned into a denial.
type storeError struct{ err error }

func (e *storeError) Error() string { return e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// stored wraps a store error; nil stays nil.
func stored(err error) error {
	if err == nil {
		return nil
	}
	return &storeError{err}
}
