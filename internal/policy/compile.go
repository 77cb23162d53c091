package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"go.yaml.in/yaml/v3"
)

// Tier is how much human involvement an action needs. Larger is stricter;
// the strictest tier of all matching rules decides.
type Tier uint8

const (
	TierAutonomous Tier = iota + 1
	TierApproval
	TierVote
	TierDeny
)

func (t Tier) String() string {
	switch t {
	case TierAutonomous:
		return "autonomous"
	case TierApproval:
		return "approval"
	case TierVote:
		return "vote"
	case TierDeny:
		return "deny"
	}
	return "?"
}

func parseTier(s string) (Tier, bool) {
	for t := TierAutonomous; t <= TierDeny; t++ {
		if t.String() == s {
			return t, true
		}
	}
	return 0, false
}

// Policy is a validated, compiled policy document. It is immutable and safe
// for concurrent evaluation.
type Policy struct {
	Name    string
	Version string // sha256 of the source document: what decisions cite
	Source  []byte

	lists               map[string]map[string]bool
	listAddrs           map[string]bool // every listed address
	groups              map[string]string
	council             approval
	prices              PriceConfig
	govToken            string
	dcAllow             map[string]bool
	approvalCapText     map[string]string // symbol → cap in display units, resolved with the asset's decimals
	unitsMaxShare       *big.Rat          // fraction of holdings
	statedDev           *big.Rat
	lookAlike           *LookAlikes
	lookLead, lookTrail int
	rules               []*rule
	// Index of rules by who they apply to: most decisions look at a handful
	// of rules, whatever the policy's size.
	byPrincipal map[string][]*rule
	byRole      map[string][]*rule
	byKind      [3]bucket // by principal kind; [0] any
	maxPeriod   time.Duration
	ceilings    []*ceiling
	kindsOnce   sync.Once
	kinds       []Kind
}

// bucket holds the rules of one principal kind: those naming recipients
// by address, and the rest.
type bucket struct {
	byRecipient map[string][]*rule
	rest        []*rule
}

// maxIndexedRecipients bounds how many index entries one rule may add.
const maxIndexedRecipients = 100_000

// approval is an approval requirement.
type approval struct {
	group     string
	role      string
	approvals int
	timelock  time.Duration
}

type rule struct {
	name  string
	index int
	line  int

	principals map[string]bool
	roles      []string
	kinds      uint8 // bit 1 agent, bit 2 human; 0 any

	accounts     map[string]bool
	types        ItemType // bitmask; 0 any
	assets       map[string]bool
	recipients   *addrSet
	newRecipient *bool
	targets      *addrSet
	selector     [4]byte
	hasFunction  bool
	function     string
	args         abi.Arguments
	params       []paramCond
	value        *numCond
	operation    daoguard.Operation
	time         *timeWindow
	cel          *celCond

	tier     Tier
	approval approval
	over     Tier

	maxAmountText  string // display units of maxAsset, resolved at evaluation
	maxAsset       string
	maxUSD         int64 // -1: none
	maxUSDText     string
	maxHoldingsPct *big.Rat
	windows        []window
}

type window struct {
	name       string // "24h per agent", for explanations
	maxUSDText string
	period     time.Duration
	per        Per
	asset      string
	maxAmount  string // display units; resolved with the asset's decimals
	maxUSD     int64  // -1: none
	maxCount   int    // 0: none
	role       string // PerRole: the role whose total it is
}

type addrSet struct {
	addrs map[string]bool
	not   bool
}

func (s *addrSet) match(a string) bool { return s.addrs[a] != s.not }

type numCond struct {
	op  string
	val *big.Int
}

func (c *numCond) match(v *big.Int) bool {
	x := v.Cmp(c.val)
	switch c.op {
	case "eq":
		return x == 0
	case "ne":
		return x != 0
	case "lt":
		return x < 0
	case "le":
		return x <= 0
	case "gt":
		return x > 0
	case "ge":
		return x >= 0
	}
	return false
}

type timeWindow struct {
	days       uint8 // bit d for time.Weekday d; 0 every day
	start, end int   // minutes after midnight; end exclusive; start > end wraps
	hasHours   bool
	loc        *time.Location
	text       string
}

