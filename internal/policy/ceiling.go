package policy

import (
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/daoguard/daoguard"
)

// Reason codes of the ceilings. Stable; documented in docs/ERRORS.md.
const (
	ReasonCeiling         = "CEILING"          // a ceiling held; its figures are in the detail
	ReasonCeilingExceeded = "CEILING_EXCEEDED" // a ceiling would be exceeded: the council approves
	ReasonCeilingUnpriced = "CEILING_UNPRICED" // a USD ceiling, an unpriced asset it has no window for: the council approves
)

// ceiling is a compiled CeilingDoc.
type ceiling struct {
	name       string
	line       int
	principals map[string]bool
	roles      []string
	agents     bool
	// windows: per PerAgent (principals), PerRole (one copy per role), or
	// PerAgents.
	windows []window
	hasUSD  bool
	assets  map[string]bool // assets it has a window of its own for
	// as is the ceiling in the shape of a rule, for the window checks and
	// their explanations (named "ceiling NAME"): made once, at load.
	as *rule
}

// applies reports whether the ceiling bounds p.
func (c *ceiling) applies(p *daoguard.Principal) bool {
	if p.Kind != daoguard.PrincipalAgent {
		return false
	}
	switch {
	case c.agents:
		return true
	case c.principals != nil:
		return c.principals[p.ID]
	}
	return slices.ContainsFunc(c.roles, p.HasRole)
}

const maxCeilings = 1000

// ceilings compiles the document's ceilings and refuses a policy whose
// autonomous rules could exceed one by themselves.
func (c *compiler) ceilings(d *Document, p *Policy) {
	if len(d.Ceilings) > maxCeilings {
		c.errf([]any{"ceilings"}, "more than %d ceilings", maxCeilings)
		return
	}
	names := map[string]bool{}
	for i := range d.Ceilings {
		cd := &d.Ceilings[i]
		path := []any{"ceilings", i}
		ce := &ceiling{name: cd.Name, line: locate(c.root, path), assets: map[string]bool{}, as: &rule{name: "ceiling " + cd.Name}}
		if cd.Name == "" {
			c.errf(at(path, "name"), "a ceiling needs a name")
		} else if names[cd.Name] {
			c.errf(at(path, "name"), "ceiling name %q is used twice", clipText(cd.Name))
		}
		names[cd.Name] = true
		scopes := 0
		var per Per
		if len(cd.Principals) > 0 {
			scopes++
			per = PerAgent
			ce.principals = map[string]bool{}
			for _, id := range cd.Principals {
				ce.principals[id] = true
			}
		}
		if len(cd.Roles) > 0 {
			scopes++
			per = PerRole
			ce.roles = cd.Roles
		}
		if cd.Agents {
			scopes++
			per = PerAgents
			ce.agents = true
		}
		if scopes != 1 {
			c.errf(path, "a ceiling bounds exactly one of principals (each agent), roles (the agents of each role together) or agents: true (all agents together)")
		}
		if len(cd.Windows) == 0 {
			c.errf(at(path, "windows"), "a ceiling needs at least one window")
		}
		wds := make([]WindowDoc, len(cd.Windows))
		for j, wd := range cd.Windows {
			wp := at(path, "windows", j)
			if wd.Per != "" {
				c.errf(at(wp, "per"), "a ceiling's windows count its scope: leave per out")
			}
			if wd.MaxCount != 0 {
				c.errf(at(wp, "max_count"), "a ceiling limits what moves: max_usd, or asset and max_amount")
			}
			wd.Per = "org" // the rule-window parser checks period, amounts and units
			wds[j] = wd
		}
		tmp := &rule{maxUSD: -1}
		c.limits(path, &LimitsDoc{Windows: wds}, tmp)
		for _, w := range tmp.windows {
			w.per = per
			w.name = fmtPeriod(w.period) + " ceiling"
			if w.maxUSD >= 0 {
				ce.hasUSD = true
			} else if w.maxAmount != "" {
				ce.assets[w.asset] = true
			}
			p.maxPeriod = max(p.maxPeriod, w.period)
			if per == PerRole {
				for _, role := range ce.roles {
					w.role = role
					w.name = fmtPeriod(w.period) + " ceiling for role " + role
					ce.windows = append(ce.windows, w)
				}
			} else {
				ce.windows = append(ce.windows, w)
			}
		}
		c.refuseRulesAbove(ce, path, p)
		p.ceilings = append(p.ceilings, ce)
	}
}

