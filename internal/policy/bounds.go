package policy

import (
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/daoguard/daoguard"
)

// World is what bounds are computed against: the organisation's
// principals, its catalogue, the balances of its accounts and the trusted
// prices now. Like evaluation, computing bounds does no I/O.
type World struct {
	Principals []*daoguard.Principal
	Catalog    *Catalog
	// Accounts are the organisation's account names; Holdings their
	// balances by symbol in base units. An account missing from Holdings
	// is unknown: what it holds bounds nothing.
	Accounts []string
	Holdings map[string]map[string]*big.Int
	// Prices are trusted USD prices (1e18 fixed point) by symbol; an
	// asset missing has no price.
	Prices map[string]*big.Int
}

// Bound is daoguard.Bound.
type Bound = daoguard.Bound

// limit is a candidate bound: nil value means unbounded.
type limit struct {
	v  *big.Int
	by string
}

func (l *limit) min(v *big.Int, by string) {
	if v != nil && (l.v == nil || v.Cmp(l.v) < 0) {
		l.v, l.by = v, by
	}
}

// over scales a window's limit to a longer period: any span of length
// period is covered by ceil(period/w) spans of the window's length, each
// holding at most the limit (a window at least as long bounds it as is).
func over(v *big.Int, w, period time.Duration) *big.Int {
	if v == nil || w >= period {
		return v
	}
	n := int64((period + w - 1) / w)
	return new(big.Int).Mul(v, big.NewInt(n))
}

// usdToAsset converts micro-dollars into base units of an asset at price
// (1e18 fixed point), rounding down: a bound must not be overstated by
// rounding (the true bound is at most this, plus less than one unit).
func usdToAsset(usd int64, decimals int, price *big.Int) *big.Int {
	if price == nil || price.Sign() <= 0 {
		return nil
	}
	// units = usd·1e-6 / (price·1e-18) · 10^decimals
	n := new(big.Int).Mul(big.NewInt(usd), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(12+decimals)), nil))
	return n.Quo(n, price)
}

