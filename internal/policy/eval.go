package policy

import (
	"encoding/hex"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/daoguard/daoguard"
)

// Input is everything one evaluation sees. Evaluation does no I/O: the
// caller gathers the snapshot (history, prices, holdings) first.
type Input struct {
	Now       time.Time
	Principal *daoguard.Principal
	Action    *daoguard.Decoded // a call whose effect differs from Action.Stated is a units mismatch
	Catalog   *Catalog
	Prices    map[string]*Quotes  // by asset symbol
	Holdings  map[string]*big.Int // the account's balances by asset symbol, base units
	// Reserved is what the account's open actions (and those settled after
	// Holdings was read) hold, by symbol: every check sees Holdings minus
	// Reserved, so that actions judged one after another on one snapshot
	// can never together move more than the account holds.
	Reserved map[string]*big.Int
	History  History // nil: no history (every window empty)
	// Trusted are prices (1e18 fixed point, by symbol) that an earlier
	// decision already validated: a replay passes what the original
	// decision used, so that it judges the same world. They take the place
	// of Prices for their symbols; the governance token is still never
	// priced.
	Trusted map[string]*big.Int
	// Contracts decodes calls (nil: the standard interfaces only). An
	// autonomous rule that names no function lets a call run on its own
	// only if its calldata decodes exactly.
	Contracts *Registry
	// Owners are the organisation's other accounts whose tokens the action
	// moves (transferFrom under an allowance they granted the acting
	// account), by lower-case address (see Holders). Such a transfer is
	// judged as that account's: under the rules for it, against what it
	// holds less what its open actions reserve. A holder that is not here
	// is not the organisation's: agents are refused.
	Owners map[string]*Owner
}

// Owner is another account of the organisation whose tokens an action
// moves, with what it holds (nil: unknown) and what its open actions
// reserve.
type Owner struct {
	Name string
	// Safe: the account is a Safe, whose own transactions run only with
	// its owners' signatures. A pull from it never runs without approval.
	Safe     bool
	Holdings map[string]*big.Int
	Reserved map[string]*big.Int
}

// Result is an evaluation's outcome: the decision and the flows, valued,
// that the caller records in the history if the action goes ahead.
type Result struct {
	Tier     Tier
	Decision daoguard.Decision
	Flows    []Flow
	Prices   map[string]*big.Int // the trusted prices used, by symbol (1e18 fixed point)
	// NearLimit: the action held a per-action limit (amount or USD) with
	// less than 10% to spare, or took a rolling USD window from under 90%
	// of its limit to 90% or more; the anomaly breaker counts clusters of
	// such attempts.
	NearLimit bool
}

// Reason codes policy adds to decisions. Stable; documented in
// docs/ERRORS.md.
const (
	ReasonRuleMatched          = "RULE_MATCHED"       // a rule applied; its figures are in the detail
	ReasonNoMatchingRule       = "NO_MATCHING_RULE"   // no rule covers (part of) the action: deny by default
	ReasonEvaluationError      = "EVALUATION_ERROR"   // evaluation failed: deny (fail closed)
	ReasonMalformedCalldata    = "MALFORMED_CALLDATA" // calldata a recognised selector cannot decode
	ReasonDelegatecall         = "DELEGATECALL_NOT_ALLOWED"
	ReasonSafeSelfCall         = "SAFE_SELF_CALL"         // a call to the Safe itself (owners, threshold, modules, guard, fallback handler)
	ReasonUnlimitedApproval    = "UNLIMITED_APPROVAL"     // approve/increaseAllowance of (nearly) 2^256
	ReasonApprovalAboveCap     = "APPROVAL_ABOVE_CAP"     // approve/increaseAllowance above the asset's cap
	ReasonApprovalForAll       = "APPROVAL_FOR_ALL"       // setApprovalForAll(operator, true)
	ReasonPermit               = "PERMIT_SIGNATURE"       // a permit-style signature is submitted
	ReasonUnknownTokenFunction = "UNKNOWN_TOKEN_FUNCTION" // a function policy does not recognise, on a token the treasury holds
	ReasonTransferFromOther    = "TRANSFER_FROM_OTHER"    // transferFrom moves tokens an address outside the organisation holds, under an allowance it granted
	ReasonSafePull             = "SAFE_PULL"              // transferFrom pulls a Safe's tokens: approval, as the Safe's own transaction would need its owners
	ReasonPaysOther            = "PAYS_OTHER"             // a call pays a receiver, or spends an owner's funds, other than the account: value policy cannot attribute
	ReasonProtected            = "PROTECTED_ACTION"       // a human may do it, through the council and its timelock
	ReasonLookAlike            = "LOOKALIKE_ADDRESS"      // the address imitates a known one
	ReasonUnitsMismatch        = "UNITS_MISMATCH"         // the effect differs from what the intent states, or moves too much of the holdings
	ReasonHoldingsUnavailable  = "HOLDINGS_UNAVAILABLE"   // the units check could not see the account's holdings
	ReasonInsufficientHoldings = "INSUFFICIENT_HOLDINGS"  // more than the account holds once open actions' reservations are taken out
	ReasonPrice                = "PRICE"                  // the price used and its sources
	ReasonPriceUnavailable     = "PRICE_UNAVAILABLE"      // no trusted price: USD rules fail closed to approval
	ReasonGovernanceToken      = "GOVERNANCE_TOKEN_UNPRICED"
	ReasonPerTxAmountExceeded  = "PER_TX_AMOUNT_EXCEEDED"
	ReasonPerTxUSDExceeded     = "PER_TX_USD_EXCEEDED"
	ReasonHoldingsPctExceeded  = "HOLDINGS_PCT_EXCEEDED"
	ReasonWindowAmountExceeded = "WINDOW_AMOUNT_EXCEEDED"
	ReasonWindowUSDExceeded    = "WINDOW_USD_EXCEEDED"
	ReasonWindowCountExceeded  = "WINDOW_COUNT_EXCEEDED"
	ReasonDenyRule             = "DENIED_BY_RULE" // a rule whose tier is deny matched
	// Simulation (eth_call before deciding).
	ReasonSimulationReverted    = "SIMULATION_REVERTED"    // the action reverts when simulated: deny
	ReasonSimulationUnavailable = "SIMULATION_UNAVAILABLE" // it could not be simulated: approval
	ReasonSimulatedOutflow      = "SIMULATED_OUTFLOW"      // it moves more than its calldata says: the difference counts
	ReasonOpaqueCalldata        = "OPAQUE_CALLDATA"        // calldata no known ABI decodes, under a rule that names no function: never autonomous
)

// unlimitedThreshold: an allowance at or above 2^255 is "unlimited" in
// every wallet's eyes (the usual value is 2^256-1).
var unlimitedThreshold = new(big.Int).Lsh(big.NewInt(1), 255)