// refuseRulesAbove refuses an autonomous rule that promises more than a
// ceiling applying to it allows: one action over the ceiling (a per-action
// limit above it, in its unit), or, for a ceiling on each agent, a
// per-agent window of the same unit, at least as long, above it. Such a
// rule says "alone" where the ceiling says "with the council": the policy
// would not mean what it reads.
func (c *compiler) refuseRulesAbove(ce *ceiling, path []any, p *Policy) {
	for _, r := range p.rules {
		if r.tier != TierAutonomous || !ce.overlaps(r) {
			continue
		}
		rp := []any{"rules", r.index}
		for _, w := range ce.windows {
			if w.per == PerRole && w.role != ce.roles[0] {
				continue // one copy per role: judge once
			}
			if w.maxUSD >= 0 {
				if r.maxUSD > w.maxUSD {
					c.errf(at(rp, "limits", "max_usd"), "rule %s lets an agent move %s USD in one action on its own, above ceiling %s (%s USD per %s)", r.name, r.maxUSDText, ce.name, w.maxUSDText, fmtPeriod(w.period))
				}
			} else if r.maxAmountText != "" && r.maxAsset == w.asset && amountAbove(r.maxAmountText, w.maxAmount) {
				c.errf(at(rp, "limits", "max_amount"), "rule %s lets an agent move %s %s in one action on its own, above ceiling %s (%s %s per %s)", r.name, r.maxAmountText, w.asset, ce.name, w.maxAmount, w.asset, fmtPeriod(w.period))
			}
			if ce.principals == nil {
				continue
			}
			for i, rw := range r.windows {
				if rw.per != PerAgent || rw.period < w.period {
					continue
				}
				if w.maxUSD >= 0 && rw.maxUSD > w.maxUSD || w.maxUSD < 0 && rw.asset == w.asset && rw.maxAmount != "" && amountAbove(rw.maxAmount, w.maxAmount) {
					c.errf(at(rp, "limits", "windows", i), "rule %s lets an agent move more on its own over %s than ceiling %s allows over %s", r.name, fmtPeriod(rw.period), ce.name, fmtPeriod(w.period))
				}
			}
		}
	}
	_ = path
}

// overlaps reports whether rule r may apply to an agent the ceiling bounds.
func (ce *ceiling) overlaps(r *rule) bool {
	if r.kinds != 0 && r.kinds&1 == 0 {
		return false // humans only
	}
	if ce.principals != nil && len(r.principals) > 0 {
		for id := range r.principals {
			if ce.principals[id] {
				return true
			}
		}
		return false
	}
	if len(ce.roles) > 0 && len(r.principals) == 0 && len(r.roles) > 0 {
		return slices.ContainsFunc(r.roles, func(x string) bool { return slices.Contains(ce.roles, x) })
	}
	return true
}

// amountAbove compares two decimal amounts in display units.
func amountAbove(a, b string) bool {
	x, ok1 := new(big.Rat).SetString(a)
	y, ok2 := new(big.Rat).SetString(b)
	return ok1 && ok2 && x.Cmp(y) > 0
}

// ceilings checks every ceiling that bounds the agent, once the rules let
// its action run on its own: beyond one, the council approves. A USD
// ceiling sees the priced part of what moves; an unpriced asset must have
// a window of its own in the same ceiling, or the ceiling cannot be shown
// to hold (CEILING_UNPRICED).
func (e *evaluation) ceilings() {
	if !e.agent || e.tier != TierAutonomous || len(e.p.ceilings) == 0 {
		return
	}
	for _, ce := range e.p.ceilings {
		if !ce.applies(e.in.Principal) {
			continue
		}
		pseudo := ce.as
		before := len(e.reasons)
		e.fig = e.fig[:0]
		over := false
		for i := range ce.windows {
			w := &ce.windows[i]
			if w.per == PerRole && !e.in.Principal.HasRole(w.role) {
				continue
			}
			if x, u := e.window(pseudo, w, nil); x || u {
				over = true
			}
		}
		if ce.hasUSD {
			for _, f := range e.flows {
				if f.USD < 0 && f.Amount.Sign() > 0 && !ce.assets[f.Asset] {
					over = true
					e.reason(ReasonCeilingUnpriced, pseudo.name, fmt.Sprintf("%s has no trusted price and the ceiling has no window of its own for it: its USD limit cannot be shown to hold", nameOr(f.Asset, f.Token)),
						"give the ceiling an asset window for it, or wait for a price")
				}
			}
		}
		for i := before; i < len(e.reasons); i++ {
			if r := &e.reasons[i]; strings.HasPrefix(r.Code, "WINDOW_") {
				r.Code = ReasonCeilingExceeded
			}
		}
		if over {
			e.raise(TierApproval, e.p.council)
			continue
		}
		if len(e.fig) > 2 {
			e.reason(ReasonCeiling, pseudo.name, string(e.fig[2:]), "")
		}
	}
}