func (w *timeWindow) contains(t time.Time) bool {
	t = t.In(w.loc)
	if w.days != 0 && w.days&(1<<uint(t.Weekday())) == 0 {
		return false
	}
	if !w.hasHours {
		return true
	}
	m := t.Hour()*60 + t.Minute()
	if w.start <= w.end {
		return m >= w.start && m < w.end
	}
	return m >= w.start || m < w.end
}

// Defaults for what a policy may leave out.
const (
	DefaultPriceMaxAge       = 5 * time.Minute
	DefaultPriceMaxDeviation = "2"  // percent
	DefaultPriceQuorum       = 2    // agreeing sources
	DefaultUnitsMaxHoldings  = "25" // percent of an asset's holdings in one agent action
	DefaultStatedDeviation   = "1"  // percent
	maxRules                 = 10_000
	maxListAddresses         = 1_000_000
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`)

// Parse validates a policy document and compiles it. Every problem found
// is reported, with its line and field path; nothing partial is returned.
func Parse(src []byte) (*Policy, error) {
	doc, root, err := decodeDocument(src)
	if err != nil {
		return nil, err
	}
	c := &compiler{root: root}
	p := c.compile(doc)
	if len(c.problems) > 0 {
		slices.SortStableFunc(c.problems, func(a, b Problem) int { return a.Line - b.Line })
		return nil, &ParseError{Problems: c.problems}
	}
	p.Version = "sha256:" + Digest(src)
	p.Source = append([]byte(nil), src...)
	return p, nil
}

// Digest is the hex SHA-256 of a policy document: what versions cite.
func Digest(src []byte) string {
	sum := sha256.Sum256(src)
	return hex.EncodeToString(sum[:])
}

type compiler struct {
	root     *yaml.Node
	problems []Problem
}

func (c *compiler) errf(path []any, format string, args ...any) {
	c.problems = append(c.problems, Problem{Line: locate(c.root, path), Field: fieldPath(path), Message: fmt.Sprintf(format, args...)})
}

func at(path []any, more ...any) []any {
	return append(slices.Clip(path), more...)
}

func (c *compiler) address(path []any, s string) (string, bool) {
	if len(s) != 42 || !strings.HasPrefix(s, "0x") {
		c.errf(path, "%q is not an address (0x and 40 hex digits)", clipText(s))
		return "", false
	}
	if _, err := hex.DecodeString(s[2:]); err != nil {
		c.errf(path, "%q is not an address (0x and 40 hex digits)", clipText(s))
		return "", false
	}
	if l, u := strings.ToLower(s[2:]), strings.ToUpper(s[2:]); s[2:] != l && s[2:] != u && common.HexToAddress(s).Hex() != s {
		c.errf(path, "%s fails its EIP-55 checksum", s)
		return "", false
	}
	return strings.ToLower(s), true
}

func (c *compiler) duration(path []any, s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := parseDuration(s)
	if err != nil || d < 0 {
		c.errf(path, "%q is not a duration (like 90s, 15m, 24h, 7d)", clipText(s))
		return def
	}
	return d
}

// parseDuration is time.ParseDuration plus a "d" (24h) suffix: windows are
// written in days more often than in hours.
func parseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return 0, err
		}
		return time.Duration(v) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func (c *compiler) percent(path []any, s, def string) *big.Rat {
	if s == "" {
		s = def
	}
	r, err := ParsePercent(s)
	if err != nil {
		c.errf(path, "%v", err)
		return nil
	}
	return r
}

func (c *compiler) compile(d *Document) *Policy {
	p := &Policy{
		Name: d.Name, lists: map[string]map[string]bool{}, listAddrs: map[string]bool{},
		groups: map[string]string{}, dcAllow: map[string]bool{}, approvalCapText: map[string]string{},
		byPrincipal: map[string][]*rule{}, byRole: map[string][]*rule{},
	}
	if d.Version != SchemaVersion {
		c.errf([]any{"version"}, "version must be %d", SchemaVersion)
	}
	if d.Name == "" {
		c.errf([]any{"name"}, "a policy needs a name")
	}
	total := 0
	for _, name := range sortedKeys(d.Lists) {
		path := []any{"lists", name}
		if !nameRE.MatchString(name) {
			c.errf(path, "list name %q: letters, digits, _ . : - (at most 64)", clipText(name))
		}
		set := map[string]bool{}
		for i, a := range d.Lists[name] {
			if addr, ok := c.address(at(path, i), a); ok {
				set[addr] = true
				p.listAddrs[addr] = true
			}
		}
		total += len(d.Lists[name])
		p.lists[name] = set
	}
	if total > maxListAddresses {
		c.errf([]any{"lists"}, "more than %d listed addresses", maxListAddresses)
	}
	for _, name := range sortedKeys(d.Groups) {
		g := d.Groups[name]
		if !nameRE.MatchString(name) {
			c.errf([]any{"groups", name}, "group name %q: letters, digits, _ . : - (at most 64)", clipText(name))
		}
		if g.Role == "" {
			c.errf([]any{"groups", name, "role"}, "a group names the role its members hold")
		}
		p.groups[name] = g.Role
	}
	p.council = c.approval([]any{"council"}, &d.Council, p.groups, true)

	p.prices = PriceConfig{
		MaxAge:       c.duration([]any{"prices", "max_age"}, d.Prices.MaxAge, DefaultPriceMaxAge),
		MaxDeviation: c.percent([]any{"prices", "max_deviation_pct"}, d.Prices.MaxDeviationPct, DefaultPriceMaxDeviation),
		Quorum:       d.Prices.Quorum,
	}
	if p.prices.Quorum == 0 {
		p.prices.Quorum = DefaultPriceQuorum
	}
	if p.prices.Quorum < 0 || p.prices.Quorum > 16 {
		c.errf([]any{"prices", "quorum"}, "quorum must be between 1 and 16")
	}
	if p.prices.MaxAge == 0 {
		c.errf([]any{"prices", "max_age"}, "max_age must be positive")
	}
	p.govToken = d.Prices.GovernanceToken

	for i, a := range d.Protection.DelegatecallAllowlist {
		if addr, ok := c.address([]any{"protections", "delegatecall_allowlist", i}, a); ok {
			p.dcAllow[addr] = true
		}
	}
	for _, sym := range sortedKeys(d.Protection.ApprovalCaps) {
		v := d.Protection.ApprovalCaps[sym]
		if _, err := checkAmount(v); err != nil {
			c.errf([]any{"protections", "approval_caps", sym}, "%q is not a decimal amount", clipText(v))
			continue
		}
		p.approvalCapText[sym] = v
	}
	p.unitsMaxShare = c.percent([]any{"units", "max_holdings_pct"}, d.Units.MaxHoldingsPct, DefaultUnitsMaxHoldings)
	p.statedDev = c.percent([]any{"units", "max_stated_deviation_pct"}, d.Units.MaxStatedDeviationPct, DefaultStatedDeviation)

	p.lookLead, p.lookTrail = d.LookAlike.Lead, d.LookAlike.Trail
	if p.lookLead == 0 {
		p.lookLead = DefaultLookAlikeDigits
	}
	if p.lookTrail == 0 {
		p.lookTrail = DefaultLookAlikeDigits
	}
	if p.lookLead < 2 || p.lookTrail < 2 || p.lookLead+p.lookTrail > 20 {
		c.errf([]any{"look_alike"}, "lead and trail must each be at least 2 and together at most 20")
	}
	p.lookAlike = NewLookAlikes(p.lookLead, p.lookTrail)
	for _, a := range sortedKeys(p.listAddrs) {
		p.lookAlike.Add(a)
	}

	if len(d.Rules) == 0 {
		c.errf([]any{"rules"}, "a policy needs at least one rule (with none, everything is denied)")
	}
	if len(d.Rules) > maxRules {
		c.errf([]any{"rules"}, "more than %d rules", maxRules)
	}
	names := map[string]bool{}
	defer func() { c.ceilings(d, p) }() // after the rules: a ceiling is checked against them
	for i := range d.Rules {
		r := c.rule([]any{"rules", i}, &d.Rules[i], p)
		if r == nil {
			continue
		}
		if names[r.name] {
			c.errf([]any{"rules", i, "name"}, "rule name %q is used twice", r.name)
		}
		names[r.name] = true
		r.index = len(p.rules)
		p.rules = append(p.rules, r)
		for _, w := range r.windows {
			p.maxPeriod = max(p.maxPeriod, w.period)
		}
		switch {
		case len(r.principals) > 0:
			for id := range r.principals {
				p.byPrincipal[id] = append(p.byPrincipal[id], r)
			}
		case len(r.roles) > 0:
			for _, role := range r.roles {
				p.byRole[role] = append(p.byRole[role], r)
			}
		default:
			b := &p.byKind[r.kinds&3]
			// Rules for anyone are indexed by the recipients they name
			// (deny lists, mostly), so that a large policy's deny rules
			// cost one lookup, not one check each.
			if r.recipients != nil && !r.recipients.not && len(r.recipients.addrs) <= maxIndexedRecipients {
				if b.byRecipient == nil {
					b.byRecipient = map[string][]*rule{}
				}
				for a := range r.recipients.addrs {
					b.byRecipient[a] = append(b.byRecipient[a], r)
				}
			} else {
				b.rest = append(b.rest, r)
			}
		}
	}
	return p
}

func (c *compiler) approval(path []any, a *ApprovalDoc, groups map[string]string, required bool) approval {
	out := approval{group: a.Group, approvals: a.Approvals}
	if a.Group == "" && a.Approvals == 0 && a.Timelock == "" && !required {
		return out
	}
	role, ok := groups[a.Group]
	if !ok {
		c.errf(at(path, "group"), "unknown group %q (define it under groups)", clipText(a.Group))
	}
	out.role = role
	if a.Approvals < 1 || a.Approvals > 32 {
		c.errf(at(path, "approvals"), "approvals must be between 1 and 32")
	}
	out.timelock = c.duration(at(path, "timelock"), a.Timelock, 0)
	if required && out.timelock <= 0 {
		c.errf(at(path, "timelock"), "the council's timelock must be positive: it is the delay before protected actions run")
	}
	return out
}

var opNames = map[string]bool{"eq": true, "ne": true, "lt": true, "le": true, "gt": true, "ge": true, "in": true, "not_in": true}

func (c *compiler) rule(path []any, d *RuleDoc, p *Policy) *rule {
	r := &rule{name: d.Name, line: locate(c.root, path), maxUSD: -1}
	// An empty list would read as "anyone": refuse it rather than guess.
	for _, f := range []struct {
		key  string
		list []string
	}{{"principals", d.Principals}, {"roles", d.Roles}, {"principal_kinds", d.Kinds}, {"accounts", d.Accounts}, {"actions", d.Actions}, {"assets", d.Assets}} {
		if f.list != nil && len(f.list) == 0 {
			c.errf(at(path, f.key), "an empty list matches nothing anyone would mean; leave the key out to match any")
		}
	}
	if !nameRE.MatchString(d.Name) {
		c.errf(at(path, "name"), "rule name %q: letters, digits, _ . : - (at most 64), required", clipText(d.Name))
	}
	if len(d.Principals) > 0 {
		r.principals = map[string]bool{}
		for _, id := range d.Principals {
			r.principals[id] = true
		}
	}
	r.roles = d.Roles
	for i, k := range d.Kinds {
		switch k {
		case "agent":
			r.kinds |= 1
		case "human":
			r.kinds |= 2
		default:
			c.errf(at(path, "principal_kinds", i), "%q: want agent or human", clipText(k))
		}
	}
	if r.kinds == 3 {
		r.kinds = 0
	}
	if len(d.Accounts) > 0 {
		r.accounts = map[string]bool{}
		for _, a := range d.Accounts {
			r.accounts[a] = true
		}
	}
	for i, a := range d.Actions {
		switch a {
		case "transfer":
			r.types |= ItemTransfer
		case "approval":
			r.types |= ItemApproval
		case "call":
			r.types |= ItemCall
		default:
			c.errf(at(path, "actions", i), "%q: want transfer, approval or call", clipText(a))
		}
	}
	if len(d.Assets) > 0 {
		r.assets = map[string]bool{}
		for _, a := range d.Assets {
			r.assets[a] = true
		}
	}
	r.recipients = c.addrSet(at(path, "recipients"), d.Recipients, p)
	r.targets = c.addrSet(at(path, "targets"), d.Targets, p)
	r.newRecipient = d.NewRecipient
	if d.Function != "" {
		c.function(at(path, "function"), d.Function, r)
	}
	if len(d.Params) > 0 && !r.hasFunction {
		c.errf(at(path, "params"), "params need a function signature to decode them")
	}
	for i := range d.Params {
		if pc, ok := c.param(at(path, "params", i), &d.Params[i], r); ok {
			r.params = append(r.params, pc)
		}
	}
	if d.Value != nil {
		r.value = c.numCond(at(path, "native_value"), d.Value.Op, d.Value.Value)
	}
	switch d.Operation {
	case "":
	case "call":
		r.operation = daoguard.OpCall
	case "delegatecall":
		r.operation = daoguard.OpDelegateCall
	default:
		c.errf(at(path, "operation"), "%q: want call or delegatecall", clipText(d.Operation))
	}
	if d.Time != nil {
		r.time = c.timeWindow(at(path, "time"), d.Time)
	}
	if d.CEL != "" {
		cc, err := compileCEL(d.CEL)
		if err != nil {
			c.errf(at(path, "cel"), "%v", err)
		} else {
			r.cel = cc
		}
	}
	tier, ok := parseTier(d.Tier)
	if !ok {
		c.errf(at(path, "tier"), "tier %q: want autonomous, approval, vote or deny", clipText(d.Tier))
	}
	r.tier = tier
	r.over = TierDeny
	if d.OverLimit != "" {
		if r.over, ok = parseTier(d.OverLimit); !ok {
			c.errf(at(path, "over_limit"), "over_limit %q: want autonomous, approval, vote or deny", clipText(d.OverLimit))
		} else if r.over < tier {
			c.errf(at(path, "over_limit"), "over_limit (%s) must be at least as strict as tier (%s)", r.over, tier)
		}
	}
	if d.Approval != nil {
		r.approval = c.approval(at(path, "approval"), d.Approval, p.groups, false)
	}
	if (tier == TierApproval || r.over == TierApproval) && r.approval.approvals == 0 {
		c.errf(at(path, "approval"), "an approval tier needs approval: {group, approvals, timelock}")
	}
	if d.Limits != nil {
		c.limits(at(path, "limits"), d.Limits, r)
	} else if d.OverLimit != "" {
		c.errf(at(path, "over_limit"), "over_limit without limits")
	}
	return r
}

func (c *compiler) addrSet(path []any, d *AddrSetDoc, p *Policy) *addrSet {
	if d == nil {
		return nil
	}
	s := &addrSet{addrs: map[string]bool{}, not: d.Not}
	for i, a := range d.Addresses {
		if addr, ok := c.address(at(path, "addresses", i), a); ok {
			s.addrs[addr] = true
		}
	}
	for i, name := range d.Lists {
		l, ok := p.lists[name]
		if !ok {
			c.errf(at(path, "lists", i), "unknown list %q", clipText(name))
			continue
		}
		if len(d.Lists) == 1 && len(d.Addresses) == 0 {
			s.addrs = l // share the list's set: no copy of a large allowlist per rule
			continue
		}
		for a := range l {
			s.addrs[a] = true
		}
	}
	if len(d.Addresses) == 0 && len(d.Lists) == 0 {
		c.errf(path, "an address set needs addresses or lists")
	}
	return s
}

// signatureShape is what ParseSelector lets through to go-ethereum's
// parser: a name, then everything between one pair of outer parentheses.
var signatureShape = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*\(.*\)$`)