type evaluation struct {
	p       *Policy
	in      *Input
	its     []item
	agent   bool
	acting  string // the account's address, lower case
	reasons []daoguard.Reason
	prices  []symPrice
	fig     []byte // scratch for a rule's figures

	// Room for the usual decision, so that building it does not grow
	// slices: a decision is made for every submission.
	reasonsBuf [6]daoguard.Reason
	pricesBuf  [2]symPrice
	figBuf     [256]byte

	tier     Tier
	approval approval

	// avail is Holdings minus Reserved, by symbol (nil: holdings unknown);
	// ownAvail the same for each of Owners.
	avail     map[string]*big.Int
	ownAvail  map[string]map[string]*big.Int
	flows     []Flow
	usdTotal  int64
	usdKnown  bool
	nearLimit bool
}

// Evaluate judges one action. It never panics and never errs: a failure
// anywhere is a deny with EVALUATION_ERROR.
func (p *Policy) Evaluate(in *Input) (res Result) {
	e := &evaluation{p: p, in: in}
	e.reasons, e.prices, e.fig = e.reasonsBuf[:0], e.pricesBuf[:0], e.figBuf[:0]
	defer func() {
		if r := recover(); r != nil {
			res = e.deny(ReasonEvaluationError, "", fmt.Sprintf("evaluation failed: %v; denied (fail closed)", r))
		}
	}()
	if in.Principal == nil || in.Action == nil || in.Catalog == nil {
		return e.deny(ReasonEvaluationError, "", "incomplete evaluation input; denied (fail closed)")
	}
	e.agent = in.Principal.Kind != daoguard.PrincipalHuman
	e.acting = strings.ToLower(in.Action.From)
	e.avail = available(in.Holdings, in.Reserved)
	for addr, o := range in.Owners {
		if e.ownAvail == nil {
			e.ownAvail = make(map[string]map[string]*big.Int, len(in.Owners))
		}
		e.ownAvail[addr] = available(o.Holdings, o.Reserved)
	}
	its, err := items(in.Action, in.Catalog)
	if err != nil {
		return e.deny(ReasonMalformedCalldata, "", err.Error())
	}
	e.its = its
	e.flows = flows(its, in.Catalog)
	e.simulated()
	its = e.its
	e.value()
	for i := range its {
		e.protect(&its[i])
		e.hygiene(&its[i])
	}
	e.units()
	for i := range its {
		if err := e.judge(&its[i]); err != nil {
			return e.deny(ReasonEvaluationError, "", err.Error()+"; denied (fail closed)")
		}
	}
	e.ceilings()
	return e.result()
}

func (e *evaluation) deny(code, rule, detail string) Result {
	e.tier = TierDeny
	e.reason(code, rule, detail, "")
	return e.result()
}

func (e *evaluation) reason(code, rule, detail, pass string) {
	for _, r := range e.reasons { // a handful: a scan beats a map
		if r.Code == code && r.Rule == rule && r.Detail == detail {
			return
		}
	}
	e.reasons = append(e.reasons, daoguard.Reason{Code: code, Rule: rule, Detail: detail, WouldPass: pass})
}

// raise makes the outcome at least tier t with approval a. Order does not
// matter: the tier only grows, approvals and timelock only grow.
func (e *evaluation) raise(t Tier, a approval) {
	if t == TierVote {
		a = e.p.council
	}
	if t > e.tier {
		e.tier = t
	}
	if t == TierApproval || t == TierVote {
		cur := e.approval
		switch {
		case cur.approvals == 0:
			cur = a
		case cur.role != a.role:
			// Two groups must approve, and a decision names one: the
			// council (the strictest group) decides, with at least as
			// many approvals as either asked for.
			c := e.p.council
			cur.role, cur.group, cur.approvals = c.role, c.group, max(cur.approvals, a.approvals, c.approvals)
			cur.timelock = max(cur.timelock, c.timelock)
		default:
			cur.approvals = max(cur.approvals, a.approvals)
		}
		cur.timelock = max(cur.timelock, a.timelock)
		e.approval = cur
	}
}

func (e *evaluation) result() Result {
	d := daoguard.Decision{Tier: e.tier.String(), Reasons: e.reasons, PolicyVersion: e.p.Version}
	switch e.tier {
	case TierAutonomous:
		d.Verdict = daoguard.VerdictAllow
	case TierApproval, TierVote:
		if e.tier == TierVote && e.approval.role != e.p.council.role {
			// The vote tier is the council's: no other group decides it.
			c := e.p.council
			e.approval.role, e.approval.group = c.role, c.group
			e.approval.approvals = max(e.approval.approvals, c.approvals)
			e.approval.timelock = max(e.approval.timelock, c.timelock)
		}
		d.Verdict = daoguard.VerdictNeedsApproval
		d.RequiredApprovals, d.ApproverRole, d.Timelock = e.approval.approvals, e.approval.role, e.approval.timelock
	default:
		d.Verdict, d.Tier = daoguard.VerdictDeny, TierDeny.String()
		e.tier = TierDeny
	}
	if d.Reasons == nil {
		d.Reasons = []daoguard.Reason{}
	}
	var prices map[string]*big.Int
	for _, sp := range e.prices {
		if sp.p.Value != nil {
			if prices == nil {
				prices = make(map[string]*big.Int, len(e.prices))
			}
			prices[sp.sym] = sp.p.Value
		}
	}
	return Result{Tier: e.tier, Decision: d, Flows: e.recorded(), Prices: prices, NearLimit: e.nearLimit}
}

// recorded returns the flows to record for the action: its own, and a
// zero flow to each counterparty that has none (a call, an approval), so
// that per-recipient counts see every action, not only those moving funds.
func (e *evaluation) recorded() []Flow {
	fs := e.flows
	for i := range e.its {
		to := e.its[i].Counterparty
		if to == "" || slices.ContainsFunc(fs, func(f Flow) bool { return f.To == to }) {
			continue
		}
		if len(fs) == len(e.flows) {
			fs = slices.Clip(fs) // never append into e.flows' array
		}
		fs = append(fs, Flow{Amount: new(big.Int), To: to})
	}
	return fs
}

