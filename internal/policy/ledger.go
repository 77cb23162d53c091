package policy

import (
	"math"
	"math/big"
	"math/bits"
	"sort"
	"sync"
	"time"

	"github.com/holiman/uint256"
)

// Per is what a rolling window groups by.
type Per uint8

const (
	PerAgent     Per = iota + 1 // the submitting principal
	PerRecipient                // the counterparty
	PerOrg                      // everything
	PerRole                     // every principal holding a role (Who is the role)
	PerAgents                   // every agent together
)

func (p Per) String() string {
	switch p {
	case PerAgent:
		return "agent"
	case PerRecipient:
		return "recipient"
	case PerOrg:
		return "org"
	case PerRole:
		return "role"
	case PerAgents:
		return "agents"
	}
	return "?"
}

// Key names one running total. Asset is a symbol for a total in that
// asset's base units, or "" for the total across all assets in USD; both
// count the actions that contributed.
type Key struct {
	Per   Per
	Who   string // principal ID (PerAgent), address (PerRecipient), "" (PerOrg)
	Asset string
}

// Kind is what a window reads, whoever's total it is: a grouping and an
// asset (or "" for the USD and count total).
type Kind struct {
	Per   Per
	Asset string
}

// Total is a window's content.
type Total struct {
	Amount *big.Int // base units; asset keys only
	USD    int64    // micro-dollars; "" keys only (MaxUSD when saturated)
	Count  int      // contributing actions
	// Unpriced counts the contributing actions that moved an asset with no
	// trusted price ("" keys only). Their USD value is unknown, so a USD
	// limit over a window holding one cannot be shown to hold.
	Unpriced int
}

// History is what evaluation knows about the past: running totals and the
// counterparties seen. Implementations must be safe for concurrent readers
// and must answer from memory: evaluation does no I/O.
type History interface {
	// Window returns the total of k over entries strictly after since.
	Window(k Key, since time.Time) Total
	// Release returns when enough of k's entries after since have been
	// recorded that their sum reaches excess (in the key's unit: base units,
	// micro-dollars, or a count when count is true): the window frees up
	// that much once the returned time plus the window's period has passed.
	Release(k Key, since time.Time, excess *big.Int, count bool) (time.Time, bool)
	// Known reports whether addr (lower case) is a recent counterparty.
	Known(addr string) bool
	// Imitated returns the recent counterparty addr looks like, or "".
	Imitated(addr string) string
}

// Ledger keeps, per key, the prefix sums of what was recorded, so that the
// total over any window is a difference of two prefix sums found by binary
// search: O(log n) per window, whatever the window's length and however
// many entries it holds. Nothing is ever summed by scanning.
//
// Entries are exact while recent. As they age, Trim merges each into the
// next entry of its key that falls in the same aligned bucket of width
// grain(age) (at most 1/128 of its age), so a key keeps a few hundred
// buckets per doubling of age however busy it is. A merged entry leaves a
// window with the latest entry of its bucket: never earlier than it would
// have, at most 1/128 of the window's length later (a day window: at most
// 512 s). Totals are never looser, only that much stricter.
type Ledger struct {
	mu        sync.RWMutex
	series    map[Key]*series
	known     map[string]int64 // counterparty → when it was last paid (UnixNano)
	lookAlike *LookAlikes
	// kinds are the totals kept (nil: all of them). A policy's ledger keeps
	// only what its windows and ceilings read: a busy organisation's
	// entries then cost a few keys each, not a dozen.
	kinds map[Kind]bool
}

// Records reports whether the ledger keeps totals of kind k.
func (l *Ledger) Records(k Kind) bool { return l.kinds == nil || l.kinds[k] }

// NewLedgerOf returns an empty ledger like NewLedger that keeps only the
// totals of the given kinds.
func NewLedgerOf(lead, trail int, kinds []Kind) *Ledger {
	l := NewLedger(lead, trail)
	l.kinds = make(map[Kind]bool, len(kinds))
	for _, k := range kinds {
		l.kinds[k] = true
	}
	return l
}

// thinShift: an entry of age a is merged within buckets of at most
// a / 2^thinShift.
const thinShift = 7