// ParseSelector is abi.ParseSelector on text of the right shape, with any
// panic of the parser turned into an error: it indexes past the end of some
// inputs (a bare name such as "s", found by FuzzParsePolicy), and a policy
// document must never crash the gateway or the CLI.
func ParseSelector(sig string) (m abi.SelectorMarshaling, err error) {
	if !signatureShape.MatchString(sig) {
		return m, fmt.Errorf("not name(types)")
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unparsable signature")
		}
	}()
	return abi.ParseSelector(sig)
}

func (c *compiler) function(path []any, sig string, r *rule) {
	// Bounded before parsing: ABI type construction is superlinear in
	// tuple nesting, and a policy must not be a way to burn CPU.
	if len(sig) > 1024 || strings.Count(sig, "(") > 16 {
		c.errf(path, "a function signature is at most 1024 bytes with at most 15 nested tuples")
		return
	}
	m, err := ParseSelector(sig)
	if err != nil || m.Name == "" {
		c.errf(path, "%q is not a function signature like transfer(address,uint256)", clipText(sig))
		return
	}
	var args abi.Arguments
	var canon []string
	for _, in := range m.Inputs {
		t, err := abi.NewType(in.Type, "", in.Components)
		if err != nil {
			c.errf(path, "%q: %v", clipText(sig), err)
			return
		}
		args = append(args, abi.Argument{Type: t})
		canon = append(canon, t.String())
	}
	full := m.Name + "(" + strings.Join(canon, ",") + ")"
	copy(r.selector[:], crypto.Keccak256([]byte(full))[:4])
	r.hasFunction, r.function, r.args = true, full, args
}