// price returns the trusted price of an asset, aggregating once per
// evaluation.
func (e *evaluation) price(sym string) *evalPrice {
	for _, sp := range e.prices {
		if sp.sym == sym {
			return sp.p
		}
	}
	q, now := e.in.Prices[sym], e.in.Now
	var p *evalPrice
	switch {
	case sym == e.p.govToken && sym != "":
		// The DAO's own token is the easiest to pump: whoever moves its
		// spot price would move every limit measured with it.
		p = &evalPrice{Price: Price{Problem: "the DAO's governance token is never valued for limits"}}
	case e.in.Trusted[sym] != nil:
		v := e.in.Trusted[sym]
		p = &evalPrice{Price: Price{Value: v, Used: []string{"recorded"}}, text: sym + " " + FormatPrice(v) + " USD (as recorded by the original decision)"}
	case q != nil:
		if m := q.memo.Load(); m != nil && m.policy == e.p && m.sym == sym && !now.Before(m.from) && now.Before(m.until) {
			p = m.price
		}
	}
	if p == nil {
		p = &evalPrice{Price: Aggregate(q.Readings(), now, e.p.prices)}
		if p.Value != nil {
			p.text = sym + " " + FormatPrice(p.Value) + " USD (median of " + strings.Join(p.Used, ", ") + rejectedText(&p.Price) + ")"
		}
		if q != nil { // shared from now on: never modified again
			q.memo.Store(&quoteMemo{policy: e.p, sym: sym, from: now, until: q.validUntil(now, e.p.prices), price: p})
		}
	}
	e.prices = append(e.prices, symPrice{sym, p})
	return p
}

type symPrice struct {
	sym string
	p   *evalPrice
}

// evalPrice is a price and its explanation, built once per evaluation.
type evalPrice struct {
	Price
	text string
}

// value prices every flow and sums the action's USD value.
func (e *evaluation) value() {
	e.usdKnown = true
	for i := range e.flows {
		f := &e.flows[i]
		if f.Amount.Sign() == 0 {
			f.USD = 0 // nothing moves: worth nothing, whatever the price
			continue
		}
		a, ok := e.in.Catalog.Asset(f.Asset)
		if f.Asset == "" || !ok {
			e.usdKnown = false
			e.reason(ReasonPriceUnavailable, "", fmt.Sprintf("token %s is not in the catalogue: no price", f.Token), "")
			continue
		}
		p := e.price(f.Asset)
		if p.Value == nil {
			e.usdKnown = false
			code := ReasonPriceUnavailable
			if f.Asset == e.p.govToken {
				code = ReasonGovernanceToken
			}
			e.reason(code, "", fmt.Sprintf("%s: %s%s", f.Asset, p.Problem, rejectedText(&p.Price)), "")
			continue
		}
		f.USD = usdValue(f.Amount, a.Decimals, p.Value)
		e.usdTotal = addUSD(e.usdTotal, f.USD)
		e.reason(ReasonPrice, "", p.text, "")
	}
}

func rejectedText(p *Price) string {
	if len(p.Rejected) == 0 {
		return ""
	}
	return "; rejected: " + strings.Join(p.Rejected, "; ")
}

// simulated applies what the simulation saw. A revert denies: it would
// fail on chain, and a failure is no one's intent. An outflow beyond what
// the calldata says (a contract that pulls more, a fee, a hook) is added as
// a flow to the call's target, so that limits and windows count what really
// leaves. An approval is judged on the allowance that results: after
// increaseAllowance that is the old allowance plus the increase.
func (e *evaluation) simulated() {
	s := e.in.Action.Simulation
	if s == nil {
		return // no chain configured: judged on the calldata alone
	}
	if s.Error != "" {
		t := TierApproval
		if !e.agent {
			t = TierVote
		}
		e.raise(t, e.p.council)
		e.reason(ReasonSimulationUnavailable, "", "the action could not be simulated ("+s.Error+"): its effect is unknown", "")
		return
	}
	if !s.Success {
		e.raise(TierDeny, approval{})
		e.reason(ReasonSimulationReverted, "", fmt.Sprintf("simulated at block %d, the action reverts: %s", s.Block, s.Revert), "")
		return
	}
	for _, c := range s.Changes {
		out := c.Spent()
		if out.Sign() == 0 {
			continue
		}
		// Changes are the acting account's: what the action says it moves
		// of another holder's tokens, or as an allowance, must not hide
		// an outflow of its own.
		if said := e.movedNow("", c.Asset); out.Cmp(said) > 0 {
			extra := out.Sub(out, said)
			to := strings.ToLower(e.in.Action.To)
			e.flows = append(e.flows, Flow{Asset: c.Asset, Token: c.Token, Amount: extra, To: to, USD: -1})
			a, _ := e.in.Catalog.Asset(c.Asset)
			dec := 0
			if a != nil {
				dec = a.Decimals
			}
			// Judged as a transfer of its own to the target: a rule must
			// allow sending that asset there, whatever the call claims to be.
			e.its = append(e.its, item{Type: ItemTransfer, Target: to, Counterparty: to, Operation: daoguard.OpCall,
				Value: new(big.Int), Asset: c.Asset, Token: c.Token, Amount: extra, Decimals: dec})
			e.reason(ReasonSimulatedOutflow, "", fmt.Sprintf("simulated at block %d, %s %s more leaves the account than the calldata says; it counts as sent to %s", s.Block, daoguard.FormatAmount(extra, dec), c.Asset, e.in.Action.To), "")
		}
	}
	for i := range e.its {
		it := &e.its[i]
		if it.Type != ItemApproval || it.ApprovalAll || it.Amount == nil {
			continue
		}
		for _, al := range s.Allowances {
			if al.Token == it.Token && al.Spender == it.Counterparty && al.Amount.Int().Cmp(it.Amount) > 0 {
				it.Amount, it.Resulting = new(big.Int).Set(al.Amount.Int()), true
				// The exposure is the live allowance the chain would hold.
				for j := range e.flows {
					if f := &e.flows[j]; f.Allowance && f.Token == it.Token && f.To == it.Counterparty && it.Amount.Cmp(unlimitedThreshold) < 0 {
						f.Amount = it.Amount
					}
				}
			}
		}
	}
}