// grain returns the width (ns) of the aligned buckets in which entries of
// the given age (ns) are merged: the largest power of two seconds no more
// than age / 128, or 0 (kept exact) under 256 s.
func grain(age int64) int64 {
	s := (age >> thinShift) / int64(time.Second)
	if s < 2 {
		return 0
	}
	return int64(time.Second) << (bits.Len64(uint64(s)) - 1)
}

// exactAge is the age under which grain is 0.
const exactAge = 2 << thinShift * int64(time.Second)

// series is one key's entries in time order.
type series struct {
	t    []int64       // UnixNano of each entry (or bucket: its latest), non-decreasing
	cnt  []uint32      // cumulative entries through entry i (mod 2^32: only differences are read)
	amt  []uint256.Int // asset keys: cumulative base units through entry i
	usd  []int64       // USD keys: cumulative micro-dollars through entry i
	unp  []uint32      // USD keys: cumulative unpriced entries through entry i (mod 2^32)
	base uint256.Int   // cumulative amount before t[0] (after trimming)
	usd0 int64         // cumulative micro-dollars before t[0]
	unp0 uint32        // cumulative unpriced entries before t[0]
	cnt0 uint32        // cumulative entries before t[0]
	// sat is the index from which the cumulative amount overflowed 2^256
	// (or MaxUSD): any window reaching it is reported as saturated, which
	// exceeds every limit. -1 when it never overflowed.
	sat int
}

// NewLedger returns an empty ledger whose look-alike checks compare lead
// and trail hex digits.
func NewLedger(lead, trail int) *Ledger {
	return &Ledger{series: map[Key]*series{}, known: map[string]int64{}, lookAlike: NewLookAlikes(lead, trail)}
}

// Flow is one movement of an asset to a counterparty.
type Flow struct {
	Asset  string   `json:"asset"` // symbol; "" for an asset the catalogue does not know
	Token  string   `json:"token,omitempty"`
	Amount *big.Int `json:"amount"`
	USD    int64    `json:"usd_micro"` // -1 when unpriced
	To     string   `json:"to"`
	// Allowance: an approval's allowance, not a payment. It counts in
	// windows and limits (the spender can take it at any time) but moves
	// nothing now: no holdings are reserved for it, and its spender does
	// not become a known counterparty.
	Allowance bool `json:"allowance,omitempty"`
	// From is the organisation's account whose tokens the flow moves under
	// an allowance it granted (transferFrom), lower-case hex; "" for the
	// acting account. It reserves that account's holdings; windows count
	// it for whoever acted, like any other flow.
	From string `json:"from,omitempty"`
}

// Who is whom an entry is recorded for: the principal, and what puts it
// in shared totals (the agents together, each of its roles), which the
// ceilings bound.
type Who struct {
	ID    string
	Agent bool
	Roles []string
}

// Record adds one action's flows at time at for a principal of no role:
// RecordFor with only the ID.
func (l *Ledger) Record(at time.Time, principal string, flows []Flow) {
	l.RecordFor(at, Who{ID: principal}, flows)
}