func (c *compiler) numCond(path []any, op, v string) *numCond {
	if op != "eq" && op != "ne" && op != "lt" && op != "le" && op != "gt" && op != "ge" {
		c.errf(at(path, "op"), "op %q: want eq, ne, lt, le, gt or ge", clipText(op))
		return nil
	}
	n, err := daoguard.ParseBaseUnits(v)
	if err != nil {
		c.errf(at(path, "value"), "%q is not a non-negative integer in base units", clipText(v))
		return nil
	}
	return &numCond{op: op, val: n}
}

func (c *compiler) timeWindow(path []any, d *TimeDoc) *timeWindow {
	w := &timeWindow{loc: time.UTC}
	if d.Zone != "" {
		loc, err := time.LoadLocation(d.Zone)
		if err != nil {
			c.errf(at(path, "zone"), "unknown time zone %q", clipText(d.Zone))
		} else {
			w.loc = loc
		}
	}
	days := map[string]time.Weekday{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
	for i, s := range d.Days {
		wd, ok := days[strings.ToLower(s)]
		if !ok {
			c.errf(at(path, "days", i), "%q: want mon, tue, wed, thu, fri, sat or sun", clipText(s))
			continue
		}
		w.days |= 1 << uint(wd)
	}
	if d.Hours != "" {
		from, to, ok := strings.Cut(d.Hours, "-")
		s, ok1 := clock(from)
		e, ok2 := clock(to)
		if !ok || !ok1 || !ok2 || s == e {
			c.errf(at(path, "hours"), "%q: want HH:MM-HH:MM (24-hour, end exclusive, may wrap midnight)", clipText(d.Hours))
		}
		w.start, w.end, w.hasHours = s, e, true
	}
	if w.days == 0 && !w.hasHours {
		c.errf(path, "a time window needs days, hours or both")
	}
	w.text = fmt.Sprintf("%v %s %s", d.Days, d.Hours, w.loc)
	return w
}

func clock(s string) (int, bool) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		if strings.TrimSpace(s) == "24:00" {
			return 24 * 60, true
		}
		return 0, false
	}
	return t.Hour()*60 + t.Minute(), true
}