// protect applies the protections no policy can switch off. For an agent
// they deny; a human may go ahead only through the council tier, with its
// timelock.
func (e *evaluation) protect(it *item) {
	hit := func(code, detail string) {
		if e.agent {
			e.raise(TierDeny, approval{})
			e.reason(code, "", detail, "agents can never do this; a human may submit it for the council")
			return
		}
		e.raise(TierVote, approval{})
		e.reason(code, "", detail, "")
		e.reason(ReasonProtected, "", fmt.Sprintf("council approval (%d of %s) and a %s timelock", e.p.council.approvals, e.p.council.group, e.p.council.timelock), "")
	}
	switch {
	case it.Operation == daoguard.OpDelegateCall && e.in.Action.AccountKind != daoguard.AccountSafe:
		e.raise(TierDeny, approval{})
		e.reason(ReasonDelegatecall, "", "only a Safe can delegatecall; a wallet account cannot", "")
	case it.Operation == daoguard.OpDelegateCall && !e.p.dcAllow[it.Target]:
		hit(ReasonDelegatecall, fmt.Sprintf("delegatecall to %s, which is not on the delegatecall allowlist: it would run foreign code with the Safe's storage and funds", it.Target))
	}
	if it.UnknownTokenFn {
		hit(ReasonUnknownTokenFunction, fmt.Sprintf("function %x of token %s is not one policy can judge: it may move or delegate the token unseen", it.Data[:4], e.assetName(it)))
	}
	if it.SelfCall && e.in.Action.AccountKind == daoguard.AccountSafe {
		hit(ReasonSafeSelfCall, "a call to the Safe itself changes its owners, threshold, modules, guard or fallback handler")
	}
	if it.Type == ItemApproval {
		switch {
		case it.ApprovalAll:
			hit(ReasonApprovalForAll, fmt.Sprintf("setApprovalForAll gives %s every token of the collection", it.Counterparty))
		case it.Amount == nil:
		case it.Amount.Cmp(unlimitedThreshold) >= 0:
			hit(ReasonUnlimitedApproval, fmt.Sprintf("an unlimited %sallowance of %s for %s", resulting(it), e.assetName(it), it.Counterparty))
		default:
			if capv, ok := e.approvalCap(it); !ok || it.Amount.Cmp(capv) > 0 {
				capText := "0 (no cap configured)"
				if ok {
					capText = daoguard.FormatAmount(capv, it.Decimals)
				}
				hit(ReasonApprovalAboveCap, fmt.Sprintf("a %sallowance of %s %s for %s is above the cap %s", resulting(it), daoguard.FormatAmount(it.Amount, it.Decimals), e.assetName(it), it.Counterparty, capText))
			}
		}
	}
	if o := e.in.Owners[it.From]; it.From != "" && o != nil && o.Safe {
		// Moving a Safe's funds takes its owners' signatures; a pull under
		// its allowance is sent from this account with daoguard's key alone,
		// so a rule for the Safe that is autonomous (harmless while the
		// owners must still sign) must not make the pull autonomous.
		a := e.p.council
		a.timelock = 0 // the rules for the Safe say how long, as for its own transfers
		e.raise(TierApproval, a)
		e.reason(ReasonSafePull, "", fmt.Sprintf("transferFrom moves %s %s of the Safe %s under its allowance, without its owners' signatures", daoguard.FormatAmount(it.Amount, it.Decimals), e.assetName(it), o.Name),
			"the council approves, as the Safe's owners would sign its own transfer")
	}
	if it.From != "" && e.in.Owners[it.From] == nil {
		// The tokens are held by an address that is not the
		// organisation's: no rules, holdings or reservations of daoguard's
		// describe it. (Another account of the organisation is judged as
		// that account's own transfer: see account and units.)
		hit(ReasonTransferFromOther, fmt.Sprintf("transferFrom moves %s %s held by %s, which is not an account of the organisation, under an allowance it granted", daoguard.FormatAmount(it.Amount, it.Decimals), e.assetName(it), it.From))
	}
	if it.Permit != "" {
		hit(ReasonPermit, "a permit signature ("+it.Permit+") lets its holder move the account's tokens without a transaction from it")
	}
}

// resulting qualifies an allowance the simulation saw, not the argument.
func resulting(it *item) string {
	if it.Resulting {
		return "resulting "
	}
	return ""
}

func (e *evaluation) assetName(it *item) string {
	if it.Asset != "" {
		return it.Asset
	}
	return "token " + it.Token
}

// approvalCap returns the cap for an approval of a known asset. A zero
// allowance (a revocation) is always within the cap.
func (e *evaluation) approvalCap(it *item) (*big.Int, bool) {
	if it.Amount.Sign() == 0 {
		return it.Amount, true
	}
	text, ok := e.p.approvalCapText[it.Asset]
	if !ok || it.Asset == "" {
		return nil, false
	}
	return e.in.Catalog.amount(text, it.Asset, it.Decimals)
}

// hygiene denies counterparties and targets that look like a known address
// without being it: address poisoning.
func (e *evaluation) hygiene(it *item) {
	for _, a := range [...]string{it.Counterparty, it.Target} {
		if a == "" || e.known(a) {
			continue
		}
		imitated := e.p.lookAlike.Imitated(a)
		if imitated == "" && e.in.History != nil {
			imitated = e.in.History.Imitated(a)
		}
		if imitated != "" {
			e.raise(TierDeny, approval{})
			e.reason(ReasonLookAlike, "", fmt.Sprintf("%s looks like %s (same first %d and last %d hex digits) but is not it", a, imitated, e.p.lookLead, e.p.lookTrail),
				fmt.Sprintf("if you meant %s, use exactly that address", imitated))
		}
	}
}

// known: listed in the policy or seen as a counterparty before.
func (e *evaluation) known(a string) bool {
	return e.p.listAddrs[a] || e.in.History != nil && e.in.History.Known(a) || a == e.in.Action.From
}

