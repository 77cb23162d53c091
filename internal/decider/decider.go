// Package decider is the policy engine as daoguard's Decider: per
// organisation it keeps the compiled policies and the window ledger in
// memory (loaded before the gateway listens, from a stored snapshot and
// the entries after it), reads the holdings less what open actions
// reserve, and judges each action in the transaction that records it.
// What goes ahead is recorded by the service (daoguard.LedgerKeeper); the
// decider only keeps its in-memory copy in step.
package decider

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"math/big"
	"slices"
	"strings"
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
// answers from memory. at is when the snapshot's read began: a payment
// settled after it may not show in the balances yet, so the decider still
// counts it as reserved.
type Holdings interface {
	Holdings(chainID uint64, account string) (balances map[string]*big.Int, at time.Time)
}

// settleMargin: see Decide.
const settleMargin = time.Minute

// Known counterparties are remembered for at least this long, whatever the
// longest window, for the look-alike check.
const counterpartyMemory = 30 * 24 * time.Hour

// tailLimit bounds one read of the ledger's newest entries.
const tailLimit = 10_000

// Policy is the Decider backed by the policy engine. Per
// organisation it keeps compiled policies by version and the window ledger
// in memory. Each decision, in its own unit: reads the ledger entries
// added since those this gateway knows of (in PostgreSQL under the
// organisation's ledger lock, so decisions and policy changes of every
// gateway on the database are serialised), then the policy version in
// force, evaluates, and hands back the ledger entry to record once the
// action is written.
//
// The entries a gateway knows of are its committed ledger (window) and,
// after it, the staged ones: those read from the tail, and those its own
// units wrote, which may not have committed yet. The units of one batch
// thus see each other's entries without reading them back: a unit whose
// writes are undone takes its entry back (OnUndo) before any other unit can
// see the database without it, and an entry moves into the ledger once its
// unit has committed (AfterCommit).
type Policy struct {
	Prices   Prices   // nil: no prices, USD rules fail closed
	Holdings Holdings // nil: holdings unknown
	// Contracts decodes calldata (nil: the standard ABIs only): an
	// autonomous rule naming no function lets opaque calldata through
	// only with approval.
	Contracts *policy.Registry

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
	// staged are the entries after win.seq this gateway knows of, in seq
	// order and with none missing: read from the tail, or written by its
	// own units. Either may not have committed yet (a tail can hold entries
	// of earlier units of the same transaction), so each is staged by a
	// unit that takes it back if it is undone and moves it into the ledger
	// once it has committed. Nothing can be added to the organisation's
	// ledger meanwhile: a unit adds its entry under the ledger lock
	// (PostgreSQL) or the single writer (SQLite), after reading everything
	// before it.
	staged []daoguard.LedgerEntry
	// stagedL is staged recorded as a ledger, for evaluation; nil when it
	// must be rebuilt (after an entry was taken back or moved out).
	stagedL *policy.Ledger
	// gen counts the times staged entries were taken back: a unit that read
	// the tail after what was known then must read again (see catchUp).
	gen uint64
	// saved is the seq of the last snapshot this gateway stored.
	saved uint64
}

type compiled struct {
	pol *policy.Policy
	cat *policy.Catalog
}

// window is a ledger with every committed entry through seq.
type window struct {
	l       *policy.Ledger
	seq     uint64
	horizon time.Duration // counterparties kept back this far (horizonOf)
	span    time.Duration // entries kept back this far: the longest window of the policy it serves
	trimmed time.Time
}

// maxCompiled bounds the compiled versions kept per organisation.
const maxCompiled = 4