// RecordFor adds one action's flows at time at. Every action counts once
// per key it touches, even with no flows (so that counts limit velocity):
// its principal's, each recipient's, the organisation's, and for the
// ceilings each of the principal's roles' and, for an agent, all agents'.
func (l *Ledger) RecordFor(at time.Time, who Who, flows []Flow) {
	principal := who.ID
	type agg struct {
		amt uint256.Int
		usd int64
		unp bool // a flow with no trusted price
		ovf bool
	}
	shared := make([]Key, 0, 2+len(who.Roles))
	shared = append(shared, Key{Per: PerAgent, Who: principal}, Key{Per: PerOrg})
	for _, r := range who.Roles {
		shared = append(shared, Key{Per: PerRole, Who: r})
	}
	if who.Agent {
		shared = append(shared, Key{Per: PerAgents})
	}
	sums := make(map[Key]*agg, 6+len(who.Roles))
	add := func(k Key, f Flow) {
		a := sums[k]
		if a == nil {
			a = &agg{}
			sums[k] = a
		}
		if k.Asset != "" {
			v, ovf := uint256.FromBig(f.Amount)
			if ovf {
				a.ovf = true
			} else if _, o := a.amt.AddOverflow(&a.amt, v); o {
				a.ovf = true
			}
		} else if f.USD > 0 {
			a.usd = addUSD(a.usd, f.USD)
		} else if f.USD < 0 {
			a.unp = true
		}
	}
	for _, k := range shared {
		sums[k] = &agg{}
	}
	for _, f := range flows {
		for _, k := range shared {
			add(k, f) // the USD and count key
			if f.Asset != "" {
				k.Asset = f.Asset
				add(k, f)
			}
		}
		k := Key{Per: PerRecipient, Who: f.To}
		add(k, f)
		if f.Asset != "" {
			k.Asset = f.Asset
			add(k, f)
		}
	}
	ns := at.UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, a := range sums {
		if !l.Records(Kind{k.Per, k.Asset}) {
			continue
		}
		s := l.series[k]
		if s == nil {
			s = &series{sat: -1}
			l.series[k] = s
		}
		s.append(ns, k.Asset != "", &a.amt, a.usd, a.unp, a.ovf)
	}
	for _, f := range flows {
		// Only a counterparty that received something becomes known: a
		// call or an approval (a zero flow) must not make an address look
		// familiar to the new-recipient rule and the look-alike check.
		if f.To == "" || f.Amount == nil || f.Amount.Sign() == 0 || f.Allowance {
			continue
		}
		l.addKnown(f.To, ns)
	}
}

// AddKnown records a counterparty without a flow, one that Trim never
// forgets (a fixture's history).
func (l *Ledger) AddKnown(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addKnown(addr, math.MaxInt64)
}

func (l *Ledger) addKnown(addr string, ns int64) {
	last, ok := l.known[addr]
	if !ok {
		l.lookAlike.Add(addr)
	}
	if !ok || ns > last {
		l.known[addr] = ns
	}
}

func (s *series) append(ns int64, asset bool, amt *uint256.Int, usd int64, unp, ovf bool) {
	n := len(s.t)
	if n > 0 && ns < s.t[n-1] {
		// A clock step backwards: keep time order by recording at the
		// latest time seen. The entry then leaves windows later, never
		// earlier: a stricter total, never a looser one.
		ns = s.t[n-1]
	}
	s.t = append(s.t, ns)
	c := s.cnt0
	if n > 0 {
		c = s.cnt[n-1]
	}
	s.cnt = append(s.cnt, c+1)
	if asset {
		prev := s.base
		if n > 0 {
			prev = s.amt[n-1]
		}
		var next uint256.Int
		if _, o := next.AddOverflow(&prev, amt); o || ovf {
			if s.sat < 0 {
				s.sat = n
			}
			next.SetAllOne()
		}
		s.amt = append(s.amt, next)
	} else {
		prev := s.usd0
		if n > 0 {
			prev = s.usd[n-1]
		}
		next := addUSD(prev, usd)
		if next == MaxUSD && s.sat < 0 {
			s.sat = n
		}
		s.usd = append(s.usd, next)
		u := s.unp0
		if n > 0 {
			u = s.unp[n-1]
		}
		if unp {
			u++
		}
		s.unp = append(s.unp, u)
	}
}

// first returns the index of the first entry strictly after since.
func (s *series) first(since int64) int {
	return sort.Search(len(s.t), func(i int) bool { return s.t[i] > since })
}

// count returns the entries from index i on.
func (s *series) count(i int) int {
	n := len(s.t)
	if i == n {
		return 0
	}
	before := s.cnt0
	if i > 0 {
		before = s.cnt[i-1]
	}
	return int(s.cnt[n-1] - before)
}