// units catches an effect that is not what the intent says, and (for
// agents) an action moving an implausible share of the account's holdings:
// the signature of a decimals or units mistake.
func (e *evaluation) units() {
	if s := e.in.Action.Stated; s != nil {
		stated := s.Amount.Int()
		moved := new(big.Int)
		for _, f := range e.flows {
			if f.Asset != s.Asset {
				e.raise(TierDeny, approval{})
				e.reason(ReasonUnitsMismatch, "", fmt.Sprintf("the intent states %s but the transaction also moves %s", s.Asset, nameOr(f.Asset, f.Token)), "")
				continue
			}
			moved.Add(moved, f.Amount)
		}
		// |moved - stated| > dev·stated ⇔ mismatch.
		d := new(big.Int).Sub(moved, stated)
		d.Abs(d)
		lhs := new(big.Int).Mul(d, e.p.statedDev.Denom())
		rhs := new(big.Int).Mul(stated, e.p.statedDev.Num())
		if lhs.Cmp(rhs) > 0 {
			a, _ := e.in.Catalog.Asset(s.Asset)
			dec := 0
			if a != nil {
				dec = a.Decimals
			}
			e.raise(TierDeny, approval{})
			e.reason(ReasonUnitsMismatch, "", fmt.Sprintf("the intent states %s %s but the transaction moves %s %s", daoguard.FormatAmount(stated, dec), s.Asset, daoguard.FormatAmount(moved, dec), s.Asset),
				"state the amount the calldata moves, in the asset's display units")
		}
	}
	for i, f := range e.flows {
		if f.Asset == "" && !f.Allowance && e.agent && f.Amount.Sign() > 0 {
			// No holdings, no reservation, no bound for an asset the
			// catalogue does not know: never on an agent's own.
			e.raise(TierApproval, e.p.council)
			e.reason(ReasonHoldingsUnavailable, "", fmt.Sprintf("%s is not in the catalogue: what the account holds of it, and what open actions reserve, are unknown", nameOr(f.Asset, f.Token)), "add the asset to the catalogue (daoguard assets)")
			continue
		}
		if f.Asset == "" || f.Allowance || slices.ContainsFunc(e.flows[:i], func(g Flow) bool { return g.Asset == f.Asset && g.From == f.From && !g.Allowance }) {
			continue // each holder's asset once, in the order it first appears; allowances move nothing now
		}
		sym := f.Asset
		moved := f.Amount
		if len(e.flows) > 1 {
			moved = e.movedNow(f.From, sym)
		}
		avail, holdings, reserved, whose := e.avail, e.in.Holdings, e.in.Reserved, "the account"
		if f.From != "" { // another account's tokens, under its allowance
			o := e.in.Owners[f.From]
			if o == nil {
				continue // not the organisation's: refused in protect
			}
			avail, holdings, reserved, whose = e.ownAvail[f.From], o.Holdings, o.Reserved, "account "+o.Name
		}
		h, ok := avail[sym]
		if !ok || h == nil {
			// The share cannot be checked: approval for an agent, the
			// council for a human (who would need it above the share).
			t := TierApproval
			if !e.agent {
				t = TierVote
			}
			e.raise(t, e.p.council)
			e.reason(ReasonHoldingsUnavailable, "", fmt.Sprintf("the %s holdings of %s are unknown: the share this action moves cannot be checked", sym, whose), "")
			continue
		}
		a, _ := e.in.Catalog.Asset(sym)
		if moved.Cmp(h) > 0 {
			// Never more than the account holds once every open action's
			// reservation is taken out: N actions judged on one snapshot,
			// concurrently or in a burst, cannot together overdraw it.
			detail := fmt.Sprintf("moves %s %s; %s holds %s %s", daoguard.FormatAmount(moved, a.Decimals), sym, whose, daoguard.FormatAmount(holdings[sym], a.Decimals), sym)
			if r := reserved[sym]; r != nil && r.Sign() > 0 {
				detail += fmt.Sprintf(", of which %s are reserved by open actions", daoguard.FormatAmount(r, a.Decimals))
			}
			// An agent is refused; a human's action goes to the council (an
			// agent's pending requests must not freeze the humans: they may
			// reject those, or fund the account, before this one runs).
			if e.agent {
				e.raise(TierDeny, approval{})
			} else {
				e.raise(TierVote, approval{})
			}
			e.reason(ReasonInsufficientHoldings, "", detail+fmt.Sprintf(" (%s available)", daoguard.FormatAmount(h, a.Decimals)),
				"wait until open actions execute or end, or fund the account")
			continue
		}
		// moved > share·holdings
		lhs := new(big.Int).Mul(moved, e.p.unitsMaxShare.Denom())
		rhs := new(big.Int).Mul(h, e.p.unitsMaxShare.Num())
		if lhs.Cmp(rhs) > 0 {
			pct := new(big.Rat).Mul(e.p.unitsMaxShare, big.NewRat(100, 1)).FloatString(1)
			detail := fmt.Sprintf("moves %s %s, more than %s%% of the %s %s of %s", daoguard.FormatAmount(moved, a.Decimals), sym, pct, daoguard.FormatAmount(h, a.Decimals), sym, whose)
			hint := "check the amount's units: amounts are in display units (1.5 USDC, not 1500000)"
			if r := reserved[sym]; r != nil && r.Sign() > 0 {
				// The share is of what open actions leave: many payments in
				// flight at once shrink it.
				detail += fmt.Sprintf(" not reserved by open actions (%s reserved)", daoguard.FormatAmount(r, a.Decimals))
				hint += "; or wait until open actions execute or end"
			}
			if e.agent {
				e.raise(TierDeny, approval{})
				e.reason(ReasonUnitsMismatch, "", detail+": a units or decimals mistake?", hint)
			} else {
				e.raise(TierVote, approval{})
				e.reason(ReasonUnitsMismatch, "", detail, "")
			}
		}
	}
}

func nameOr(sym, token string) string {
	if sym != "" {
		return sym
	}
	return "token " + token
}

// judge applies every rule that may apply to one item: those naming the
// principal, one of its roles, its kind, or anyone. An item no rule covers
// is denied.
func (e *evaluation) judge(it *item) error {
	pr := e.in.Principal
	matched := false
	try := func(r *rule) error {
		ok, err := e.matches(r, it)
		if err != nil || !ok {
			return err
		}
		matched = true
		e.apply(r, it)
		return nil
	}
	for _, r := range e.p.byPrincipal[pr.ID] {
		if err := try(r); err != nil {
			return err
		}
	}
	for i, role := range pr.Roles {
		for _, r := range e.p.byRole[role] {
			// A rule listing several of the principal's roles is in
			// several buckets: it counts once, from the first.
			if firstHeld(r.roles, pr.Roles[:i]) {
				continue
			}
			if err := try(r); err != nil {
				return err
			}
		}
	}
	for _, b := range [2]*bucket{&e.p.byKind[0], &e.p.byKind[int(pr.Kind)&3]} {
		for _, r := range b.byRecipient[it.Counterparty] {
			if err := try(r); err != nil {
				return err
			}
		}
		for _, r := range b.rest {
			if err := try(r); err != nil {
				return err
			}
		}
	}
	if !matched {
		e.raise(TierDeny, approval{})
		e.reason(ReasonNoMatchingRule, "", fmt.Sprintf("no rule covers this %s to %s", it.Type, it.Counterparty), "no rule allows this; a steward can add one")
	}
	e.payout(it)
	return nil
}

// payee reads, once per item and only when a rule needs it, whom a call
// names as paid (or whose funds it spends) other than the account.
func (e *evaluation) payee(it *item) string {
	if !it.payeeRead && it.Type == ItemCall {
		it.payeeRead = true
		it.PayeeArg, it.Payee, _ = e.in.Contracts.payee(it.Target, it.Data, e.acting, 0)
	}
	return it.Payee
}

// payout: a call that pays someone other than the account (or spends
// another owner's funds) moves value its calldata does not show. A rule
// that names no function cannot let it run on its own; only a matching
// rule that names the function — whose params can pin the payee — can.
// Agents are denied; a human's goes to the council.
func (e *evaluation) payout(it *item) {
	if it.payoutRule == "" || it.payoutNamed {
		return
	}
	detail := fmt.Sprintf("the call to %s names %s as its %s: it pays someone other than the account, or spends funds the account does not hold, by an amount policy cannot value", it.Target, it.Payee, it.PayeeArg)
	if !e.agent {
		e.raise(TierVote, approval{})
		e.reason(ReasonPaysOther, it.payoutRule, detail, "")
		return
	}
	e.raise(TierDeny, approval{})
	e.reason(ReasonPaysOther, it.payoutRule, detail, "a rule naming the function, with params pinning its "+it.PayeeArg+", can let it run")
}

