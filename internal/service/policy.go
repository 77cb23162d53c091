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
// organisation it keeps the compiled policy in force and the window ledger
// in memory; each decision reads, in its own unit, the policy version and
// the ledger entries committed since the ledger was last brought up to
// date (under the ledger lock, so gateways sharing a database are
// serialised on the budget), evaluates, and records what it let through.
type PolicyDecider struct {
	Prices   Prices   // nil: no prices, USD rules fail closed
	Holdings Holdings // nil: holdings unknown

	mu   sync.Mutex
	orgs map[string]*orgPolicy
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

// orgPolicy is one organisation's policy and ledger.
type orgPolicy struct {
	mu      sync.Mutex
	version int
	pol     *policy.Policy
	cat     *policy.Catalog
	ledger  *policy.Ledger
	seq     uint64        // the ledger holds every entry through seq
	horizon time.Duration // how far back the ledger was loaded
	trimmed time.Time
}

func (d *PolicyDecider) org(id string) *orgPolicy {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.orgs == nil {
		d.orgs = map[string]*orgPolicy{}
	}
	o := d.orgs[id]
	if o == nil {
		o = &orgPolicy{}
		d.orgs[id] = o
	}
	return o
}

// Policy returns the compiled policy in force for the organisation, nil if
// none is loaded.
func (d *PolicyDecider) Policy(ctx context.Context, tx daoguard.Tx, orgID string) (*policy.Policy, error) {
	o := d.org(orgID)
	if err := o.load(ctx, tx, orgID); err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pol, nil
}

// load brings the compiled policy and the catalogue up to the version in
// force, and (re)builds the ledger when it was never loaded or the new
// policy looks further back.
//
// o.mu is never held across a store call: a unit waiting for the ledger
// lock in PostgreSQL while holding o.mu would deadlock with the unit of
// another batch that holds the ledger lock and wants o.mu.
func (o *orgPolicy) load(ctx context.Context, tx daoguard.Tx, orgID string) error {
	v, err := tx.CurrentPolicy(ctx, orgID)
	if err != nil {
		return stored(err)
	}
	o.mu.Lock()
	have, ledger, horizon := o.version, o.ledger, o.horizon
	o.mu.Unlock()
	if v == 0 {
		o.mu.Lock()
		o.version, o.pol = 0, nil
		o.mu.Unlock()
		return nil
	}
	if v == have && ledger != nil {
		return nil
	}
	var pol *policy.Policy
	var cat *policy.Catalog
	if v != have {
		pv, err := tx.Policy(ctx, orgID, v)
		if err != nil {
			return stored(err)
		}
		if pol, err = policy.Parse([]byte(pv.Source)); err != nil {
			// Only valid documents are stored; one that no longer compiles
			// (a newer document read by an older binary) must not be
			// replaced by nothing: fail closed.
			return daoguard.Errorf(daoguard.CodeInternal, "policy version %d does not compile: %v", v, err)
		}
		assets, err := tx.Assets(ctx, orgID)
		if err != nil {
			return stored(err)
		}
		cat = policy.NewCatalog(assets)
		lead, trail := pol.LookAlikeDigits()
		if ledger != nil && (horizonOf(pol) > horizon || !sameDigits(ledger, lead, trail)) {
			ledger = nil
		}
	} else {
		o.mu.Lock()
		pol, cat = o.pol, o.cat
		o.mu.Unlock()
	}
	var seq uint64
	if ledger == nil {
		horizon = horizonOf(pol)
		ledger = pol.NewLedger()
		for since := tx.Now().Add(-horizon); ; {
			es, err := tx.LedgerTail(ctx, orgID, seq, since, tailLimit)
			if err != nil {
				return stored(err)
			}
			for _, e := range es {
				ledger.Record(e.At, e.PrincipalID, policyFlows(e.Flows))
				seq = e.Seq
			}
			if len(es) < tailLimit {
				break
			}
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.version, o.pol, o.cat = v, pol, cat
	if ledger != o.ledger {
		o.ledger, o.seq, o.horizon, o.trimmed = ledger, seq, horizon, tx.Now()
	}
	return nil
}

func horizonOf(p *policy.Policy) time.Duration { return max(p.Horizon(), counterpartyMemory) }

func sameDigits(l *policy.Ledger, lead, trail int) bool {
	a, b := l.LookAlikeDigits()
	return a == lead && b == trail
}

// Decide implements daoguard.Decider.
func (d *PolicyDecider) Decide(ctx context.Context, in daoguard.DecisionInput) (daoguard.Decision, error) {
	tx, a := in.Tx, in.Action
	o := d.org(in.Org.ID)
	if err := o.load(ctx, tx, in.Org.ID); err != nil {
		return daoguard.Decision{}, err
	}
	o.mu.Lock()
	pol, seq, horizon := o.pol, o.seq, o.horizon
	o.mu.Unlock()
	if pol == nil {
		dec, _ := daoguard.DenyAll{}.Decide(ctx, in)
		if a.Decoded.Kind == daoguard.KindPolicy {
			dec.Reasons[0].WouldPass = "the operator loads the first policy with 'daoguard policy apply --data DIR FILE'"
		}
		return dec, nil
	}
	agent := in.Principal.Kind != daoguard.PrincipalHuman
	if a.Decoded.Kind == daoguard.KindPolicy {
		return pol.ChangeDecision(agent), nil
	}
	now := tx.Now()
	// Entries committed since the ledger was last brought up to date: by
	// other gateways, or by earlier units of this unit's own batch (not yet
	// committed, so they are stacked on the ledger for this decision and
	// only folded in once committed). In a write unit, the ledger lock is
	// held from here to the commit: nobody else adds entries meanwhile.
	var tail []daoguard.LedgerEntry
	for after := seq; ; {
		es, err := tx.LedgerTail(ctx, in.Org.ID, after, now.Add(-horizon), tailLimit)
		if err != nil {
			return daoguard.Decision{}, stored(err)
		}
		tail = append(tail, es...)
		if len(es) < tailLimit {
			break
		}
		after = es[len(es)-1].Seq
	}
	var holdings map[string]*big.Int
	if d.Holdings != nil {
		holdings = d.Holdings.Holdings(a.Decoded.ChainID, a.Decoded.From)
	}
	var quotes map[string]*policy.Quotes
	if d.Prices != nil {
		quotes = d.Prices.Quotes()
	}
	// Evaluate under o.mu (pure computation, no store call), so that no
	// fold runs meanwhile: the tail is cut at the ledger's current seq and
	// stacked on it, each entry counted exactly once.
	o.mu.Lock()
	if o.pol != pol { // a concurrent load installed another version: judge by the one in force
		pol = o.pol
	}
	if now.Sub(o.trimmed) > time.Minute {
		o.ledger.Trim(now.Add(-o.horizon))
		o.trimmed = now
	}
	var hist policy.History = o.ledger
	var recent *policy.Ledger
	for _, e := range tail {
		if e.Seq > o.seq {
			if recent == nil {
				recent = pol.NewLedger()
			}
			recent.Record(e.At, e.PrincipalID, policyFlows(e.Flows))
		}
	}
	if recent != nil {
		hist = policy.Stack(o.ledger, recent)
	}
	res := pol.Evaluate(&policy.Input{
		Now: now, Principal: in.Principal, Action: &a.Decoded, Catalog: o.cat,
		Prices: quotes, Holdings: holdings, History: hist,
	})
	o.mu.Unlock()
	dec := res.Decision
	dec.Inputs = decisionInputs(res, holdings)
	if in.DryRun {
		return dec, nil
	}
	var entry *daoguard.LedgerEntry
	if dec.Verdict != daoguard.VerdictDeny {
		// What is let through counts against the windows from now on, also
		// while it waits for approval: queueing many small requests must
		// not get around a window.
		entry = &daoguard.LedgerEntry{OrgID: in.Org.ID, ActionID: a.ID, PrincipalID: in.Principal.ID, Flows: dec.Inputs.Flows}
		if err := tx.AddLedgerEntry(ctx, entry); err != nil {
			return daoguard.Decision{}, stored(err)
		}
	}
	if entry != nil || len(tail) > 0 {
		// Once committed, the tail and this entry are every entry up to the
		// newest: fold them into the ledger.
		tx.AfterCommit(func() { o.fold(tail, entry) })
	}
	return dec, nil
}

// fold adds committed entries, in seq order, that the ledger lacks.
func (o *orgPolicy) fold(tail []daoguard.LedgerEntry, entry *daoguard.LedgerEntry) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ledger == nil {
		return
	}
	add := func(e *daoguard.LedgerEntry) {
		if e.Seq > o.seq {
			o.ledger.Record(e.At, e.PrincipalID, policyFlows(e.Flows))
			o.seq = e.Seq
		}
	}
	for i := range tail {
		add(&tail[i])
	}
	if entry != nil {
		add(entry)
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