// Window implements History.
func (l *Ledger) Window(k Key, since time.Time) Total {
	l.mu.RLock()
	defer l.mu.RUnlock()
	s := l.series[k]
	if s == nil {
		if k.Asset != "" {
			return Total{Amount: new(big.Int)}
		}
		return Total{}
	}
	i, n := s.first(since.UnixNano()), len(s.t)
	t := Total{Count: s.count(i)}
	saturated := s.sat >= 0 && n-1 >= s.sat && n > i
	if k.Asset != "" {
		if saturated {
			t.Amount = new(big.Int).Lsh(big.NewInt(1), 256) // more than any uint256 limit
			return t
		}
		if i == n {
			t.Amount = new(big.Int)
			return t
		}
		before := s.base
		if i > 0 {
			before = s.amt[i-1]
		}
		var d uint256.Int
		d.Sub(&s.amt[n-1], &before)
		t.Amount = d.ToBig()
		return t
	}
	if saturated {
		t.USD = MaxUSD
		return t // exceeds every USD limit: whether any entry was unpriced no longer matters
	}
	if i < n {
		before, unp := s.usd0, s.unp0
		if i > 0 {
			before, unp = s.usd[i-1], s.unp[i-1]
		}
		t.USD = s.usd[n-1] - before
		t.Unpriced = int(s.unp[n-1] - unp) // mod 2^32, as the sums are kept
	}
	return t
}

// Release implements History.
func (l *Ledger) Release(k Key, since time.Time, excess *big.Int, count bool) (time.Time, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	s := l.series[k]
	if s == nil || excess.Sign() <= 0 {
		return time.Time{}, false
	}
	i, n := s.first(since.UnixNano()), len(s.t)
	if i == n {
		return time.Time{}, false
	}
	var j int
	switch {
	case count:
		if !excess.IsInt64() || excess.Int64() > int64(s.count(i)) {
			return time.Time{}, false
		}
		before := s.cnt0
		if i > 0 {
			before = s.cnt[i-1]
		}
		ex := uint32(excess.Int64())
		j = i + sort.Search(n-i, func(x int) bool { return s.cnt[i+x]-before >= ex })
	case k.Asset != "":
		before := s.base
		if i > 0 {
			before = s.amt[i-1]
		}
		ex, ovf := uint256.FromBig(excess)
		if ovf {
			return time.Time{}, false
		}
		var need uint256.Int
		if _, o := need.AddOverflow(&before, ex); o {
			return time.Time{}, false
		}
		j = i + sort.Search(n-i, func(x int) bool { return !s.amt[i+x].Lt(&need) })
	default:
		before := s.usd0
		if i > 0 {
			before = s.usd[i-1]
		}
		if !excess.IsInt64() {
			return time.Time{}, false
		}
		need := addUSD(before, excess.Int64())
		j = i + sort.Search(n-i, func(x int) bool { return s.usd[i+x] >= need })
	}
	if j >= n {
		return time.Time{}, false
	}
	return time.Unix(0, s.t[j]), true
}

// Known implements History.
func (l *Ledger) Known(addr string) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.known[addr]
	return ok
}

// Imitated implements History.
func (l *Ledger) Imitated(addr string) string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.lookAlike.Imitated(addr)
}

// Trim drops the entries older than horizon (the longest window any
// policy uses: they can no longer be in any window) and the counterparties
// not paid within knownHorizon, and merges aged entries into their
// buckets (see Ledger). Prefix sums stay absolute, so the totals of the
// remaining entries do not change.
func (l *Ledger) Trim(now time.Time, horizon, knownHorizon time.Duration) {
	h, nowNs := now.Add(-horizon).UnixNano(), now.UnixNano()
	kh := now.Add(-knownHorizon).UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, s := range l.series {
		i := s.first(h)
		if i == len(s.t) { // all expired, an overflow with them
			delete(l.series, k)
			continue
		}
		if i > 0 {
			s.cnt0 = s.cnt[i-1]
			s.cnt = append(s.cnt[:0], s.cnt[i:]...)
			if k.Asset != "" {
				s.base = s.amt[i-1]
				s.amt = append(s.amt[:0], s.amt[i:]...)
			} else {
				s.usd0, s.unp0 = s.usd[i-1], s.unp[i-1]
				s.usd = append(s.usd[:0], s.usd[i:]...)
				s.unp = append(s.unp[:0], s.unp[i:]...)
			}
			s.t = append(s.t[:0], s.t[i:]...)
			if s.sat >= 0 {
				s.sat = max(0, s.sat-i)
			}
		}
		s.thin(nowNs, k.Asset != "")
	}
	for addr, last := range l.known {
		if last <= kh {
			delete(l.known, addr)
			l.lookAlike.Remove(addr)
		}
	}
}

