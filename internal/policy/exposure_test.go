package policy

import (
	"encoding/hex"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/daoguard/daoguard"
)

// devLike is the dev environment's shape: agents pay listed recipients in
// USDC (per-payment amount, no USD limit) and ETH, each under its own rule.
const devLike = `version: 1
name: t
lists: {vendors: ["0x9f3a11111111111111111111111111111111c0de"]}
groups: {c: {role: r}}
council: {group: c, approvals: 2, timelock: 1h}
units: {max_holdings_pct: "100"}
rules:
  - {name: usdc, principal_kinds: [agent], accounts: [ops], actions: [transfer], assets: [USDC], recipients: {lists: [vendors]}, tier: autonomous, limits: {max_amount: "500"}}
  - {name: eth, principal_kinds: [agent], accounts: [ops], actions: [transfer], assets: [ETH], recipients: {lists: [vendors]}, tier: autonomous, limits: {max_amount: "0.5"}}
`

func hasCode(d daoguard.Decision, code string) bool {
	return slices.ContainsFunc(d.Reasons, func(r daoguard.Reason) bool { return r.Code == code })
}

// Native value sent with a token transfer is a native transfer of its own:
// the USDC rule does not let 2 ETH through with 100 USDC, and no rule
// lets an agent pay ETH to the token contract.
func TestValueOnTokenCallIsAFlow(t *testing.T) {
	p, err := Parse([]byte(devLike))
	if err != nil {
		t.Fatal(err)
	}
	data := transferCalldata("0x9f3a11111111111111111111111111111111c0de", big.NewInt(100_000000))
	call := func(value *big.Int) daoguard.Decision {
		in := fixture(t, p)
		in.Action = &daoguard.Decoded{Kind: daoguard.KindCall, Account: "ops", AccountKind: daoguard.AccountWallet, From: in.Action.From,
			To: "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", Value: daoguard.NewBigInt(value), Data: data, Operation: daoguard.OpCall}
		return p.Evaluate(in).Decision
	}
	if d := call(new(big.Int)); d.Verdict != daoguard.VerdictAllow {
		t.Fatalf("plain transfer: %s %+v", d.Verdict, d.Reasons)
	}
	d := call(new(big.Int).Mul(big.NewInt(2), big.NewInt(1e18)))
	if d.Verdict != daoguard.VerdictDeny || !hasCode(d, ReasonNoMatchingRule) {
		t.Fatalf("with 2 ETH attached: %s %+v", d.Verdict, d.Reasons)
	}
}