// firstHeld reports whether any of the rule's roles is among earlier.
func firstHeld(ruleRoles, earlier []string) bool {
	for _, r := range ruleRoles {
		for _, h := range earlier {
			if r == h {
				return true
			}
		}
	}
	return false
}

func (e *evaluation) matches(r *rule, it *item) (bool, error) {
	in := e.in
	pr := in.Principal
	if r.principals != nil && !r.principals[pr.ID] {
		return false, nil
	}
	if len(r.roles) > 0 && !hasAny(pr.Roles, r.roles) {
		return false, nil
	}
	if r.kinds != 0 && r.kinds&(1<<(uint(pr.Kind)-1)) == 0 {
		return false, nil
	}
	if r.accounts != nil && !r.accounts[e.account(it)] {
		return false, nil
	}
	if r.types != 0 && r.types&it.Type == 0 {
		return false, nil
	}
	if r.assets != nil && !r.assets[it.Asset] {
		return false, nil
	}
	if r.recipients != nil && !r.recipients.match(it.Counterparty) {
		return false, nil
	}
	if r.targets != nil && !r.targets.match(it.Target) {
		return false, nil
	}
	if r.newRecipient != nil && *r.newRecipient == e.known(it.Counterparty) {
		return false, nil
	}
	if r.operation != 0 && r.operation != it.Operation {
		return false, nil
	}
	if r.value != nil && !r.value.match(it.Value) {
		return false, nil
	}
	if r.hasFunction {
		sel, ok := it.selector()
		if !ok || sel != r.selector || !matchParams(r, it.Data) {
			return false, nil
		}
	}
	if r.time != nil && !r.time.contains(in.Now) {
		return false, nil
	}
	if r.cel != nil {
		return r.cel.eval(e.celFacts(it))
	}
	return true, nil
}

// account names the account whose funds the item moves: the
// organisation's account whose tokens a transferFrom pulls, or else the
// acting one (an outside holder's tokens are refused to agents in
// protect, and go to the council for humans, on top of the acting
// account's rules).
func (e *evaluation) account(it *item) string {
	if o := e.in.Owners[it.From]; it.From != "" && o != nil {
		return o.Name
	}
	return e.in.Action.Account
}

func hasAny(have, want []string) bool {
	for _, w := range want {
		for _, h := range have {
			if h == w {
				return true
			}
		}
	}
	return false
}

func (e *evaluation) celFacts(it *item) *celFacts {
	pr := e.in.Principal
	roles := pr.Roles
	if roles == nil {
		roles = []string{}
	}
	sel := ""
	if s, ok := it.selector(); ok {
		sel = "0x" + hex.EncodeToString(s[:])
	}
	usd := -1.0
	if e.usdKnown {
		usd = float64(e.usdTotal) / MicroUSD
	}
	amount := 0.0
	if it.Amount != nil && it.Type == ItemTransfer {
		amount, _ = new(big.Rat).SetFrac(it.Amount, pow10(it.Decimals)).Float64()
	}
	value := 0.0
	if it.Value != nil && e.in.Catalog.native != nil {
		value, _ = new(big.Rat).SetFrac(it.Value, pow10(e.in.Catalog.native.Decimals)).Float64()
	}
	now := e.in.Now.UTC()
	return &celFacts{vals: [17]any{
		pr.ID, pr.Kind.String(), roles, e.account(it), it.Type.String(), it.Asset, amount, usd,
		it.Counterparty, it.Target, sel, value, it.Operation.String(), !e.known(it.Counterparty), it.InBatch,
		int64(now.Hour()), strings.ToLower(now.Weekday().String()[:3]),
	}}
}

var pow10Cache sync.Map

func pow10(n int) *big.Int {
	if v, ok := pow10Cache.Load(n); ok {
		return v.(*big.Int)
	}
	v := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	pow10Cache.Store(n, v)
	return v
}

// apply gives the rule's tier, or its over-limit tier if a limit is
// exceeded; a USD limit without a trusted price fails closed to approval.
func (e *evaluation) apply(r *rule, it *item) {
	if r.tier == TierDeny {
		e.raise(TierDeny, approval{})
		e.reason(ReasonDenyRule, r.name, fmt.Sprintf("rule %q denies this %s to %s", r.name, it.Type, it.Counterparty), "")
		return
	}
	e.fig = append(e.fig[:0], "tier "...)
	mark := len(e.fig)
	e.fig = append(e.fig, r.tier.String()...)
	exceeded, unpriced := e.limits(r, it)
	t, a := r.tier, r.approval
	switch {
	case exceeded:
		t = r.over
	case unpriced:
		// A USD rule that cannot see a trusted price: never autonomous,
		// never denied on a number it does not have.
		t = max(r.tier, TierApproval)
	}
	if (r.hasFunction || t == TierAutonomous) && e.payee(it) != "" {
		switch {
		case r.hasFunction:
			it.payoutNamed = true
		case t == TierAutonomous && it.payoutRule == "":
			it.payoutRule = r.name // judged once every rule is tried: see payout
		}
	}
	// Nobody, human or policy, can say what opaque calldata does: a rule
	// that names no function lets it through only with approval, whichever
	// of its tiers applies.
	if t == TierAutonomous && it.Type == ItemCall && !r.hasFunction && e.in.Contracts.opaque(it) {
		t = TierApproval
		sel := "none"
		if s, ok := it.selector(); ok {
			sel = "0x" + hex.EncodeToString(s[:])
		}
		e.reason(ReasonOpaqueCalldata, r.name, fmt.Sprintf("calldata to %s (selector %s) is in no configured contract's ABI, and policy does not classify it", it.Target, sel),
			"configure the contract's ABI (contracts in daoguard.yaml), or name the function in the rule")
	}
	if t == TierApproval && a.approvals == 0 {
		a = e.p.council
	}
	e.raise(t, a)
	detail := string(e.fig)
	if t != r.tier { // the tier given, not the rule's own
		detail = detail[:mark] + t.String() + detail[mark+len(r.tier.String()):]
	}
	e.reason(ReasonRuleMatched, r.name, detail, "")
}

// figure adds one figure to the matched rule's detail.
func (e *evaluation) figure(s string) {
	e.fig = append(e.fig, "; "...)
	e.fig = append(e.fig, s...)
}

// figureUSD adds "<name><total> + <mine> ≤ <limit> USD" without fmt: the
// figures of every matched rule are built on every decision.
func (e *evaluation) figureUSD(name string, total int64, mine int64, limit string) {
	e.fig = append(e.fig, "; "...)
	e.fig = append(e.fig, name...)
	e.fig = appendUSD(e.fig, total)
	if mine >= 0 {
		e.fig = append(e.fig, " + "...)
		e.fig = appendUSD(e.fig, mine)
	}
	e.fig = append(e.fig, " ≤ "...)
	e.fig = append(e.fig, limit...)
	e.fig = append(e.fig, " USD"...)
}

