package policy

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/daoguard/daoguard"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
)

const (
	grantsAddr = "0x6a7e000000000000000000000000000000006a7e"
	grantsABI  = `[{"type":"function","name":"award","inputs":[{"name":"recipient","type":"address"},{"name":"amount","type":"uint256"},{"name":"memo","type":"string"}],"outputs":[]},
	               {"type":"function","name":"batch","inputs":[{"name":"items","type":"tuple[]","components":[{"name":"to","type":"address"},{"name":"cap","type":"uint96"}]}],"outputs":[]}]`
	usdcAddr = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
)

func grantsRegistry(t testing.TB) (*Registry, abi.ABI) {
	t.Helper()
	r, err := NewRegistry([]ContractABI{{Name: "Grants", Address: grantsAddr, ABI: []byte(grantsABI)}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := abi.JSON(strings.NewReader(grantsABI))
	if err != nil {
		t.Fatal(err)
	}
	return r, a
}

func pack(t testing.TB, a abi.ABI, method string, args ...any) []byte {
	t.Helper()
	b, err := a.Pack(method, args...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewRegistry(t *testing.T) {
	ok := []byte(grantsABI)
	artifact := []byte(`{"contractName":"Grants","abi":` + grantsABI + `,"bytecode":"0x"}`)
	if r, err := NewRegistry([]ContractABI{{Name: "Grants", Address: grantsAddr, ABI: artifact}}); err != nil || r.Len() != 1 {
		t.Fatalf("a Hardhat/Foundry artifact: %v", err)
	}
	for _, tc := range []struct {
		name string
		cs   []ContractABI
		want string
	}{
		{"ErrNoName", []ContractABI{{Address: grantsAddr, ABI: ok}}, "needs a name"},
		{"ErrAddress", []ContractABI{{Name: "g", Address: "0x1234", ABI: ok}}, "not a 0x-prefixed"},
		{"ErrAddressNoPrefix", []ContractABI{{Name: "g", Address: strings.TrimPrefix(grantsAddr, "0x"), ABI: ok}}, "not a 0x-prefixed"},
		{"ErrDuplicate", []ContractABI{{Name: "a", Address: grantsAddr, ABI: ok}, {Name: "b", Address: "0x" + strings.ToUpper(grantsAddr[2:]), ABI: ok}}, "configured twice"},
		{"ErrNotJSON", []ContractABI{{Name: "g", Address: grantsAddr, ABI: []byte("function award(address)")}}, "does not parse"},
		{"ErrArtifactWithoutABI", []ContractABI{{Name: "g", Address: grantsAddr, ABI: []byte(`{"bytecode":"0x"}`)}}, "artifact"},
		{"ErrNoFunctions", []ContractABI{{Name: "g", Address: grantsAddr, ABI: []byte(`[{"type":"event","name":"E","inputs":[]}]`)}}, "no functions"},
		{"ErrBadType", []ContractABI{{Name: "g", Address: grantsAddr, ABI: []byte(`[{"type":"function","name":"f","inputs":[{"name":"x","type":"wat"}]}]`)}}, "does not parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewRegistry(tc.cs); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestDescribeCalls: a MultiSend batch is shown call by call, each decoded
// with the configured contract's ABI or a standard one, and calldata that
// nothing decodes exactly (unknown selector, trailing bytes) is opaque.
func TestDescribeCalls(t *testing.T) {
	reg, grants := grantsRegistry(t)
	cat := NewCatalog([]*daoguard.Asset{{Symbol: "USDC", Address: usdcAddr, Decimals: 6}})
	rcpt := common.HexToAddress("0x9f3a11111111111111111111111111111111c0de")
	award := pack(t, grants, "award", rcpt, big.NewInt(5000), "grant #7")
	batch := pack(t, grants, "batch", []struct {
		To  common.Address
		Cap *big.Int
	}{{rcpt, big.NewInt(7)}})
	transfer := transferCalldata(strings.ToLower(rcpt.Hex()), big.NewInt(1_000_000))
	unlimited := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))
	approve := append(append([]byte{0x09, 0x5e, 0xa7, 0xb3}, common.LeftPadBytes(rcpt.Bytes(), 32)...), common.LeftPadBytes(unlimited.Bytes(), 32)...)
	calls := []batchCall{
		{to: usdcAddr, data: transfer},
		{to: usdcAddr, data: approve},
		{to: grantsAddr, data: award},
		{to: grantsAddr, data: batch},
		{to: grantsAddr, data: append(append([]byte{}, award...), 0)}, // one trailing byte
		{to: "0x00000000000000000000000000000000000000c1", data: []byte{0xde, 0xad, 0xbe, 0xef}},
		{to: "0x00000000000000000000000000000000000000c2", value: big.NewInt(3)},
	}
	d := &daoguard.Decoded{Kind: daoguard.KindCall, AccountKind: daoguard.AccountSafe, From: "0x5afe000000000000000000000000000000005afe",
		To: "0x40a2accbd92bca938b02010e17a5b8929b49130d", Data: multiSend(calls), Operation: daoguard.OpDelegateCall}
	got := DescribeCalls(d, cat, reg)
	if len(got) != 1+len(calls) {
		t.Fatalf("%d calls: %+v", len(got), got)
	}
	want := []struct {
		contract, function string
		args               []string
		opaque             bool
	}{
		{"MultiSend", "multiSend(bytes)", nil, false},
		{"USDC (ERC-20)", "transfer(address,uint256)", []string{"to=" + rcpt.Hex(), "amount=1000000"}, false},
		{"USDC (ERC-20)", "approve(address,uint256)", []string{"spender=" + rcpt.Hex(), "amount=" + unlimited.String()}, false},
		{"Grants", "award(address,uint256,string)", []string{"recipient=" + rcpt.Hex(), "amount=5000", `memo="grant #7"`}, false},
		{"Grants", "batch((address,uint96)[])", []string{"items=[(" + rcpt.Hex() + ", 7)]"}, false},
		{"", "", nil, true},
		{"", "", nil, true},
		{"", "", nil, false},
	}
	for i, w := range want {
		c := got[i]
		var args []string
		for _, a := range c.Args {
			args = append(args, a.Name+"="+a.Value)
		}
		if c.Contract != w.contract || c.Function != w.function || c.Opaque != w.opaque || (w.args != nil && strings.Join(args, " ") != strings.Join(w.args, " ")) {
			t.Errorf("call %d: %+v %v, want %+v", i, c, args, w)
		}
		if c.Batched != (i > 0) {
			t.Errorf("call %d: batched %v", i, c.Batched)
		}
	}
	// At a configured address, a function its ABI lacks is opaque (never a
	// standard one by chance), and a function policy classifies is shown
	// with its standard names, whatever the configured ABI calls them.
	erc721M, _ := methodOf("safeTransferFrom(address,address,uint256)")
	erc721Args, _ := erc721M.Inputs.Pack(common.Address{1}, common.Address{2}, big.NewInt(3))
	swapped, err := NewRegistry([]ContractABI{{Name: "Grants", Address: grantsAddr, ABI: []byte(grantsABI)},
		{Name: "USD Coin", Address: usdcAddr, ABI: []byte(`[{"type":"function","name":"transfer","inputs":[{"name":"amount","type":"address"},{"name":"to","type":"uint256"}]}]`)}})
	if err != nil {
		t.Fatal(err)
	}
	d2 := &daoguard.Decoded{Kind: daoguard.KindCall, AccountKind: daoguard.AccountSafe, From: d.From, To: d.To, Operation: daoguard.OpDelegateCall,
		Data: multiSend([]batchCall{{to: grantsAddr, data: append(append([]byte{}, erc721M.ID...), erc721Args...)}, {to: usdcAddr, data: transfer}})}
	got2 := DescribeCalls(d2, cat, swapped)
	if !got2[1].Opaque || got2[1].Contract != "" || got2[2].Contract != "USDC (USD Coin)" || got2[2].Args[0].Name != "to" || got2[2].Args[1].Name != "amount" {
		t.Errorf("%+v", got2)
	}
	if got[0].Operation != daoguard.OpDelegateCall || got[7].Value == nil || got[7].Value.Int().Int64() != 3 || got[6].Selector != "0xdeadbeef" {
		t.Errorf("%+v %+v %+v", got[0], got[6], got[7])
	}
	// The batch's bytes are shown shortened; the calls follow anyway.
	if v := got[0].Args[0].Value; !strings.HasSuffix(v, "bytes)") || len(v) > 2+2*maxArgBytes+20 {
		t.Errorf("multiSend transactions shown as %q", v)
	}
	// A transfer intent has no calls to describe; a broken batch has none
	// either (the decision denies it).
	if DescribeCalls(&daoguard.Decoded{Kind: daoguard.KindTransfer}, cat, reg) != nil {
		t.Error("a transfer intent described")
	}
	d.Data = d.Data[:4+64+20] // the batch claims more than there is
	if c := DescribeCalls(d, cat, reg); c != nil {
		t.Errorf("a truncated batch: %+v", c)
	}
}

type batchCall struct {
	to    string
	value *big.Int
	data  []byte
	op    byte
}

// multiSend encodes multiSend(bytes) over packed transactions.
func multiSend(cs []batchCall) []byte {
	var packed []byte
	for _, c := range cs {
		v := c.value
		if v == nil {
			v = new(big.Int)
		}
		packed = append(packed, c.op)
		packed = append(packed, common.HexToAddress(c.to).Bytes()...)
		packed = append(packed, common.LeftPadBytes(v.Bytes(), 32)...)
		packed = append(packed, common.LeftPadBytes(big.NewInt(int64(len(c.data))).Bytes(), 32)...)
		packed = append(packed, c.data...)
	}
	out := append([]byte{}, selMultiSend[:]...)
	out = append(out, common.LeftPadBytes([]byte{32}, 32)...)
	out = append(out, common.LeftPadBytes(big.NewInt(int64(len(packed))).Bytes(), 32)...)
	out = append(out, packed...)
	return append(out, make([]byte, (32-len(packed)%32)%32)...)
}

// TestOpaqueCalldata: a rule that lets calls run on their own without
// naming a function lets only calldata that a known ABI decodes exactly
// run autonomously; anything else needs approval (OPAQUE_CALLDATA). A rule
// that names the function decodes the calldata itself.
func TestOpaqueCalldata(t *testing.T) {
	src := `version: 1
name: t
groups: {c: {role: r}}
council: {group: c, approvals: 1, timelock: 1h}
rules:
  - name: grants-any
    principal_kinds: [agent]
    actions: [call]
    targets: {addresses: ["` + grantsAddr + `"]}
    tier: autonomous
  - name: poke-named
    principal_kinds: [agent]
    actions: [call]
    targets: {addresses: ["0x00000000000000000000000000000000000000c1"]}
    function: "poke(uint8)"
    tier: autonomous
  - name: subsafe-any
    principal_kinds: [agent]
    actions: [call]
    targets: {addresses: ["0x00000000000000000000000000000000000005af"]}
    tier: autonomous
`
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	reg, grants := grantsRegistry(t)
	// An award to the account itself pays no one else; to another
	// address it does (PAYS_OTHER), whatever a rule naming no function says.
	award := pack(t, grants, "award", common.HexToAddress("0x1000000000000000000000000000000000000001"), big.NewInt(5000), "grant #7")
	awardOther := pack(t, grants, "award", common.HexToAddress("0x9f3a11111111111111111111111111111111c0de"), big.NewInt(5000), "grant #7")
	poke, _ := abi.JSON(strings.NewReader(`[{"type":"function","name":"poke","inputs":[{"name":"n","type":"uint8"}]}]`))
	execM, err := methodOf("execTransaction(address,uint256,bytes,uint8,uint256,uint256,uint256,address,address,bytes)")
	if err != nil {
		t.Fatal(err)
	}
	zero := new(big.Int)
	execArgs, err := execM.Inputs.Pack(common.HexToAddress(grantsAddr), zero, []byte{1, 2, 3, 4}, uint8(1), zero, zero, zero, common.Address{}, common.Address{}, []byte{})
	if err != nil {
		t.Fatal(err)
	}
	execTx := append(append([]byte{}, execM.ID...), execArgs...)
	erc721M, _ := methodOf("safeTransferFrom(address,address,uint256)")
	self := common.HexToAddress("0x1000000000000000000000000000000000000001")
	erc721Args, _ := erc721M.Inputs.Pack(self, self, big.NewInt(3))
	erc721 := append(append([]byte{}, erc721M.ID...), erc721Args...)
	for _, tc := range []struct {
		name     string
		reg      *Registry
		to       string
		data     []byte
		verdict  daoguard.Verdict
		reason   string
		approval bool
	}{
		{"OK_ConfiguredABI", reg, grantsAddr, award, daoguard.VerdictAllow, ReasonRuleMatched, false},
		{"OK_NoCalldata", reg, grantsAddr, nil, daoguard.VerdictAllow, ReasonRuleMatched, false},
		{"ErrConfiguredPaysOther", reg, grantsAddr, awardOther, daoguard.VerdictDeny, ReasonRuleMatched, false},
		{"OK_FunctionNamedInRule", nil, "0x00000000000000000000000000000000000000c1", pack(t, poke, "poke", uint8(3)), daoguard.VerdictAllow, ReasonRuleMatched, false},
		{"ErrNotConfigured", nil, grantsAddr, award, daoguard.VerdictNeedsApproval, ReasonOpaqueCalldata, true},
		{"ErrTrailingByte", reg, grantsAddr, append(append([]byte{}, award...), 1), daoguard.VerdictNeedsApproval, ReasonOpaqueCalldata, true},
		{"ErrUnknownSelector", reg, grantsAddr, []byte{1, 2, 3, 4}, daoguard.VerdictNeedsApproval, ReasonOpaqueCalldata, true},
		{"ErrShortCalldata", reg, grantsAddr, []byte{1, 2}, daoguard.VerdictNeedsApproval, ReasonOpaqueCalldata, true},
		{"ErrTruncatedArgs", reg, grantsAddr, award[:len(award)-32], daoguard.VerdictNeedsApproval, ReasonOpaqueCalldata, true},
		// A standard function at an unconfigured address: shown decoded,
		// but it carries a whole call (here a delegatecall) inside.
		{"ErrExecTransactionOnAnotherSafe", reg, "0x00000000000000000000000000000000000005af", execTx, daoguard.VerdictNeedsApproval, ReasonOpaqueCalldata, true},
		{"ErrConfiguredABILacksSelector", reg, grantsAddr, erc721, daoguard.VerdictNeedsApproval, ReasonOpaqueCalldata, true},
		// A rule naming the function decodes exactly too.
		{"ErrFunctionRuleTrailingByte", nil, "0x00000000000000000000000000000000000000c1", append(pack(t, poke, "poke", uint8(3)), 0), daoguard.VerdictDeny, ReasonNoMatchingRule, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture(t, p)
			in.Contracts = tc.reg
			in.Action = &daoguard.Decoded{Kind: daoguard.KindCall, Account: "ops", AccountKind: daoguard.AccountWallet, From: in.Action.From,
				To: tc.to, Data: tc.data, Operation: daoguard.OpCall}
			res := p.Evaluate(in)
			if res.Decision.Verdict != tc.verdict || res.Decision.Reasons[0].Code != tc.reason {
				t.Fatalf("%s %+v", res.Decision.Verdict, res.Decision.Reasons)
			}
			if tc.approval && (res.Decision.RequiredApprovals != 1 || !strings.Contains(res.Decision.Reasons[1].Detail, "tier approval")) {
				t.Fatalf("%+v", res.Decision)
			}
		})
	}
}

// TestOpaqueOverLimit: a rule's over-limit tier is no way around
// OPAQUE_CALLDATA: an opaque call needs approval under the limit and over it.
func TestOpaqueOverLimit(t *testing.T) {
	p, err := Parse([]byte(`version: 1
name: t
groups: {c: {role: r}}
council: {group: c, approvals: 1, timelock: 1h}
rules:
  - name: capped
    principal_kinds: [agent]
    actions: [call]
    tier: autonomous
    limits:
      windows: [{period: 1h, per: org, max_count: 1}]
    over_limit: autonomous
`))
	if err != nil {
		t.Fatal(err)
	}
	in := fixture(t, p)
	in.Action = &daoguard.Decoded{Kind: daoguard.KindCall, Account: "ops", AccountKind: daoguard.AccountWallet, From: in.Action.From,
		To: "0x00000000000000000000000000000000000000c3", Data: []byte{0xde, 0xad, 0xbe, 0xef}, Operation: daoguard.OpCall}
	for i := range 2 {
		res := p.Evaluate(in)
		opaque := false
		for _, r := range res.Decision.Reasons {
			opaque = opaque || r.Code == ReasonOpaqueCalldata
		}
		if res.Decision.Verdict != daoguard.VerdictNeedsApproval || !opaque {
			t.Fatalf("call %d: %s %+v", i, res.Decision.Verdict, res.Decision.Reasons)
		}
		in.History.(*Ledger).Record(in.Now, in.Principal.ID, res.Flows)
	}
}

// FuzzDescribeCalls: any calldata to any target decodes without panicking,
// and a call shown decoded is one whose decoding re-encodes to its
// calldata.
func FuzzDescribeCalls(f *testing.F) {
	reg, grants := grantsRegistry(f)
	f.Add(grantsAddr, pack(f, grants, "award", common.Address{1}, big.NewInt(5), "x"))
	f.Add(usdcAddr, transferCalldata("0x9f3a11111111111111111111111111111111c0de", big.NewInt(1)))
	f.Add("0x40a2accbd92bca938b02010e17a5b8929b49130d", multiSend([]batchCall{{to: grantsAddr, data: []byte{1, 2, 3, 4}}}))
	f.Add(grantsAddr, []byte{0xde, 0xad})
	cat := NewCatalog([]*daoguard.Asset{{Symbol: "USDC", Address: usdcAddr, Decimals: 6}})
	f.Fuzz(func(t *testing.T, to string, data []byte) {
		if !common.IsHexAddress(to) {
			to = grantsAddr
		}
		to = strings.ToLower(common.HexToAddress(to).Hex())
		d := &daoguard.Decoded{Kind: daoguard.KindCall, AccountKind: daoguard.AccountSafe, From: "0x5afe000000000000000000000000000000005afe", To: to, Data: data, Operation: daoguard.OpCall}
		for _, c := range DescribeCalls(d, cat, reg) {
			// Opaque: nothing shown. Otherwise a call with a selector is
			// shown decoded, and one without calldata has nothing to show.
			if c.Opaque && c.Function != "" || !c.Opaque && (c.Function != "") != (c.Selector != "") {
				t.Fatalf("opaque and decoded disagree: %+v", c)
			}
		}
		if dec := reg.decode(to, data); dec.ok && dec.m != nil {
			again, err := dec.m.Inputs.Pack(dec.args...)
			if err != nil || !bytes.Equal(append(append([]byte{}, dec.m.ID...), again...), data) {
				t.Fatalf("%s decoded inexactly: %x", dec.m.Sig, data)
			}
		}
	})
}

// TestExactDecoding: change any one byte of a valid call, or add one, and
// the call is either opaque or decodes to other arguments: no byte of
// calldata goes unshown (padding, offsets, trailing data).
func TestExactDecoding(t *testing.T) {
	reg, grants := grantsRegistry(t)
	rcpt := common.HexToAddress("0x9f3a11111111111111111111111111111111c0de")
	for _, data := range [][]byte{
		pack(t, grants, "award", rcpt, big.NewInt(5000), "grant #7"),
		pack(t, grants, "batch", []struct {
			To  common.Address
			Cap *big.Int
		}{{rcpt, big.NewInt(7)}}),
		transferCalldata(strings.ToLower(rcpt.Hex()), big.NewInt(1_000_000)),
	} {
		to := grantsAddr
		if bytes.Equal(data[:4], selTransfer[:]) {
			to = usdcAddr
		}
		want := reg.decode(to, data)
		if !want.ok {
			t.Fatalf("%x does not decode", data)
		}
		shown := func(d decoding) string {
			var parts []string
			for _, a := range d.args {
				parts = append(parts, argText(a))
			}
			return d.m.Sig + strings.Join(parts, ",")
		}
		for i := 4; i <= len(data); i++ {
			mutated := append([]byte{}, data...)
			if i == len(data) {
				mutated = append(mutated, 0) // one trailing byte
			} else {
				mutated[i] ^= 0x01
			}
			if got := reg.decode(to, mutated); got.ok && shown(got) == shown(want) {
				t.Fatalf("%s: byte %d changed, still shown as %s", want.m.Sig, i, shown(got))
			}
		}
	}
}

// FuzzPayee: reading payees out of any calldata, through configured ABIs,
// standard functions, tuples, arrays and nested multicalls, never panics
// (Evaluate would turn a panic into a denial and hide it), and what it
// names is another address than the account, in lower-case hex.
func FuzzPayee(f *testing.F) {
	h := func(s string) []byte { b, _ := hex.DecodeString(s); return b }
	const account = "0x1000000000000000000000000000000000000001"
	// redeem(shares, receiver, owner)
	f.Add(h("ba087652" + fmt.Sprintf("%064x", 1000) + strings.Repeat("0", 24) + "a77ac4e700000000000000000000000000000a77" + strings.Repeat("0", 24) + account[2:]))
	// multicall(bytes[]) of one empty call
	f.Add(h("ac9650d8" + fmt.Sprintf("%064x%064x%064x%064x", 32, 1, 32, 0)))
	// award(recipient, amount, memo) at the configured address
	reg, grants := grantsRegistry(f)
	f.Add(pack(f, grants, "award", common.HexToAddress("0x9f3a11111111111111111111111111111111c0de"), big.NewInt(5000), "grant #7"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, target := range []string{grantsAddr, "0x00000000000000000000000000000000000005af"} {
			arg, addr, ok := reg.payee(target, data, account, 0)
			if !ok {
				continue
			}
			if arg == "" || addr == account || len(addr) != 42 || addr != strings.ToLower(addr) {
				t.Fatalf("payee %q %q", arg, addr)
			}
		}
	})
}