func (d *Policy) org(id string) *orgPolicy {
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
	c, err := compile(ctx, tx, orgID, v)
	if err != nil {
		return nil, err
	}
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

// compile reads policy version v and the catalogue as tx sees them.
func compile(ctx context.Context, tx daoguard.Tx, orgID string, v int) (*compiled, error) {
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
	return &compiled{pol: pol, cat: policy.NewCatalog(assets)}, nil
}

func horizonOf(p *policy.Policy) time.Duration { return max(p.Horizon(), counterpartyMemory) }

// trimEvery is how often a window drops what has left every window and
// merges aged entries into their buckets.
const trimEvery = time.Minute

// trimSlack keeps entries that long beyond the longest window: a unit
// judges at its transaction's start time, which may be earlier than the
// time of a unit that took the ledger lock before it and trimmed.
const trimSlack = 10 * time.Minute

// trim drops and merges (see policy.Ledger.Trim).
func (w *window) trim(now time.Time) {
	w.l.Trim(now, w.span+trimSlack, w.horizon)
	w.trimmed = now
}

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

// known returns the last entry this gateway knows of. Under o.mu.
func (o *orgPolicy) known() uint64 {
	if n := len(o.staged); n > 0 {
		return o.staged[n-1].Seq
	}
	if o.win != nil {
		return o.win.seq
	}
	return 0
}

// stage adds entries that follow what the gateway knows of (any it
// already knows are skipped) and returns those it added. Under o.mu.
func (o *orgPolicy) stage(es []daoguard.LedgerEntry) []uint64 {
	var added []uint64
	for _, e := range es {
		if e.Seq <= o.known() {
			continue
		}
		o.staged = append(o.staged, e)
		added = append(added, e.Seq)
		if o.stagedL != nil {
			o.stagedL.RecordFor(e.At, whoOf(e), policyFlows(e.Flows))
		}
	}
	return added
}

// unstage takes back an entry whose unit was undone, and every staged
// entry after it: the staged entries must stay a run with none missing, and
// those after it are read again from the store by the next unit (they are
// there if they committed). Under o.mu.
func (o *orgPolicy) unstage(seq uint64) {
	for i := len(o.staged) - 1; i >= 0; i-- {
		if o.staged[i].Seq == seq {
			o.staged = o.staged[:i]
			o.stagedL = nil
			o.gen++
			return
		}
	}
}

// catchUp makes tail, read after `after` when the take-back count was gen,
// follow what is known now. If entries were taken back since (a unit of
// another batch undone, perhaps after this unit read the tail), what is
// known may end before `after`: the tail is then read again from there, so
// that no committed entry is left out. Called and returns with o.mu held;
// releases it while reading.
func (o *orgPolicy) catchUp(ctx context.Context, tx daoguard.Tx, orgID string, tail []daoguard.LedgerEntry, after, gen uint64, since time.Time) ([]daoguard.LedgerEntry, error) {
	for range 8 {
		if o.gen == gen && o.known() >= after {
			return tail, nil
		}
		after, gen = o.known(), o.gen
		o.mu.Unlock()
		var err error
		tail, err = readTail(ctx, tx, orgID, after, since)
		o.mu.Lock()
		if err != nil {
			return nil, err
		}
	}
	return nil, stored(errors.New("the ledger kept changing under this unit"))
}

// commit moves the staged entries through seq, now committed, into the
// ledger. Under o.mu.
func (o *orgPolicy) commit(seq uint64) {
	w, n := o.win, 0
	for n < len(o.staged) && o.staged[n].Seq <= seq {
		if e := &o.staged[n]; w != nil && e.Seq > w.seq {
			w.l.RecordFor(e.At, whoOf(*e), policyFlows(e.Flows))
			w.seq = e.Seq
		}
		n++
	}
	o.dropStaged(n)
}

// dropStaged drops the first n staged entries, and any others the ledger
// now holds. Under o.mu.
func (o *orgPolicy) dropStaged(n int) {
	for o.win != nil && n < len(o.staged) && o.staged[n].Seq <= o.win.seq {
		n++
	}
	if n > 0 {
		o.staged = append(o.staged[:0], o.staged[n:]...)
		o.stagedL = nil
	}
}

// history returns the ledger with the staged entries on top. Under o.mu.
func (o *orgPolicy) history(pol *policy.Policy) policy.History {
	if len(o.staged) == 0 {
		return o.win.l
	}
	lead, trail := pol.LookAlikeDigits()
	if o.stagedL == nil || !sameDigits(o.stagedL, lead, trail) {
		// Every kind of total: the staged entries are few, and a later
		// policy may read totals this one does not.
		o.stagedL = policy.NewLedger(lead, trail)
		for _, e := range o.staged {
			o.stagedL.RecordFor(e.At, whoOf(e), policyFlows(e.Flows))
		}
	}
	return policy.Stack(o.win.l, o.stagedL)
}

// fits reports whether w can judge under pol: it reaches back as far as
// pol looks and compares the same look-alike digits.
func fits(w *window, pol *policy.Policy) bool {
	lead, trail := pol.LookAlikeDigits()
	if w == nil || horizonOf(pol) > w.horizon || pol.Horizon() > w.span || !sameDigits(w.l, lead, trail) {
		return false
	}
	for _, k := range pol.Kinds() {
		if !w.l.Records(k) {
			return false
		}
	}
	return true
}

// Decide implements daoguard.Decider.
func (d *Policy) Decide(ctx context.Context, in daoguard.DecisionInput) (daoguard.Decision, error) {
	tx, a, orgID := in.Tx, in.Action, in.Org.ID
	o := d.org(orgID)
	now := tx.Now()
	o.mu.Lock()
	after, gen, since := o.known(), o.gen, now.Add(-counterpartyMemory)
	if o.win != nil {
		since = now.Add(-o.win.horizon)
	}
	o.mu.Unlock()
	// The tail first: in a write unit this takes the ledger lock, so the
	// policy version read next is ordered with every other decision and
	// policy change (applyPolicy takes the lock too). Usually it is empty:
	// only another gateway's entries are not known here already.
	tail, err := readTail(ctx, tx, orgID, after, since)
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
	var holdings, reserved map[string]*big.Int
	if d.Holdings != nil {
		var at time.Time
		holdings, at = d.Holdings.Holdings(a.Decoded.ChainID, a.Decoded.From)
		// What open actions hold of the account is read under the ledger
		// lock taken by readTail: in PostgreSQL every reservation another
		// gateway committed before it is seen, and none can be added until
		// this unit commits.
		if holdings != nil {
			// A payment settled up to settleMargin before the snapshot's
			// time still counts: the snapshot's clock (this process) and
			// the settlement's (the store's) may disagree, and the node
			// read may lag the one the executor used. Counting it twice for
			// a moment is stricter; not at all would overdraw.
			if reserved, err = tx.Reserved(ctx, orgID, strings.ToLower(a.Decoded.From), at.Add(-settleMargin)); err != nil {
				return daoguard.Decision{}, stored(err)
			}
		}
	}
	owners, err := d.owners(ctx, tx, orgID, &a.Decoded, c.cat)
	if err != nil {
		return daoguard.Decision{}, err
	}
	var quotes map[string]*policy.Quotes
	if d.Prices != nil {
		quotes = d.Prices.Quotes()
	}
	input := &policy.Input{
		Now: now, Principal: in.Principal, Action: &a.Decoded, Catalog: c.cat,
		Prices: quotes, Holdings: holdings, Reserved: reserved, Contracts: d.Contracts, Owners: owners,
	}

	// Evaluate under mu (pure computation, no store call), so that the
	// ledger and the staged entries do not change meanwhile.
	o.mu.Lock()
	var res policy.Result
	var rebuilt *window
	var seen uint64 // the last entry the evaluation counted
	switch {
	case !fits(o.win, pol):
		old := o.win
		o.mu.Unlock()
		// A ledger that does not reach back as far as this policy looks, or
		// compares other look-alike digits, is rebuilt privately from what
		// this unit sees, and installed only once the unit has committed.
		if rebuilt, err = rebuild(ctx, tx, orgID, pol, now); err != nil {
			return daoguard.Decision{}, err
		}
		input.History, seen = rebuilt.l, rebuilt.seq
		res = pol.Evaluate(input)
		nw := rebuilt
		tx.AfterCommit(func() {
			o.mu.Lock()
			defer o.mu.Unlock()
			// Not if another ledger was installed, or entries beyond
			// what nw read were moved into the old one: the staged
			// entries follow those, so nw would leave a gap.
			if o.win == old && (old == nil || old.seq <= nw.seq) {
				o.win = nw
				o.dropStaged(0)
			}
		})
	case in.DryRun:
		// A read-only snapshot changes nothing known here; what it read
		// beyond that is stacked for this evaluation only.
		if tail, err = o.catchUp(ctx, tx, orgID, tail, after, gen, since); err != nil {
			o.mu.Unlock()
			return daoguard.Decision{}, err
		}
		hist := o.history(pol)
		var extra *policy.Ledger
		for _, e := range tail {
			if e.Seq > o.known() {
				if extra == nil {
					extra = pol.NewLedger()
				}
				extra.RecordFor(e.At, whoOf(e), policyFlows(e.Flows))
			}
		}
		if extra != nil {
			hist = policy.Stack(hist, extra)
		}
		input.History = hist
		res = pol.Evaluate(input)
		o.mu.Unlock()
	default:
		// The tail is staged by this unit: taken back if it is undone, in
		// the ledger once it has committed.
		if tail, err = o.catchUp(ctx, tx, orgID, tail, after, gen, since); err != nil {
			o.mu.Unlock()
			return daoguard.Decision{}, err
		}
		if added := o.stage(tail); len(added) > 0 {
			tx.OnUndo(func() { o.mu.Lock(); o.unstage(added[0]); o.mu.Unlock() })
			last := added[len(added)-1]
			tx.AfterCommit(func() { o.mu.Lock(); o.commit(last); o.mu.Unlock() })
		}
		if w := o.win; now.Sub(w.trimmed) > trimEvery {
			w.trim(now)
		}
		input.History, seen = o.history(pol), o.known()
		res = pol.Evaluate(input)
		o.mu.Unlock()
	}
	dec := res.Decision
	dec.Inputs = decisionInputs(res, holdings, reserved, owners)
	dec.Counts, dec.LedgerSeq = true, seen
	return dec, nil
}

// Added implements daoguard.LedgerKeeper: the entry of an action decided
// on every entry through seen is staged on top of the ledger (taken back
// if its unit is undone, moved into the ledger once it has committed) —
// if what this gateway knows still ends at seen, so the staged entries
// stay a run with none missing. Otherwise (the decision was made on a
// private ledger being rebuilt) it is left for the next unit's tail, which
// reads every committed entry after what is known.
func (d *Policy) Added(tx daoguard.Tx, e daoguard.LedgerEntry, seen uint64) {
	o := d.org(e.OrgID)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.known() != seen || e.Seq <= seen {
		return
	}
	if added := o.stage([]daoguard.LedgerEntry{e}); len(added) == 0 {
		return
	}
	tx.OnUndo(func() { o.mu.Lock(); o.unstage(e.Seq); o.mu.Unlock() })
	tx.AfterCommit(func() { o.mu.Lock(); o.commit(e.Seq); o.mu.Unlock() })
}

// rebuild reads the ledger back as far as pol looks, into a new window
// that is installed once tx has committed (if no other was meanwhile).
func rebuild(ctx context.Context, tx daoguard.Tx, orgID string, pol *policy.Policy, now time.Time) (*window, error) {
	nw := &window{l: pol.NewLedger(), horizon: horizonOf(pol), span: pol.Horizon(), trimmed: now}
	return nw, nw.load(ctx, tx, orgID, now)
}

// load records the organisation's entries after w.seq, page by page,
// merging aged ones into their buckets as it goes, so that memory stays
// that of the buckets however many entries the windows hold.
func (w *window) load(ctx context.Context, tx daoguard.Tx, orgID string, now time.Time) error {
	since := now.Add(-w.horizon)
	for n := 0; ; {
		es, err := tx.LedgerTail(ctx, orgID, w.seq, since, tailLimit)
		if err != nil {
			return stored(err)
		}
		for _, e := range es {
			w.l.RecordFor(e.At, whoOf(e), policyFlows(e.Flows))
			w.seq = e.Seq
		}
		if n += len(es); n >= 10*tailLimit {
			w.trim(now)
			n = 0
		}
		if len(es) < tailLimit {
			w.trim(now)
			return nil
		}
	}
}

// owners finds the organisation's accounts whose tokens the action moves
// under their allowance (transferFrom), with what each holds less what its
// open actions reserve, read under the same ledger lock as the acting
// account's. A holder that is not an account of the organisation on the
// action's chain is left out: policy refuses it to agents.
func (d *Policy) owners(ctx context.Context, tx daoguard.Tx, orgID string, dec *daoguard.Decoded, cat *policy.Catalog) (map[string]*policy.Owner, error) {
	addrs, err := policy.Holders(dec, cat)
	if err != nil || len(addrs) == 0 {
		return nil, nil // malformed calldata: policy denies it with the reason
	}
	accounts, err := tx.Accounts(ctx, orgID)
	if err != nil {
		return nil, stored(err)
	}
	out := map[string]*policy.Owner{}
	for _, acc := range accounts {
		addr := strings.ToLower(acc.Address)
		if acc.ChainID != dec.ChainID || !slices.Contains(addrs, addr) {
			continue
		}
		o := &policy.Owner{Name: acc.Name, Safe: acc.Kind == daoguard.AccountSafe}
		if d.Holdings != nil {
			var at time.Time
			if o.Holdings, at = d.Holdings.Holdings(acc.ChainID, acc.Address); o.Holdings != nil {
				if o.Reserved, err = tx.Reserved(ctx, orgID, addr, at.Add(-settleMargin)); err != nil {
					return nil, stored(err)
				}
			}
		}
		out[addr] = o
	}
	return out, nil
}

// decisionInputs keeps what the decision saw, for the record and replays.
func decisionInputs(res policy.Result, holdings, reserved map[string]*big.Int, owners map[string]*policy.Owner) *daoguard.DecisionInputs {
	in := &daoguard.DecisionInputs{Flows: make([]daoguard.Flow, len(res.Flows)), NearLimit: res.NearLimit}
	for i, f := range res.Flows {
		in.Flows[i] = daoguard.Flow{Asset: f.Asset, Token: f.Token, Amount: daoguard.NewBigInt(f.Amount), USD: f.USD, To: f.To, Allowance: f.Allowance, From: f.From}
	}
	if len(res.Prices) > 0 {
		in.Prices = make(map[string]string, len(res.Prices))
		for sym, p := range res.Prices {
			in.Prices[sym] = daoguard.FormatAmount(p, 18) // exact: a replay parses it back
		}
	}
	in.Holdings, in.Reserved = amounts(holdings, false), amounts(reserved, true)
	for addr, o := range owners {
		if in.Owners == nil {
			in.Owners = make(map[string]*daoguard.OwnerInputs, len(owners))
		}
		in.Owners[addr] = &daoguard.OwnerInputs{Account: o.Name, Safe: o.Safe, Holdings: amounts(o.Holdings, false), Reserved: amounts(o.Reserved, true)}
	}
	return in
}

// amounts copies balances for the record (nil if none; positive ones
// only, if positive).
func amounts(m map[string]*big.Int, positive bool) map[string]*daoguard.BigInt {
	var out map[string]*daoguard.BigInt
	for sym, v := range m {
		if positive && v.Sign() <= 0 {
			continue
		}
		if out == nil {
			out = make(map[string]*daoguard.BigInt, len(m))
		}
		out[sym] = daoguard.NewBigInt(v)
	}
	return out
}

// whoOf is whom a stored entry counts for.
func whoOf(e daoguard.LedgerEntry) policy.Who {
	return policy.Who{ID: e.PrincipalID, Agent: e.Agent, Roles: e.Roles}
}

func policyFlows(fs []daoguard.Flow) []policy.Flow {
	out := make([]policy.Flow, len(fs))
	for i, f := range fs {
		amt := new(big.Int)
		if f.Amount != nil {
			amt = f.Amount.Int()
		}
		out[i] = policy.Flow{Asset: f.Asset, Token: f.Token, Amount: amt, USD: f.USD, To: f.To, Allowance: f.Allowance, From: f.From}
	}
	return out
}

// StoreError marks a failure to read or write the store while deciding:
// the caller abandons the unit (it may be rerun), never turns it into a
// denial.
type StoreError struct{ Err error }

func (e *StoreError) Error() string { return e.Err.Error() }
func (e *StoreError) Unwrap() error { return e.Err }

// stored wraps a store error; nil stays nil.
func stored(err error) error {
	if err == nil {
		return nil
	}
	return &StoreError{err}
}

// Warm loads the organisation's window ledger (back as far as the policy
// in force looks) and compiles that policy, so that the first decision
// after start does not: serve calls it before it listens, and reports
// ready only once decisions can be made. It starts from the stored
// snapshot when one fits the policy, and reads only the entries after it;
// otherwise it reads every entry in the windows and stores a snapshot for
// the next start. Without a policy it does nothing.
func (d *Policy) Warm(ctx context.Context, st daoguard.Store, orgID string) error {
	var (
		w       *window
		c       *compiled
		v       int
		fromLog bool
	)
	err := st.View(ctx, func(tx daoguard.Tx) error {
		var err error
		if v, err = tx.CurrentPolicy(ctx, orgID); err != nil || v == 0 {
			return err
		}
		if c, err = compile(ctx, tx, orgID, v); err != nil {
			return err
		}
		now := tx.Now()
		snap, err := tx.LedgerSnapshot(ctx, orgID)
		switch {
		case err == nil:
			// A snapshot that does not parse or does not fit is only a
			// missed shortcut: the entries are the record.
			if w, err = parseWindow(snap.Data, snap.Seq); err != nil || !fits(w, c.pol) {
				w = nil
			}
		case daoguard.ErrorCode(err) != daoguard.CodeNotFound:
			return stored(err)
		}
		if w == nil {
			fromLog = true
			w = &window{l: c.pol.NewLedger(), horizon: horizonOf(c.pol), span: c.pol.Horizon()}
		}
		return w.load(ctx, tx, orgID, now)
	})
	if err != nil || v == 0 {
		return err
	}
	// A read-only snapshot: everything in it is committed, and entries
	// after it are read as the next decision's tail.
	o := d.org(orgID)
	o.mu.Lock()
	if o.win == nil || o.win.seq < w.seq {
		o.win = w
		o.dropStaged(0)
	}
	if o.compiled[v] == nil {
		o.compiled[v] = c
	}
	o.mu.Unlock()
	if fromLog && w.seq > 0 {
		_, err = d.Snapshot(ctx, st, orgID, 0)
	}
	return err
}

// Snapshot stores the organisation's committed window ledger (see
// daoguard.LedgerSnapshot) if it holds more than minNew entries beyond
// the last one this gateway stored, and reports whether it did. The
// ledger is encoded under the organisation's lock (tens of milliseconds
// with a million entries in the windows: decisions wait that long), and
// written outside it.
func (d *Policy) Snapshot(ctx context.Context, st daoguard.Store, orgID string, minNew uint64) (bool, error) {
	o := d.org(orgID)
	o.mu.Lock()
	w := o.win
	if w == nil || w.seq <= o.saved+minNew {
		o.mu.Unlock()
		return false, nil
	}
	seq := w.seq
	data, err := w.appendBinary(nil)
	o.mu.Unlock()
	if err != nil {
		return false, err
	}
	if err := st.Update(ctx, func(tx daoguard.Tx) error {
		return tx.PutLedgerSnapshot(ctx, &daoguard.LedgerSnapshot{OrgID: orgID, Seq: seq, Data: data})
	}); err != nil {
		return false, err
	}
	o.mu.Lock()
	o.saved = max(o.saved, seq)
	o.mu.Unlock()
	return true, nil
}

// RunSnapshots stores a snapshot of each warmed organisation's window
// ledger every period when at least minNew entries were added since the
// last, and a last one when ctx ends (with its own short deadline), so
// that the next start reads little of the ledger.
func (d *Policy) RunSnapshots(ctx context.Context, st daoguard.Store, every time.Duration, minNew uint64, logf func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	each := func(ctx context.Context, min uint64) {
		d.mu.Lock()
		ids := make([]string, 0, len(d.orgs))
		for id := range d.orgs {
			ids = append(ids, id)
		}
		d.mu.Unlock()
		for _, id := range ids {
			if _, err := d.Snapshot(ctx, st, id, min); err != nil && logf != nil {
				logf(err)
			}
		}
	}
	for {
		select {
		case <-t.C:
			each(ctx, minNew)
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			each(sctx, 0)
			cancel()
			return
		}
	}
}

// windowVersion prefixes a window's binary form: the version, then the
// horizon and span in seconds, then the ledger's own form.
const windowVersion = 1

func (w *window) appendBinary(b []byte) ([]byte, error) {
	b = append(b, windowVersion)
	b = binary.AppendUvarint(b, uint64(w.horizon/time.Second))
	b = binary.AppendUvarint(b, uint64(w.span/time.Second))
	return w.l.AppendBinary(b)
}

// parseWindow reads a window stored as of entry seq.
func parseWindow(data []byte, seq uint64) (*window, error) {
	if len(data) < 1 || data[0] != windowVersion {
		return nil, errors.New("unknown window encoding")
	}
	data = data[1:]
	var hs [2]time.Duration
	for i := range hs {
		v, n := binary.Uvarint(data)
		if n <= 0 || v > uint64(math.MaxInt64/time.Second) {
			return nil, errors.New("bad window horizon")
		}
		hs[i], data = time.Duration(v)*time.Second, data[n:]
	}
	l, err := policy.ParseLedger(data)
	if err != nil {
		return nil, err
	}
	return &window{l: l, seq: seq, horizon: hs[0], span: hs[1]}, nil
}

// World is what the bounds are computed from for pol: the principals,
// the catalogue, the accounts, and — from d, if not nil — each account's
// holdings less what open actions reserve, and the prices pol trusts.
func World(ctx context.Context, tx daoguard.Tx, orgID string, pol *policy.Policy, d *Policy) (*policy.World, error) {
	ps, err := tx.Principals(ctx, orgID)
	if err != nil {
		return nil, err
	}
	assets, err := tx.Assets(ctx, orgID)
	if err != nil {
		return nil, err
	}
	accounts, err := tx.Accounts(ctx, orgID)
	if err != nil {
		return nil, err
	}
	w := &policy.World{Principals: ps, Catalog: policy.NewCatalog(assets), Holdings: map[string]map[string]*big.Int{}}
	for _, a := range accounts {
		w.Accounts = append(w.Accounts, a.Name)
		if d == nil || d.Holdings == nil {
			continue
		}
		bal, at := d.Holdings.Holdings(a.ChainID, a.Address)
		if bal == nil {
			continue // unknown: it bounds nothing
		}
		reserved, err := tx.Reserved(ctx, orgID, strings.ToLower(a.Address), at.Add(-settleMargin))
		if err != nil {
			return nil, err
		}
		avail := map[string]*big.Int{}
		for sym, v := range bal {
			x := new(big.Int).Set(v)
			if r := reserved[sym]; r != nil {
				x.Sub(x, r)
			}
			if x.Sign() < 0 {
				x.SetInt64(0)
			}
			avail[sym] = x
		}
		w.Holdings[a.Name] = avail
	}
	if d != nil && d.Prices != nil {
		w.Prices = pol.TrustedPrices(d.Prices.Quotes(), tx.Now())
	}
	return w, nil
}