// rulesFor returns the rules that may apply to p, each once.
func (p *Policy) rulesFor(pr *daoguard.Principal) []*rule {
	seen := map[*rule]bool{}
	var out []*rule
	add := func(rs []*rule) {
		for _, r := range rs {
			if !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	add(p.byPrincipal[pr.ID])
	for _, role := range pr.Roles {
		add(p.byRole[role])
	}
	kind := uint8(1)
	if pr.Kind == daoguard.PrincipalHuman {
		kind = 2
	}
	for k, b := range p.byKind {
		if k != 0 && uint8(k)&kind == 0 {
			continue
		}
		add(b.rest)
		for _, rs := range b.byRecipient {
			add(rs)
		}
	}
	slices.SortFunc(out, func(a, b *rule) int { return a.index - b.index })
	return out
}

// moves reports whether r can let an asset move: a transfer or an
// approval of it (or of anything).
func (r *rule) moves(asset string) bool {
	if r.types != 0 && r.types&(ItemTransfer|ItemApproval) == 0 {
		return false
	}
	return r.assets == nil || r.assets[asset]
}

// boundOf is what one autonomous rule lets an agent move of an asset over
// period: its windows of at least that length that count the agent (per
// agent or the whole organisation), in the asset, in USD at the price, or
// as a count of per-action maxima. A rule whose windows do not bound it is
// unbounded, whatever its per-action limit (actions can be repeated).
func (r *rule) boundOf(a *daoguard.Asset, period time.Duration, w *World) limit {
	var l limit
	var perTx *big.Int
	if r.maxAmountText != "" && r.maxAsset == a.Symbol {
		perTx, _ = w.Catalog.amount(r.maxAmountText, a.Symbol, a.Decimals)
	}
	if r.maxUSD >= 0 {
		if v := usdToAsset(r.maxUSD, a.Decimals, w.Prices[a.Symbol]); v != nil && (perTx == nil || v.Cmp(perTx) < 0) {
			perTx = v
		}
	}
	for _, win := range r.windows {
		if win.per != PerAgent && win.per != PerOrg {
			continue
		}
		by := "rule " + r.name + " (" + win.name + ")"
		switch {
		case win.maxCount > 0:
			if perTx != nil {
				l.min(over(new(big.Int).Mul(perTx, big.NewInt(int64(win.maxCount))), win.period, period), by)
			}
		case win.maxUSD >= 0:
			l.min(over(usdToAsset(win.maxUSD, a.Decimals, w.Prices[a.Symbol]), win.period, period), by)
		case win.asset == a.Symbol:
			v, _ := w.Catalog.amount(win.maxAmount, a.Symbol, a.Decimals)
			l.min(over(v, win.period, period), by)
		}
	}
	if l.v == nil {
		l.by = "rule " + r.name + " (no window bounds it)"
	}
	return l
}

// periods returns the window lengths worth showing for p: every one its
// rules and ceilings use, and a day.
func (p *Policy) periods(rules []*rule, ceilings []*ceiling) []time.Duration {
	ps := []time.Duration{24 * time.Hour}
	for _, r := range rules {
		for _, w := range r.windows {
			if w.per == PerAgent || w.per == PerOrg {
				ps = append(ps, w.period)
			}
		}
	}
	for _, c := range ceilings {
		for _, w := range c.windows {
			ps = append(ps, w.period)
		}
	}
	slices.Sort(ps)
	return slices.Compact(ps)
}

// Bounds returns, for each agent of the world and for all agents together
// (capped by the holdings of the accounts their rules pay from),
// the most it can move without a human over each window length the policy
// uses (and a day): per asset, and in USD for every asset together. A
// bound is the least of what the agent's autonomous rules allow (the most
// any of them allows: it may use whichever matches), every ceiling that
// bounds it, and what the accounts those rules pay from hold.
func (p *Policy) Bounds(w *World) []Bound {
	var out []Bound
	var assets []*daoguard.Asset
	for _, a := range w.Catalog.bySymbol {
		assets = append(assets, a)
	}
	slices.SortFunc(assets, func(a, b *daoguard.Asset) int { return compareStrings(a.Symbol, b.Symbol) })
	var agents []*daoguard.Principal
	for _, pr := range w.Principals {
		if pr.Kind == daoguard.PrincipalAgent {
			agents = append(agents, pr)
		}
	}
	slices.SortFunc(agents, func(a, b *daoguard.Principal) int { return compareStrings(a.ID, b.ID) })

	type key struct {
		period time.Duration
		asset  string
	}
	together := map[key]*limit{} // the sum over agents
	allPeriods := []time.Duration{}
	// The accounts any agent's autonomous rules pay each asset from.
	paysFrom, paysFromAny := map[string]map[string]bool{}, map[string]bool{}
	for _, pr := range agents {
		var auto []*rule
		for _, r := range p.rulesFor(pr) {
			if r.tier == TierAutonomous {
				auto = append(auto, r)
			}
		}
		var ceils []*ceiling
		for _, c := range p.ceilings {
			if c.applies(pr) {
				ceils = append(ceils, c)
			}
		}
		periods := p.periods(auto, ceils)
		allPeriods = append(allPeriods, periods...)
		for _, period := range periods {
			usdSum, usdKnown, any, priced := new(big.Int), true, false, 0
			var unpriced []string
			for _, a := range assets {
				best, moves := limit{v: new(big.Int)}, false
				accounts := map[string]bool{}
				anyAccount := false
				for _, r := range auto {
					if !r.moves(a.Symbol) {
						continue
					}
					rb := r.boundOf(a, period, w)
					switch {
					case !moves || rb.v == nil || best.v != nil && rb.v.Cmp(best.v) > 0:
						best = rb
					}
					moves = true
					if r.accounts == nil {
						anyAccount = true
					}
					for acc := range r.accounts {
						accounts[acc] = true
					}
				}
				if !moves {
					continue // no autonomous rule moves it: it moves only with a human
				}
				if paysFrom[a.Symbol] == nil {
					paysFrom[a.Symbol] = map[string]bool{}
				}
				for acc := range accounts {
					paysFrom[a.Symbol][acc] = true
				}
				paysFromAny[a.Symbol] = paysFromAny[a.Symbol] || anyAccount
				any = true
				for _, c := range ceils {
					for _, cw := range c.windows {
						if cw.per == PerRole && !pr.HasRole(cw.role) {
							continue
						}
						best.ceiling(c, &cw, a, period, w)
					}
				}
				best.min(w.held(a.Symbol, accounts, anyAccount), "holdings")
				out = append(out, p.bound(pr, period, a, best))
				k := key{period, a.Symbol}
				t := together[k]
				if t == nil {
					t = &limit{v: new(big.Int), by: "the agents' bounds added up"}
					together[k] = t
				}
				if best.v == nil || t.v == nil {
					t.v = nil
				} else {
					t.v.Add(t.v, best.v)
				}
				switch price := w.Prices[a.Symbol]; {
				case price == nil:
					unpriced = append(unpriced, a.Symbol) // bounded in its own units only
				case best.v == nil:
					usdKnown = false
				default:
					priced++
					usdSum.Add(usdSum, big.NewInt(usdValue(best.v, a.Decimals, price))) // each at most MaxUSD: no overflow in a big.Int
				}
			}
			if !any {
				continue
			}
			usd := limit{by: "no asset it moves has a trusted price: see each asset's bound"}
			if usdKnown && priced > 0 {
				usd = limit{v: usdSum, by: "its assets' bounds added up"}
			}

			for _, c := range ceils {
				for _, cw := range c.windows {
					if cw.maxUSD >= 0 && (cw.per != PerRole || pr.HasRole(cw.role)) {
						usd.min(over(big.NewInt(cw.maxUSD), cw.period, period), "ceiling "+c.name+" ("+fmtPeriod(cw.period)+")")
					}
				}
			}
			b := p.bound(pr, period, nil, usd)
			if len(unpriced) > 0 && priced > 0 {
				b.By += " (priced assets only: " + strings.Join(unpriced, ", ") + " have no price and are bounded in their own units)"
			}
			out = append(out, b)
			k := key{period, "USD"}
			if t := together[k]; t == nil {
				together[k] = &limit{v: usd.v, by: "the agents' bounds added up"}
			} else if t.v != nil && usd.v != nil {
				t.v = new(big.Int).Add(t.v, usd.v)
			} else {
				t.v = nil
			}
		}
	}
	// All agents together: their bounds added up, the ceilings on all
	// agents, and everything the organisation holds.
	slices.Sort(allPeriods)
	for _, period := range slices.Compact(allPeriods) {
		assetsUSD, assetsKnown, assetsPriced := new(big.Int), true, 0
		for _, a := range assets {
			t := together[key{period, a.Symbol}]
			if t == nil {
				continue
			}
			best := *t
			if best.v != nil {
				best.v = new(big.Int).Set(best.v)
			}
			for _, c := range p.ceilings {
				if !c.agents {
					continue
				}
				for _, cw := range c.windows {
					best.ceiling(c, &cw, a, period, w)
				}
			}
			best.min(w.held(a.Symbol, paysFrom[a.Symbol], paysFromAny[a.Symbol]), "holdings")
			out = append(out, p.bound(nil, period, a, best))
			if price := w.Prices[a.Symbol]; price != nil {
				if best.v == nil {
					assetsKnown = false
				} else {
					assetsPriced++
					assetsUSD.Add(assetsUSD, big.NewInt(usdValue(best.v, a.Decimals, price)))
				}
			}
		}
		if t := together[key{period, "USD"}]; t != nil {
			best := *t
			if best.v != nil {
				best.v = new(big.Int).Set(best.v)
			}
			if assetsKnown && assetsPriced > 0 {
				best.min(assetsUSD, "its assets' bounds added up")
			}
			for _, c := range p.ceilings {
				for _, cw := range c.windows {
					if c.agents && cw.maxUSD >= 0 {
						best.min(over(big.NewInt(cw.maxUSD), cw.period, period), "ceiling "+c.name+" ("+fmtPeriod(cw.period)+")")
					}
				}
			}
			out = append(out, p.bound(nil, period, nil, best))
		}
	}
	return out
}

// ceiling lowers l to what a ceiling's window allows of asset a over
// period: in the asset's units, or in USD at its price.
func (l *limit) ceiling(c *ceiling, cw *window, a *daoguard.Asset, period time.Duration, w *World) {
	by := "ceiling " + c.name + " (" + fmtPeriod(cw.period) + ")"
	if cw.maxUSD >= 0 {
		l.min(over(usdToAsset(cw.maxUSD, a.Decimals, w.Prices[a.Symbol]), cw.period, period), by)
	} else if cw.asset == a.Symbol {
		v, _ := w.Catalog.amount(cw.maxAmount, a.Symbol, a.Decimals)
		l.min(over(v, cw.period, period), by)
	}
}

// held is what the accounts (all of them, with any) hold of an asset; nil
// when one of them is unknown.
func (w *World) held(sym string, accounts map[string]bool, any bool) *big.Int {
	sum := new(big.Int)
	n := 0
	for _, name := range w.Accounts {
		if !any && !accounts[name] {
			continue
		}
		bal, ok := w.Holdings[name]
		if !ok {
			return nil
		}
		if v := bal[sym]; v != nil {
			sum.Add(sum, v)
		}
		n++
	}
	if n == 0 {
		return nil
	}
	return sum
}

func (p *Policy) bound(pr *daoguard.Principal, period time.Duration, a *daoguard.Asset, l limit) Bound {
	b := Bound{Period: fmtPeriod(period), Asset: "USD", By: l.by}
	if pr != nil {
		b.Principal, b.Name = pr.ID, pr.Name
	}
	if a != nil {
		b.Asset = a.Symbol
	}
	switch {
	case l.v == nil:
		b.Unbounded = true
		if b.By == "" {
			b.By = "no window or ceiling bounds it"
		}
	case a == nil:
		usd := int64(MaxUSD)
		if l.v.IsInt64() && l.v.Int64() < MaxUSD {
			usd = l.v.Int64()
		}
		b.Amount = FormatUSD(usd)
	default:
		b.Amount = daoguard.FormatAmount(l.v, a.Decimals)
	}
	return b
}

// BoundChanges compares the bounds of two policies in one world: a line
// for each bound that moves ("agent payroll-bot (p1): 24h USDC 1500 →
// 3000"), for the approvers of a policy change to read before they sign.
func BoundChanges(old, next *Policy, w *World) []string {
	type key struct{ who, period, asset string }
	before := map[key]Bound{}
	var ob []Bound
	if old != nil {
		ob = old.Bounds(w)
	}
	for _, b := range ob {
		before[key{b.Principal, b.Period, b.Asset}] = b
	}
	text := func(b *Bound) string {
		switch {
		case b == nil:
			return "needs a human"
		case b.Unbounded:
			return "unbounded"
		}
		return b.Amount
	}
	var out []string
	seen := map[key]bool{}
	for _, b := range next.Bounds(w) {
		k := key{b.Principal, b.Period, b.Asset}
		seen[k] = true
		var was *Bound
		if x, ok := before[k]; ok {
			was = &x
		}
		if was != nil && was.Unbounded == b.Unbounded && was.Amount == b.Amount {
			continue
		}
		out = append(out, fmt.Sprintf("%s: %s %s %s → %s", who(b), b.Period, b.Asset, text(was), text(&b)))
	}
	for _, b := range ob {
		if !seen[key{b.Principal, b.Period, b.Asset}] {
			out = append(out, fmt.Sprintf("%s: %s %s %s → needs a human", who(b), b.Period, b.Asset, text(&b)))
		}
	}
	return out
}

func who(b Bound) string {
	switch {
	case b.Principal == "":
		return "all agents"
	case b.Name != "" && b.Name != b.Principal:
		return "agent " + b.Name + " (" + b.Principal + ")"
	}
	return "agent " + b.Principal
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TrustedPrices aggregates quotes as evaluation does (fresh, agreeing
// sources; never the governance token) into the prices bounds use.
func (p *Policy) TrustedPrices(quotes map[string]*Quotes, now time.Time) map[string]*big.Int {
	out := map[string]*big.Int{}
	for sym, q := range quotes {
		if sym == p.govToken || q == nil {
			continue
		}
		if pr := Aggregate(q.Readings(), now, p.prices); pr.Value != nil {
			out[sym] = pr.Value
		}
	}
	return out
}
