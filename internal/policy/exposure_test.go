package policy

import (
	"encoding/hex"
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

// transferFrom naming another holder is that holder's money.
func TestTransferFromOther(t *testing.T) {
	p, err := Parse([]byte(devLike))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from string
		want daoguard.Verdict
	}{
		{"0x1000000000000000000000000000000000000001", daoguard.VerdictAllow}, // the account's own
		{"0x2000000000000000000000000000000000000002", daoguard.VerdictDeny},  // the treasury's, under its allowance
		{"0x3000000000000000000000000000000000000003", daoguard.VerdictDeny},  // anyone else's
	} {
		in := fixture(t, p)
		data, _ := hex.DecodeString("23b872dd" + strings.Repeat("0", 24) + tc.from[2:] + strings.Repeat("0", 24) + "9f3a11111111111111111111111111111111c0de" + strings.Repeat("0", 56) + "17d78400")
		in.Action = &daoguard.Decoded{Kind: daoguard.KindCall, Account: "ops", AccountKind: daoguard.AccountWallet, From: "0x1000000000000000000000000000000000000001",
			To: "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", Value: daoguard.NewBigInt(new(big.Int)), Data: data, Operation: daoguard.OpCall}
		d := p.Evaluate(in).Decision
		if d.Verdict != tc.want || (tc.want == daoguard.VerdictDeny) != hasCode(d, ReasonTransferFromOther) {
			t.Fatalf("from %s: %s %+v", tc.from, d.Verdict, d.Reasons)
		}
	}
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