func (c *compiler) limits(path []any, d *LimitsDoc, r *rule) {
	if d.MaxAmount != "" {
		if len(r.assets) != 1 {
			c.errf(at(path, "max_amount"), "max_amount needs the rule to name exactly one asset (its unit)")
		}
		for a := range r.assets {
			r.maxAsset = a
		}
		if _, err := checkAmount(d.MaxAmount); err != nil {
			c.errf(at(path, "max_amount"), "%q is not a decimal amount", clipText(d.MaxAmount))
		}
		r.maxAmountText = d.MaxAmount
	}
	if d.MaxUSD != "" {
		v, err := ParseUSD(d.MaxUSD)
		if err != nil {
			c.errf(at(path, "max_usd"), "%v", err)
		}
		r.maxUSD, r.maxUSDText = v, FormatUSD(v)
	}
	if d.MaxHoldingsPct != "" {
		r.maxHoldingsPct = c.percent(at(path, "max_holdings_pct"), d.MaxHoldingsPct, "")
	}
	for i, wd := range d.Windows {
		wp := at(path, "windows", i)
		w := window{maxUSD: -1, maxCount: wd.MaxCount}
		before := len(c.problems)
		w.period = c.duration(at(wp, "period"), wd.Period, 0)
		if len(c.problems) == before && (w.period <= 0 || w.period > 366*24*time.Hour) {
			c.errf(at(wp, "period"), "a window's period must be between 1s and 366d")
		}
		switch wd.Per {
		case "agent":
			w.per = PerAgent
		case "recipient":
			w.per = PerRecipient
		case "org":
			w.per = PerOrg
		default:
			c.errf(at(wp, "per"), "per %q: want agent, recipient or org", clipText(wd.Per))
		}
		set := 0
		if wd.MaxAmount != "" {
			set++
			if wd.Asset == "" {
				c.errf(at(wp, "asset"), "max_amount needs the asset it counts")
			}
			if _, err := checkAmount(wd.MaxAmount); err != nil {
				c.errf(at(wp, "max_amount"), "%q is not a decimal amount", clipText(wd.MaxAmount))
			}
			w.asset, w.maxAmount = wd.Asset, wd.MaxAmount
		} else if wd.Asset != "" {
			c.errf(at(wp, "asset"), "asset goes with max_amount")
		}
		if wd.MaxUSD != "" {
			set++
			v, err := ParseUSD(wd.MaxUSD)
			if err != nil {
				c.errf(at(wp, "max_usd"), "%v", err)
			}
			w.maxUSD, w.maxUSDText = v, FormatUSD(v)
		}
		if wd.MaxCount != 0 {
			set++
			if wd.MaxCount < 0 {
				c.errf(at(wp, "max_count"), "max_count must be positive")
			}
		}
		if set != 1 {
			c.errf(wp, "a window limits exactly one of max_amount, max_usd, max_count")
		}
		w.name = fmtPeriod(w.period) + " per " + w.per.String()
		r.windows = append(r.windows, w)
	}
	if d.MaxAmount == "" && d.MaxUSD == "" && d.MaxHoldingsPct == "" && len(d.Windows) == 0 {
		c.errf(path, "limits is empty")
	}
}