// transferFrom naming another holder is that holder's money: judged under
// the rules for that account of the organisation, against what it holds
// less what its open actions reserve; an outside holder is refused.
func TestTransferFromOther(t *testing.T) {
	const treasury = "0x2000000000000000000000000000000000000002"
	withTreasury, err := Parse([]byte(devLike + `  - {name: treasury-usdc, principal_kinds: [agent], accounts: [treasury], actions: [transfer], assets: [USDC], recipients: {lists: [vendors]}, tier: autonomous, limits: {max_amount: "450"}}
`))
	if err != nil {
		t.Fatal(err)
	}
	opsOnly, err := Parse([]byte(devLike))
	if err != nil {
		t.Fatal(err)
	}
	usdc := func(n int64) map[string]*big.Int { return map[string]*big.Int{"USDC": big.NewInt(n * 1_000000)} }
	for _, tc := range []struct {
		name          string
		p             *Policy
		from          string
		owner         *Owner // the treasury, as the gateway finds it among the accounts
		outflow       int64  // what the simulation sees leave ops (USDC)
		want          daoguard.Verdict
		code, notCode string
		flowFromOwner bool
	}{
		{name: "the account's own", p: opsOnly, from: "0x1000000000000000000000000000000000000001", want: daoguard.VerdictAllow, notCode: ReasonTransferFromOther},
		{name: "an outside holder's", p: withTreasury, from: "0x3000000000000000000000000000000000000003", want: daoguard.VerdictDeny, code: ReasonTransferFromOther},
		{name: "the treasury's, not one of the accounts found", p: withTreasury, from: treasury, want: daoguard.VerdictDeny, code: ReasonTransferFromOther},
		{name: "the treasury's: the ops rule does not cover it", p: opsOnly, from: treasury, owner: &Owner{Name: "treasury", Holdings: usdc(1000)},
			want: daoguard.VerdictDeny, code: ReasonNoMatchingRule, notCode: ReasonTransferFromOther},
		{name: "the treasury's, under its rule", p: withTreasury, from: treasury, owner: &Owner{Name: "treasury", Holdings: usdc(1000)},
			want: daoguard.VerdictAllow, code: ReasonRuleMatched, flowFromOwner: true},
		{name: "the treasury's, with less unreserved than it pulls (ops holds plenty)", p: withTreasury, from: treasury, owner: &Owner{Name: "treasury", Holdings: usdc(1000), Reserved: usdc(700)},
			want: daoguard.VerdictDeny, code: ReasonInsufficientHoldings},
		{name: "the treasury's, holdings unknown", p: withTreasury, from: treasury, owner: &Owner{Name: "treasury"},
			want: daoguard.VerdictNeedsApproval, code: ReasonHoldingsUnavailable},
		{name: "the treasury's pull does not hide what leaves ops", p: withTreasury, from: treasury, owner: &Owner{Name: "treasury", Holdings: usdc(1000)}, outflow: 400,
			want: daoguard.VerdictDeny, code: ReasonSimulatedOutflow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture(t, tc.p)
			data, _ := hex.DecodeString("23b872dd" + strings.Repeat("0", 24) + tc.from[2:] + strings.Repeat("0", 24) + "9f3a11111111111111111111111111111111c0de" + strings.Repeat("0", 56) + "17d78400") // 400 USDC
			in.Action = &daoguard.Decoded{Kind: daoguard.KindCall, Account: "ops", AccountKind: daoguard.AccountWallet, From: "0x1000000000000000000000000000000000000001",
				To: "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", Value: daoguard.NewBigInt(new(big.Int)), Data: data, Operation: daoguard.OpCall}
			if tc.outflow > 0 {
				in.Action.Simulation = &daoguard.Simulation{Block: 1, Success: true, Changes: []daoguard.BalanceChange{{Asset: "USDC", Token: "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
					Before: daoguard.NewBigInt(big.NewInt(100_000_000_000)), After: daoguard.NewBigInt(big.NewInt(100_000_000_000 - tc.outflow*1_000000))}}}
			}
			if holders, err := Holders(in.Action, in.Catalog); err != nil || len(holders) != btoi(tc.from != in.Action.From) {
				t.Fatalf("Holders: %v %v", holders, err)
			}
			if tc.owner != nil {
				in.Owners = map[string]*Owner{treasury: tc.owner}
			}
			res := tc.p.Evaluate(in)
			d := res.Decision
			if d.Verdict != tc.want || tc.code != "" && !hasCode(d, tc.code) || tc.notCode != "" && hasCode(d, tc.notCode) {
				t.Fatalf("%s %+v", d.Verdict, d.Reasons)
			}
			if tc.flowFromOwner && (len(res.Flows) != 1 || res.Flows[0].From != treasury) {
				t.Fatalf("flows %+v: the pull is not the treasury's", res.Flows)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Holdings minus reservations: the action that would take more than is
// left unreserved is denied, and its detail says how much is reserved.
func TestReservedHoldings(t *testing.T) {
	p, err := Parse([]byte(devLike))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		held, reserved int64 // USDC base units
		want           daoguard.Verdict
	}{
		{1000_000000, 0, daoguard.VerdictAllow},
		{1000_000000, 500_000000, daoguard.VerdictAllow}, // exactly what is left
		{1000_000000, 500_000001, daoguard.VerdictDeny},
		{400_000000, 0, daoguard.VerdictDeny},
		{1000_000000, 2000_000000, daoguard.VerdictDeny}, // more reserved than held (a stale snapshot): nothing left
	} {
		in := fixture(t, p)
		in.Holdings = map[string]*big.Int{"USDC": big.NewInt(tc.held)}
		in.Reserved = map[string]*big.Int{"USDC": big.NewInt(tc.reserved)}
		d := p.Evaluate(in).Decision
		if d.Verdict != tc.want || (tc.want == daoguard.VerdictDeny) != hasCode(d, ReasonInsufficientHoldings) {
			t.Fatalf("%+v: %s %+v", tc, d.Verdict, d.Reasons)
		}
		if in.Holdings["USDC"].Int64() != tc.held {
			t.Fatal("the shared holdings map was changed")
		}
	}
}

// An allowance is money the spender can take: approving counts in the
// window like paying, and a payment after it finds the window used.
func TestAllowanceCountsInWindows(t *testing.T) {
	src := `version: 1
name: t
lists: {vendors: ["0x9f3a11111111111111111111111111111111c0de"], spenders: ["0xe592427a0aece92de3edee1f18e0157c05861564"]}
groups: {c: {role: r}}
council: {group: c, approvals: 2, timelock: 1h}
protections: {approval_caps: {USDC: "5000"}}
rules:
  - name: agent-usdc
    principal_kinds: [agent]
    accounts: [ops]
    actions: [transfer, approval]
    assets: [USDC]
    recipients: {lists: [vendors, spenders]}
    tier: autonomous
    limits:
      windows: [{period: 24h, per: agent, asset: USDC, max_amount: "1000"}]
    over_limit: approval
    approval: {group: c, approvals: 1, timelock: 1h}
`
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	approve := func(amount int64) *daoguard.Decoded {
		data, _ := hex.DecodeString("095ea7b3" + strings.Repeat("0", 24) + "e592427a0aece92de3edee1f18e0157c05861564" + strings.Repeat("0", 64))
		new(big.Int).SetInt64(amount).FillBytes(data[36:68])
		return &daoguard.Decoded{Kind: daoguard.KindCall, Account: "ops", AccountKind: daoguard.AccountWallet, From: "0x1000000000000000000000000000000000000001",
			To: "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", Value: daoguard.NewBigInt(new(big.Int)), Data: data, Operation: daoguard.OpCall}
	}
	in := fixture(t, p)
	hist := in.History.(*Ledger)
	in.Action = approve(800_000000)
	res := p.Evaluate(in)
	if res.Decision.Verdict != daoguard.VerdictAllow || len(res.Flows) != 1 || !res.Flows[0].Allowance || res.Flows[0].Amount.Int64() != 800_000000 {
		t.Fatalf("an 800 USDC approval: %s %+v %+v", res.Decision.Verdict, res.Decision.Reasons, res.Flows)
	}
	hist.Record(in.Now, in.Principal.ID, res.Flows)
	if hist.Known("0xe592427a0aece92de3edee1f18e0157c05861564") {
		t.Fatal("an approval made its spender a known counterparty")
	}
	// 800 approved + 300 paid > 1000: the payment needs approval.
	in = fixture(t, p)
	in.History = hist
	in.Action.Amount = daoguard.NewBigInt(big.NewInt(300_000000))
	if d := p.Evaluate(in).Decision; d.Verdict != daoguard.VerdictNeedsApproval || !hasCode(d, ReasonWindowAmountExceeded) {
		t.Fatalf("a payment after the approval: %s %+v", d.Verdict, d.Reasons)
	}
	// And a second approval that would take the exposure past the window.
	in.Action = approve(300_000000)
	if d := p.Evaluate(in).Decision; d.Verdict != daoguard.VerdictNeedsApproval || !hasCode(d, ReasonWindowAmountExceeded) {
		t.Fatalf("a second approval: %s %+v", d.Verdict, d.Reasons)
	}
}

// A policy whose autonomous rules promise more than a ceiling allows is
// refused at load, every problem located; so is a malformed ceiling.
func TestCeilingsRefused(t *testing.T) {
	base := `version: 1
name: t
groups: {c: {role: r}}
council: {group: c, approvals: 2, timelock: 1h}
rules:
  - name: pay
    principal_kinds: [agent]
    actions: [transfer]
    assets: [ETH]
    tier: autonomous
    limits:
      max_amount: "%s"
      max_usd: "%s"
      windows: [{period: 7d, per: agent, max_usd: "%s"}]
  - {name: people, principal_kinds: [human], tier: approval, approval: {group: c, approvals: 1, timelock: 1h}}
ceilings:
%s`
	ok := "  - {name: each, principals: [bot], windows: [{period: 24h, max_usd: \"1000\"}, {period: 24h, asset: ETH, max_amount: \"1\"}]}\n"
	for _, tc := range []struct {
		name, amt, usd, week, ceilings string
		fields                         []string
	}{
		{"OK_WithinEveryCeiling", "0.5", "500", "1000", ok, nil},
		{"ErrPerActionUSD", "0.5", "5000", "1000", ok, []string{"rules[0].limits.max_usd"}},
		{"ErrPerActionAmount", "2", "500", "1000", ok, []string{"rules[0].limits.max_amount"}},
		{"ErrLongerWindowAbove", "0.5", "500", "9000", ok, []string{"rules[0].limits.windows[0]"}},
		{"OK_RoleCeilingIgnoresPerAgentWindows", "0.5", "500", "9000", "  - {name: team, roles: [x], windows: [{period: 24h, max_usd: \"1000\"}]}\n", nil},
		{"ErrTwoScopes", "0.5", "500", "1000", "  - {name: x, agents: true, roles: [x], windows: [{period: 24h, max_usd: \"1000\"}]}\n", []string{"ceilings[0]"}},
		{"ErrPerInCeiling", "0.5", "500", "1000", "  - {name: x, agents: true, windows: [{period: 24h, per: agent, max_usd: \"1000\"}]}\n", []string{"ceilings[0].windows[0].per"}},
		{"ErrNoWindows", "0.5", "500", "1000", "  - {name: x, agents: true}\n", []string{"ceilings[0].windows"}},
		{"ErrDuplicateName", "0.5", "500", "1000", ok + ok, []string{"ceilings[1].name"}},
		{"ErrBadPeriod", "0.5", "500", "1000", "  - {name: x, agents: true, windows: [{period: 400d, max_usd: \"1\"}]}\n", []string{"ceilings[0].windows[0].period"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(fmt.Appendf(nil, base, tc.amt, tc.usd, tc.week, tc.ceilings))
			if tc.fields == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			pe, ok := err.(*ParseError)
			if !ok {
				t.Fatalf("%T %v, want a ParseError", err, err)
			}
			var got []string
			for _, p := range pe.Problems {
				got = append(got, p.Field)
				if p.Line == 0 {
					t.Errorf("problem without a line: %+v", p)
				}
			}
			for _, f := range tc.fields {
				if !slices.Contains(got, f) {
					t.Fatalf("problems at %v, want one at %s (%v)", got, f, pe)
				}
			}
		})
	}
}

// A human's action beyond what open actions leave goes to the council (an
// agent's pending requests must not freeze the humans); an agent's token
// outside the catalogue never runs on its own.
func TestExposureReviewCases(t *testing.T) {
	p, err := Parse([]byte(devLike + "  - {name: people, principal_kinds: [human], tier: approval, approval: {group: c, approvals: 1, timelock: 1h}}\n  - {name: any-token, principal_kinds: [agent], actions: [transfer], tier: autonomous, limits: {windows: [{period: 1h, per: agent, max_count: 100}]}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	in := fixture(t, p)
	in.Principal = &daoguard.Principal{ID: "alice", Kind: daoguard.PrincipalHuman, Roles: []string{"r"}}
	in.Holdings = map[string]*big.Int{"USDC": big.NewInt(1000_000000)}
	in.Reserved = map[string]*big.Int{"USDC": big.NewInt(1000_000000)}
	if d := p.Evaluate(in).Decision; d.Verdict != daoguard.VerdictNeedsApproval || d.Tier != "vote" || !hasCode(d, ReasonInsufficientHoldings) {
		t.Fatalf("a human beyond the reservations: %s %s %+v", d.Verdict, d.Tier, d.Reasons)
	}
	in = fixture(t, p)
	unknown := "0x7070000000000000000000000000000000007070"
	in.Action = &daoguard.Decoded{Kind: daoguard.KindCall, Account: "ops", AccountKind: daoguard.AccountWallet, From: in.Action.From,
		To: unknown, Value: daoguard.NewBigInt(new(big.Int)), Data: transferCalldata("0x9f3a11111111111111111111111111111111c0de", new(big.Int).Exp(big.NewInt(10), big.NewInt(24), nil)), Operation: daoguard.OpCall}
	if d := p.Evaluate(in).Decision; d.Verdict == daoguard.VerdictAllow || !hasCode(d, ReasonHoldingsUnavailable) {
		t.Fatalf("10^24 of a token outside the catalogue: %s %+v", d.Verdict, d.Reasons)
	}
}

// Bounds never show a wrapped-around negative USD figure.
func TestBoundsUSDSaturates(t *testing.T) {
	p, err := Parse([]byte(`version: 1
name: t
groups: {c: {role: r}}
council: {group: c, approvals: 1, timelock: 1h}
rules:
  - {name: a, principal_kinds: [agent], actions: [transfer], assets: [USDC], tier: autonomous, limits: {windows: [{period: 24h, per: agent, asset: USDC, max_amount: "6000000000000"}]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	usdc := &daoguard.Asset{Symbol: "USDC", Address: "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", Decimals: 6}
	one, _ := ParsePrice("1")
	w := &World{Catalog: NewCatalog([]*daoguard.Asset{usdc}), Prices: map[string]*big.Int{"USDC": one},
		Principals: []*daoguard.Principal{{ID: "a1", Kind: daoguard.PrincipalAgent}, {ID: "a2", Kind: daoguard.PrincipalAgent}}}
	for _, b := range p.Bounds(w) {
		if strings.HasPrefix(b.Amount, "-") {
			t.Fatalf("negative bound %+v", b)
		}
	}
}

// A payout standard's function is recognised by its selector wherever it
// is sent: configuring the contract's ABI under other parameter names does
// not hide whom it pays, and the owner counts as much as the receiver.
func TestPayeeWhateverTheABI(t *testing.T) {
	p, err := Parse([]byte(devLike + `  - {name: vault, principal_kinds: [agent], accounts: [ops], actions: [call], targets: {addresses: ["0x83f20f44975d03b1b09e64809b757c47f942beea"]}, tier: autonomous}
`))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := NewRegistry([]ContractABI{{Name: "Vault", Address: "0x83f20f44975d03b1b09e64809b757c47f942beea",
		ABI: []byte(`[{"type":"function","name":"redeem","inputs":[{"name":"a","type":"uint256"},{"name":"b","type":"address"},{"name":"c","type":"address"}],"outputs":[]}]`)}})
	if err != nil {
		t.Fatal(err)
	}
	const ops, other = "1000000000000000000000000000000000000001", "a77ac4e700000000000000000000000000000a77"
	for _, tc := range []struct {
		receiver, owner string
		want            daoguard.Verdict
	}{
		{ops, ops, daoguard.VerdictAllow},
		{other, ops, daoguard.VerdictDeny},
		{ops, other, daoguard.VerdictDeny},
	} {
		in := fixture(t, p)
		in.Contracts = reg
		data, _ := hex.DecodeString("ba087652" + fmt.Sprintf("%064x", 1000) + strings.Repeat("0", 24) + tc.receiver + strings.Repeat("0", 24) + tc.owner)
		in.Action = &daoguard.Decoded{Kind: daoguard.KindCall, Account: "ops", AccountKind: daoguard.AccountWallet, From: "0x" + ops,
			To: "0x83f20f44975d03b1b09e64809b757c47f942beea", Value: daoguard.NewBigInt(new(big.Int)), Data: data, Operation: daoguard.OpCall}
		d := p.Evaluate(in).Decision
		if d.Verdict != tc.want || (tc.want == daoguard.VerdictDeny) != hasCode(d, ReasonPaysOther) {
			t.Fatalf("receiver %s owner %s: %s %+v", tc.receiver, tc.owner, d.Verdict, d.Reasons)
		}
	}
}

// transferFromData encodes transferFrom(from, to, amount).
func transferFromData(from, to string, amount int64) []byte {
	data, _ := hex.DecodeString("23b872dd" + strings.Repeat("0", 24) + from[2:] + strings.Repeat("0", 24) + to[2:] + fmt.Sprintf("%064x", amount))
	return data
}

// A pull is the other account's in every figure a rule reads: the account
// its accounts: and CEL's account see, the holdings its max_holdings_pct is
// a share of, and the holdings a batch's pull is checked against (each
// holder's asset on its own, however the acting account's own flows of
// that asset stand).
func TestPullIsTheOwnersInEveryFigure(t *testing.T) {
	const ops, treasury, vendor = "0x1000000000000000000000000000000000000001", "0x2000000000000000000000000000000000000002", "0x9f3a11111111111111111111111111111111c0de"
	const usdcAddr = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
	usdc := func(n int64) map[string]*big.Int { return map[string]*big.Int{"USDC": big.NewInt(n * 1_000000)} }
	head := "version: 1\nname: t\ngroups: {c: {role: r}}\ncouncil: {group: c, approvals: 2, timelock: 1h}\nunits: {max_holdings_pct: \"100\"}\nrules:\n"
	pull := func(t *testing.T, rules string, owner *Owner, amount int64) daoguard.Decision {
		p, err := Parse([]byte(head + rules))
		if err != nil {
			t.Fatal(err)
		}
		in := fixture(t, p)
		in.Action = &daoguard.Decoded{Kind: daoguard.KindCall, Account: "ops", AccountKind: daoguard.AccountWallet, From: ops,
			To: usdcAddr, Value: daoguard.NewBigInt(new(big.Int)), Data: transferFromData(treasury, vendor, amount*1_000000), Operation: daoguard.OpCall}
		in.Owners = map[string]*Owner{treasury: owner}
		return p.Evaluate(in).Decision
	}
	t.Run("max_holdings_pct is of the owner's holdings", func(t *testing.T) {
		rule := `  - {name: pct, principal_kinds: [agent], accounts: [treasury], actions: [transfer], assets: [USDC], tier: autonomous, limits: {max_holdings_pct: "10"}, over_limit: deny}` + "\n"
		// ops holds 100,000 USDC (the fixture): 400 is 0.4% of that, but 40% of the treasury's 1,000.
		if d := pull(t, rule, &Owner{Name: "treasury", Holdings: usdc(1000)}, 400); d.Verdict != daoguard.VerdictDeny || !hasCode(d, ReasonHoldingsPctExceeded) {
			t.Fatalf("%s %+v", d.Verdict, d.Reasons)
		}
		if d := pull(t, rule, &Owner{Name: "treasury", Holdings: usdc(10000)}, 400); d.Verdict != daoguard.VerdictAllow {
			t.Fatalf("4%%: %s %+v", d.Verdict, d.Reasons)
		}
	})
	t.Run("CEL's account is the owner", func(t *testing.T) {
		rule := `  - {name: cel, principal_kinds: [agent], actions: [transfer], cel: 'account == "treasury"', tier: autonomous}` + "\n"
		if d := pull(t, rule, &Owner{Name: "treasury", Holdings: usdc(1000)}, 400); d.Verdict != daoguard.VerdictAllow {
			t.Fatalf("%s %+v", d.Verdict, d.Reasons)
		}
	})
	t.Run("a Safe's pull needs approval", func(t *testing.T) {
		rule := `  - {name: any, principal_kinds: [agent], accounts: [treasury], actions: [transfer], tier: autonomous}` + "\n"
		d := pull(t, rule, &Owner{Name: "treasury", Safe: true, Holdings: usdc(1000)}, 400)
		if d.Verdict != daoguard.VerdictNeedsApproval || !hasCode(d, ReasonSafePull) || d.RequiredApprovals != 2 {
			t.Fatalf("%s %+v", d.Verdict, d.Reasons)
		}
	})
	t.Run("a batch's pull is checked against the owner's holdings", func(t *testing.T) {
		p, err := Parse([]byte(head + `  - {name: any, actions: [transfer], tier: autonomous}` + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		in := fixture(t, p)
		in.Principal = &daoguard.Principal{ID: "alice", Kind: daoguard.PrincipalHuman, Roles: []string{"r"}}
		// The treasury (a Safe, holding plenty) pays 100 USDC of its own and
		// pulls 10,000 of ops', which holds 5,000.
		in.Action = &daoguard.Decoded{Kind: daoguard.KindCall, Account: "treasury", AccountKind: daoguard.AccountSafe, From: treasury,
			To: "0x40a2accbd92bca938b02010e17a5b8929b49130d", Value: daoguard.NewBigInt(new(big.Int)), Operation: daoguard.OpDelegateCall,
			Data: multiSend([]batchCall{{to: usdcAddr, data: transferCalldata(vendor, big.NewInt(100_000000))}, {to: usdcAddr, data: transferFromData(ops, vendor, 10_000_000000)}})}
		in.Holdings = usdc(1_000_000)
		in.Owners = map[string]*Owner{ops: {Name: "ops", Holdings: usdc(5000)}}
		d := p.Evaluate(in).Decision
		if !strings.Contains(reasonDetail(d, ReasonInsufficientHoldings), "account ops holds 5000 USDC") {
			t.Fatalf("%s %+v", d.Verdict, d.Reasons)
		}
	})
	t.Run("the account's address in any case", func(t *testing.T) {
		p, err := Parse([]byte(head + `  - {name: vault, principal_kinds: [agent], actions: [call], tier: autonomous}` + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		const mixed = "0xAbCdEf0000000000000000000000000000000001"
		in := fixture(t, p)
		data, _ := hex.DecodeString("ba087652" + fmt.Sprintf("%064x", 1000) + strings.Repeat("0", 24) + strings.ToLower(mixed[2:]) + strings.Repeat("0", 24) + strings.ToLower(mixed[2:]))
		in.Action = &daoguard.Decoded{Kind: daoguard.KindCall, Account: "ops", AccountKind: daoguard.AccountWallet, From: mixed,
			To: "0x83f20f44975d03b1b09e64809b757c47f942beea", Value: daoguard.NewBigInt(new(big.Int)), Data: data, Operation: daoguard.OpCall}
		if d := p.Evaluate(in).Decision; hasCode(d, ReasonPaysOther) {
			t.Fatalf("a redeem to itself, named in another case: %+v", d.Reasons)
		}
	})
}

func reasonDetail(d daoguard.Decision, code string) string {
	for _, r := range d.Reasons {
		if r.Code == code {
			return r.Detail
		}
	}
	return ""
}