// limits checks the rule's limits against this action, adding a reason for
// each one exceeded and a figure for each one checked.
func (e *evaluation) limits(r *rule, it *item) (exceeded, unpriced bool) {
	if r.maxAmountText != "" {
		a, ok := e.in.Catalog.Asset(r.maxAsset)
		if !ok {
			e.figure(fmt.Sprintf("max_amount: asset %s is not in the catalogue", r.maxAsset))
			return true, false
		}
		limit, ok := e.in.Catalog.amount(r.maxAmountText, a.Symbol, a.Decimals)
		moved := e.moved(a.Symbol, "")
		if !ok {
			exceeded = true
			e.reason(ReasonPerTxAmountExceeded, r.name, fmt.Sprintf("the limit %s has more decimals than %s (%d)", r.maxAmountText, a.Symbol, a.Decimals), "")
		} else if moved.Cmp(limit) > 0 {
			exceeded = true
			e.reason(ReasonPerTxAmountExceeded, r.name, fmt.Sprintf("%s %s > %s %s per action", daoguard.FormatAmount(moved, a.Decimals), a.Symbol, r.maxAmountText, a.Symbol),
				fmt.Sprintf("at most %s %s in one action", r.maxAmountText, a.Symbol))
		} else {
			e.near(moved, limit)
			e.figure(fmt.Sprintf("per action %s ≤ %s %s", daoguard.FormatAmount(moved, a.Decimals), r.maxAmountText, a.Symbol))
		}
	}
	needUSD := r.maxUSD >= 0 || r.maxHoldingsPct != nil || r.cel != nil && r.cel.usesUSD
	for _, w := range r.windows {
		needUSD = needUSD || w.maxUSD >= 0
	}
	if needUSD && !e.usdKnown {
		unpriced = true
		e.figure("USD limits: no trusted price, approval required")
	}
	if r.maxUSD >= 0 && e.usdKnown {
		if e.usdTotal > r.maxUSD {
			exceeded = true
			e.reason(ReasonPerTxUSDExceeded, r.name, fmt.Sprintf("%s USD > %s USD per action", FormatUSD(e.usdTotal), FormatUSD(r.maxUSD)),
				fmt.Sprintf("at most %s USD in one action", FormatUSD(r.maxUSD)))
		} else {
			e.near(big.NewInt(e.usdTotal), big.NewInt(r.maxUSD))
			e.figureUSD("per action ", e.usdTotal, -1, r.maxUSDText)
		}
	}
	if r.maxHoldingsPct != nil && e.usdKnown {
		base, ok := e.treasuryUSD(it)
		if !ok {
			unpriced = true
			e.figure("holdings base: no priced holdings, approval required")
		} else {
			// usd > pct·base
			lhs := new(big.Int).Mul(big.NewInt(e.usdTotal), r.maxHoldingsPct.Denom())
			rhs := new(big.Int).Mul(big.NewInt(base), r.maxHoldingsPct.Num())
			pct := new(big.Rat).Mul(r.maxHoldingsPct, big.NewRat(100, 1)).FloatString(2)
			allowed := new(big.Int).Quo(rhs, r.maxHoldingsPct.Denom())
			if lhs.Cmp(rhs) > 0 {
				exceeded = true
				e.reason(ReasonHoldingsPctExceeded, r.name, fmt.Sprintf("%s USD > %s%% of holdings worth %s USD (governance token excluded)", FormatUSD(e.usdTotal), pct, FormatUSD(base)),
					fmt.Sprintf("at most %s USD in one action", FormatUSD(allowed.Int64())))
			} else {
				e.figure(fmt.Sprintf("%s USD ≤ %s%% of holdings worth %s USD", FormatUSD(e.usdTotal), pct, FormatUSD(base)))
			}
		}
	}
	for i := range r.windows {
		w := &r.windows[i]
		if w.maxUSD >= 0 && !e.usdKnown {
			continue
		}
		ex, unp := e.window(r, w, it)
		exceeded = exceeded || ex
		unpriced = unpriced || unp

	}
	return exceeded, unpriced
}

// near notes a limit held with less than 10% to spare: used ≥ 0.9·limit.
func (e *evaluation) near(used, limit *big.Int) {
	if limit.Sign() > 0 && new(big.Int).Mul(used, big.NewInt(10)).Cmp(new(big.Int).Mul(limit, big.NewInt(9))) >= 0 {
		e.nearLimit = true
	}
}

// movedNow sums what the action's flows move of an asset out of one
// holder ("": the acting account) now (allowances left out).
func (e *evaluation) movedNow(from, asset string) *big.Int {
	sum := new(big.Int)
	for _, f := range e.flows {
		if f.Asset == asset && f.From == from && !f.Allowance {
			sum.Add(sum, f.Amount)
		}
	}
	return sum
}

// moved sums the action's flows of an asset (to one counterparty, if set).
func (e *evaluation) moved(asset, to string) *big.Int {
	sum := new(big.Int)
	for _, f := range e.flows {
		if f.Asset == asset && (to == "" || f.To == to) {
			sum.Add(sum, f.Amount)
		}
	}
	return sum
}

func (e *evaluation) usdTo(to string) int64 {
	var sum int64
	for _, f := range e.flows {
		if to == "" || f.To == to {
			sum = addUSD(sum, max(f.USD, 0))
		}
	}
	return sum
}

// available is holdings minus reserved, by symbol, never below zero; nil
// when the holdings are unknown. holdings itself is shared and left as is.
func available(holdings, reserved map[string]*big.Int) map[string]*big.Int {
	if holdings == nil || len(reserved) == 0 {
		return holdings
	}
	out := make(map[string]*big.Int, len(holdings))
	for sym, h := range holdings {
		if h == nil {
			out[sym] = nil
			continue
		}
		v := h
		if r := reserved[sym]; r != nil && r.Sign() > 0 {
			v = new(big.Int).Sub(h, r)
			if v.Sign() < 0 {
				v.SetInt64(0)
			}
		}
		out[sym] = v
	}
	return out
}

// treasuryUSD values the holdings that have a trusted price of the
// account whose funds it moves; the governance token never counts
// (pumping it must not raise a limit), and an unpriced holding is left out
// (a smaller base is a stricter limit).
func (e *evaluation) treasuryUSD(it *item) (int64, bool) {
	avail := e.avail
	if it.From != "" {
		avail = e.ownAvail[it.From] // nil if not the organisation's: no base
	}
	var total int64
	for _, sym := range sortedKeys(avail) {
		if sym == e.p.govToken {
			continue
		}
		a, ok := e.in.Catalog.Asset(sym)
		if !ok {
			continue
		}
		if p := e.price(sym); p.Value != nil {
			total = addUSD(total, usdValue(avail[sym], a.Decimals, p.Value))
		}
	}
	return total, total > 0
}