// checkAmount validates the form of a display-unit amount; its decimals are
// checked against the asset's at evaluation (a limit finer than the asset
// can express denies).
func checkAmount(s string) (*big.Int, error) {
	_, frac, _ := strings.Cut(s, ".")
	return daoguard.ParseAmount(s, min(len(frac), daoguard.MaxDecimals))
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Horizon is how far back evaluation looks: the longest rolling window.
func (p *Policy) Horizon() time.Duration { return p.maxPeriod }

// NewLedger returns an empty ledger whose look-alike check uses this
// policy's digits.
func (p *Policy) NewLedger() *Ledger { return NewLedgerOf(p.lookLead, p.lookTrail, p.Kinds()) }

// Kinds returns the totals this policy's windows and ceilings read, in
// a fixed order. Computed once; callers must not modify it.
func (p *Policy) Kinds() []Kind {
	p.kindsOnce.Do(func() { p.kinds = p.readKinds() })
	return p.kinds
}

func (p *Policy) readKinds() []Kind {
	seen := map[Kind]bool{}
	var out []Kind
	add := func(w window) {
		k := Kind{Per: w.per}
		if w.maxAmount != "" {
			k.Asset = w.asset
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, r := range p.rules {
		for _, w := range r.windows {
			add(w)
		}
	}
	for _, c := range p.ceilings {
		for _, w := range c.windows {
			add(w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return kindLess(out[i], out[j]) })
	return out
}

// LookAlikeDigits returns how many leading and trailing hex digits make
// two addresses look alike under this policy.
func (p *Policy) LookAlikeDigits() (lead, trail int) { return p.lookLead, p.lookTrail }