// thin merges, in place, every entry old enough to have a grain into the
// next one when both fall in the same bucket of that grain: the next
// entry's prefix sums already include it, so dropping it only moves its
// leaving time to the next entry's.
func (s *series) thin(now int64, asset bool) {
	n, w, sat := len(s.t), 0, -1
	for i := 0; i < n; i++ {
		if now-s.t[i] < exactAge { // this and all later entries stay exact
			if w == i {
				return
			}
			for ; i < n; i++ {
				if s.sat >= 0 && i >= s.sat && sat < 0 {
					sat = w
				}
				s.move(w, i, asset)
				w++
			}
			break
		}
		if i < n-1 {
			if g := grain(now - s.t[i]); g > 0 && s.t[i]/g == s.t[i+1]/g {
				continue
			}
		}
		if s.sat >= 0 && i >= s.sat && sat < 0 {
			sat = w
		}
		s.move(w, i, asset)
		w++
	}
	if w == n {
		return
	}
	s.t, s.cnt = s.t[:w], s.cnt[:w]
	if asset {
		s.amt = s.amt[:w]
	} else {
		s.usd, s.unp = s.usd[:w], s.unp[:w]
	}
	if s.sat >= 0 {
		s.sat = sat // an overflowed entry is the last of its run: never dropped past the end
	}
}

// move copies entry i to position w (w ≤ i).
func (s *series) move(w, i int, asset bool) {
	if w == i {
		return
	}
	s.t[w], s.cnt[w] = s.t[i], s.cnt[i]
	if asset {
		s.amt[w] = s.amt[i]
	} else {
		s.usd[w], s.unp[w] = s.usd[i], s.unp[i]
	}
}

// Len returns the number of entries kept, over all keys.
func (l *Ledger) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	n := 0
	for _, s := range l.series {
		n += len(s.t)
	}
	return n
}

// Stack returns a History made of an older one and a newer one whose
// entries all come after the older one's: a gateway's ledger and the few
// entries committed since it was last brought up to date. Totals add up;
// releases are looked for in the older entries first.
func Stack(older, newer History) History { return stack{older, newer} }

type stack struct{ old, new History }

func (s stack) Window(k Key, since time.Time) Total {
	a, b := s.old.Window(k, since), s.new.Window(k, since)
	t := Total{USD: addUSD(a.USD, b.USD), Count: a.Count + b.Count, Unpriced: a.Unpriced + b.Unpriced}
	if a.Amount != nil || b.Amount != nil {
		t.Amount = new(big.Int)
		for _, x := range [...]*big.Int{a.Amount, b.Amount} {
			if x != nil {
				t.Amount.Add(t.Amount, x)
			}
		}
	}
	return t
}

func (s stack) Release(k Key, since time.Time, excess *big.Int, count bool) (time.Time, bool) {
	if t, ok := s.old.Release(k, since, excess, count); ok {
		return t, true
	}
	w := s.old.Window(k, since)
	var had *big.Int
	switch {
	case count:
		had = big.NewInt(int64(w.Count))
	case k.Asset != "":
		had = w.Amount
	default:
		had = big.NewInt(w.USD)
	}
	rest := new(big.Int).Set(excess)
	if had != nil {
		rest.Sub(rest, had)
	}
	return s.new.Release(k, since, rest, count)
}

func (s stack) Known(addr string) bool { return s.old.Known(addr) || s.new.Known(addr) }

func (s stack) Imitated(addr string) string {
	if a := s.old.Imitated(addr); a != "" {
		return a
	}
	return s.new.Imitated(addr)
}

// LookAlikeDigits returns the digits the ledger's look-alike check uses.
func (l *Ledger) LookAlikeDigits() (lead, trail int) { return l.lookAlike.lead, l.lookAlike.trail }