// window checks one rolling window: the total recorded in the period plus
// this action's part must stay within the limit. The total comes from the
// history's prefix sums: no scan, whatever the history's size.
func (e *evaluation) window(r *rule, w *window, it *item) (exceeded, unpriced bool) {
	k := Key{Per: w.per}
	to := ""
	switch w.per {
	case PerAgent:
		k.Who = e.in.Principal.ID
	case PerRecipient:
		k.Who, to = it.Counterparty, it.Counterparty
	case PerRole:
		k.Who = w.role
	}
	since := e.in.Now.Add(-w.period)
	var t Total
	if e.in.History != nil {
		t = e.in.History.Window(k, since)
	} else {
		t.Amount = new(big.Int)
	}
	name := w.name
	frees := func(excess *big.Int, count bool) string {
		if e.in.History == nil {
			return ""
		}
		if at, ok := e.in.History.Release(k, since, excess, count); ok {
			return "; enough frees up at " + at.Add(w.period).UTC().Format(time.RFC3339)
		}
		return ""
	}
	switch {
	case w.maxCount > 0:
		if t.Count+1 > w.maxCount {
			excess := big.NewInt(int64(t.Count + 1 - w.maxCount))
			e.reason(ReasonWindowCountExceeded, r.name, fmt.Sprintf("%s: %d actions so far + this one > %d", name, t.Count, w.maxCount),
				"no more actions in this window"+frees(excess, true))
			return true, false
		}
		e.fig = append(e.fig, "; "...)
		e.fig = append(e.fig, name...)
		e.fig = append(e.fig, ": "...)
		e.fig = strconv.AppendInt(e.fig, int64(t.Count), 10)
		e.fig = append(e.fig, " + 1 ≤ "...)
		e.fig = strconv.AppendInt(e.fig, int64(w.maxCount), 10)
		e.fig = append(e.fig, " actions"...)
	case w.maxUSD >= 0:
		mine := e.usdTo(to)
		sum := addUSD(t.USD, mine)
		if sum <= w.maxUSD && t.Unpriced > 0 {
			// An action in this window moved an asset with no trusted price:
			// its USD value is unknown, so this limit cannot be shown to hold
			// until it leaves the window. (What is priced already exceeding
			// the limit is decided below, as exceeded.)
			e.reason(ReasonPriceUnavailable, r.name, fmt.Sprintf("%s: %d action(s) in the window had no trusted price: the USD total is unknown", name, t.Unpriced),
				"approval until the unpriced action(s) leave the "+fmtPeriod(w.period)+" window")
			return false, true
		}
		if sum > w.maxUSD {
			left := max(w.maxUSD-t.USD, 0)
			excess := big.NewInt(sum - w.maxUSD)
			e.reason(ReasonWindowUSDExceeded, r.name, fmt.Sprintf("%s: %s USD so far + %s USD = %s USD > %s USD", name, FormatUSD(t.USD), FormatUSD(mine), FormatUSD(sum), FormatUSD(w.maxUSD)),
				fmt.Sprintf("up to %s USD now%s", FormatUSD(left), frees(excess, false)))
			return true, false
		}
		// Near the window's limit only if this action is what brought it
		// there: once a window is 90% used, every later payment would
		// otherwise count, however small.
		if mine > 0 && t.USD*10 < w.maxUSD*9 {
			e.near(big.NewInt(sum), big.NewInt(w.maxUSD))
		}
		e.figureUSD(name+": ", t.USD, mine, w.maxUSDText)
	default:
		a, ok := e.in.Catalog.Asset(w.asset)
		if !ok {
			e.reason(ReasonWindowAmountExceeded, r.name, fmt.Sprintf("%s: asset %s is not in the catalogue", name, w.asset), "")
			return true, false
		}
		k.Asset = w.asset
		if e.in.History != nil {
			t = e.in.History.Window(k, since)
		}
		limit, ok := e.in.Catalog.amount(w.maxAmount, a.Symbol, a.Decimals)
		if !ok {
			e.reason(ReasonWindowAmountExceeded, r.name, fmt.Sprintf("%s: the limit %s has more decimals than %s (%d)", name, w.maxAmount, a.Symbol, a.Decimals), "")
			return true, false
		}
		mine := e.moved(w.asset, to)
		sum := new(big.Int).Add(t.Amount, mine)
		if sum.Cmp(limit) > 0 {
			left := new(big.Int).Sub(limit, t.Amount)
			if left.Sign() < 0 {
				left.SetInt64(0)
			}
			e.reason(ReasonWindowAmountExceeded, r.name, fmt.Sprintf("%s: %s %s so far + %s = %s > %s %s", name, daoguard.FormatAmount(t.Amount, a.Decimals), a.Symbol, daoguard.FormatAmount(mine, a.Decimals), daoguard.FormatAmount(sum, a.Decimals), w.maxAmount, a.Symbol),
				fmt.Sprintf("up to %s %s now%s", daoguard.FormatAmount(left, a.Decimals), a.Symbol, frees(new(big.Int).Sub(sum, limit), false)))
			return true, false
		}
		// "<name>: <total> + <mine> ≤ <limit> <symbol>", without fmt.
		e.fig = append(e.fig, "; "...)
		e.fig = append(e.fig, name...)
		e.fig = append(e.fig, ": "...)
		e.fig = daoguard.AppendAmount(e.fig, t.Amount, a.Decimals)
		e.fig = append(e.fig, " + "...)
		e.fig = daoguard.AppendAmount(e.fig, mine, a.Decimals)
		e.fig = append(e.fig, " ≤ "...)
		e.fig = append(e.fig, w.maxAmount...)
		e.fig = append(e.fig, ' ')
		e.fig = append(e.fig, a.Symbol...)
	}
	return false, false
}

func fmtPeriod(d time.Duration) string {
	if d >= 48*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return strings.TrimSuffix(strings.TrimSuffix(d.String(), "0s"), "0m")
}

// amount resolves a display-unit amount for an asset, caching the result:
// limits are written in display units, compared in base units.
func (c *Catalog) amount(text, sym string, decimals int) (*big.Int, bool) {
	k := amountKey{text, sym, decimals}
	if v, ok := c.amounts.Load(k); ok {
		return v.(*big.Int), true
	}
	v, err := daoguard.ParseAmount(text, decimals)
	if err != nil {
		return nil, false
	}
	c.amounts.Store(k, v)
	return v, true
}

type amountKey struct {
	text, sym string
	dec       int
}
