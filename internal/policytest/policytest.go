// Package policytest runs policy test cases: YAML files of inputs and the
// verdicts and reason codes expected, like `opa test`. `daoguard policy
// test DIR` and the golden suite in testdata/ use it.
package policytest

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/policy"
	"github.com/daoguard/daoguard/internal/service"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"go.yaml.in/yaml/v3"
)

// File is one case file: a fixture shared by its cases, and the cases.
type File struct {
	Fixture Fixture `yaml:"fixture"`
	Cases   []Case  `yaml:"cases"`
}

// Fixture is the world a case runs in.
type Fixture struct {
	Now        string                       `yaml:"now"` // RFC 3339
	Principals map[string]PrincipalFixture  `yaml:"principals"`
	Accounts   map[string]AccountFixture    `yaml:"accounts"`
	Assets     map[string]AssetFixture      `yaml:"assets"`
	Prices     map[string][]ReadingFixture  `yaml:"prices"`
	Holdings   map[string]map[string]string `yaml:"holdings"` // account → symbol → display units
	History    []SpendFixture               `yaml:"history"`
	Known      []string                     `yaml:"known"` // counterparties seen before
	// Contracts are configured contracts (daoguard.yaml's contracts), by
	// name: their ABIs decode calls, as in the gateway.
	Contracts map[string]ContractFixture `yaml:"contracts"`
}

type ContractFixture struct {
	Address string `yaml:"address"`
	ABI     string `yaml:"abi"` // the JSON ABI itself
}

type PrincipalFixture struct {
	Kind  string   `yaml:"kind"`
	Roles []string `yaml:"roles"`
}

type AccountFixture struct {
	Address string `yaml:"address"`
	Kind    string `yaml:"kind"` // wallet | safe
}

type AssetFixture struct {
	Address  string `yaml:"address"`
	Decimals int    `yaml:"decimals"`
}

type ReadingFixture struct {
	Source string `yaml:"source"`
	Price  string `yaml:"price"`
	Age    string `yaml:"age"` // how long before now it was observed; negative: in the future
}

// SpendFixture is a past action recorded in the history.
type SpendFixture struct {
	Ago       string        `yaml:"ago"`
	Principal string        `yaml:"principal"`
	Flows     []FlowFixture `yaml:"flows"`
}

type FlowFixture struct {
	Asset  string `yaml:"asset"`
	Amount string `yaml:"amount"` // display units
	USD    string `yaml:"usd"`    // the USD value recorded
	To     string `yaml:"to"`
}

// Case is one input and what it must give.
type Case struct {
	Name      string   `yaml:"name"`
	Principal string   `yaml:"principal"`
	Now       string   `yaml:"now"`
	Action    Action   `yaml:"action"`
	Fixture   *Fixture `yaml:"fixture"` // merged over the file's: maps by key, history and known appended
	// Simulation is what simulating the action on the chain showed; none:
	// no chain (judged on the calldata alone).
	Simulation *SimFixture `yaml:"simulation"`
	Want       Want        `yaml:"want"`
}

// SimFixture is a simulation's outcome, in display units.
type SimFixture struct {
	Unavailable string             `yaml:"unavailable"` // the simulation could not run, and why
	Reverts     string             `yaml:"reverts"`     // the action reverts, with this reason
	Spent       map[string]string  `yaml:"spent"`       // symbol → how much left the account
	Allowances  []AllowanceFixture `yaml:"allowances"`  // allowances afterwards
}

type AllowanceFixture struct {
	Token   string `yaml:"token"`
	Spender string `yaml:"spender"`
	Amount  string `yaml:"amount"` // base units
}

// Action is an intent as submitted, plus helpers that build calldata.
type Action struct {
	daoguard.Intent `yaml:",inline"`
	Function        string      `yaml:"function"` // encodes data from function and args
	Args            []any       `yaml:"args"`
	Batch           []BatchCall `yaml:"batch"` // encodes data as multiSend(bytes)
}

type BatchCall struct {
	Operation string `yaml:"operation"`
	To        string `yaml:"to"`
	Value     string `yaml:"value"`
	Function  string `yaml:"function"`
	Args      []any  `yaml:"args"`
	Data      string `yaml:"data"`
}

// Want is the expected outcome. Reasons must all appear; NotReasons must
// not. An input the decoder refuses is expected with Error (its code).
type Want struct {
	Verdict    string   `yaml:"verdict"`
	Tier       string   `yaml:"tier"`
	Reasons    []string `yaml:"reasons"`
	NotReasons []string `yaml:"not_reasons"`
	Approvals  int      `yaml:"approvals"`
	Timelock   string   `yaml:"timelock"`
	WouldPass  string   `yaml:"would_pass"` // a substring of some reason's would_pass
	Detail     string   `yaml:"detail"`     // a substring of some reason's detail
	Error      string   `yaml:"error"`
}

// Outcome is one case's result.
type Outcome struct {
	File, Name string
	Pass       bool
	Why        string
	Decision   daoguard.Decision
}

// Report is a run over a directory.
type Report struct {
	Outcomes                   []Outcome
	Allow, NeedsApproval, Deny int
}

// Failed counts the cases that did not pass.
func (r *Report) Failed() int {
	n := 0
	for _, o := range r.Outcomes {
		if !o.Pass {
			n++
		}
	}
	return n
}

// Run runs every suite under dir: each directory holding a policy.yaml,
// with its *_test.yaml case files.
func Run(dir string) (*Report, error) {
	var suites []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == "policy.yaml" {
			suites = append(suites, filepath.Dir(path))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(suites) == 0 {
		return nil, fmt.Errorf("no policy.yaml under %s", dir)
	}
	rep := &Report{}
	for _, s := range suites {
		if err := runSuite(s, rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func runSuite(dir string, rep *Report) error {
	src, err := os.ReadFile(filepath.Join(dir, "policy.yaml"))
	if err != nil {
		return err
	}
	p, err := policy.Parse(src)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, "policy.yaml"), err)
	}
	// fixture.yaml, if present, is the base every case file's fixture is
	// merged over.
	var base Fixture
	if raw, err := os.ReadFile(filepath.Join(dir, "fixture.yaml")); err == nil {
		if err := strictYAML(raw, &base); err != nil {
			return fmt.Errorf("%s: %v", filepath.Join(dir, "fixture.yaml"), err)
		}
	} else if !os.IsNotExist(err) {
		return err
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*_test.yaml"))
	sort.Strings(files)
	if len(files) == 0 {
		return fmt.Errorf("%s: no *_test.yaml case files", dir)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var cf File
		if err := strictYAML(raw, &cf); err != nil {
			return fmt.Errorf("%s: %v", f, err)
		}
		if len(cf.Cases) == 0 {
			return fmt.Errorf("%s: no cases", f)
		}
		fx := merge(&base, &cf.Fixture)
		for _, c := range cf.Cases {
			o := runCase(p, fx, c)
			o.File = f
			rep.Outcomes = append(rep.Outcomes, o)
			switch o.Decision.Verdict {
			case daoguard.VerdictAllow:
				rep.Allow++
			case daoguard.VerdictNeedsApproval:
				rep.NeedsApproval++
			default:
				rep.Deny++
			}
		}
	}
	return nil
}

func runCase(p *policy.Policy, base *Fixture, c Case) Outcome {
	o := Outcome{Name: c.Name}
	fail := func(format string, args ...any) Outcome {
		o.Why = fmt.Sprintf(format, args...)
		return o
	}
	fx := merge(base, c.Fixture)
	if c.Now != "" {
		fx.Now = c.Now
	}
	in, err := build(fx, c)
	if err != nil {
		if c.Want.Error != "" && daoguard.ErrorCode(err) == daoguard.Code(c.Want.Error) {
			o.Pass = true
			o.Decision.Verdict = daoguard.VerdictDeny
			return o
		}
		return fail("%v", err)
	}
	if c.Want.Error != "" {
		return fail("want error %s, got a decision", c.Want.Error)
	}
	res := p.Evaluate(in)
	d := res.Decision
	o.Decision = d
	if got := d.Verdict.String(); got != c.Want.Verdict {
		return fail("verdict %s, want %s (%s)", got, c.Want.Verdict, codes(d))
	}
	if c.Want.Tier != "" && d.Tier != c.Want.Tier {
		return fail("tier %s, want %s (%s)", d.Tier, c.Want.Tier, codes(d))
	}
	have := map[string]bool{}
	for _, r := range d.Reasons {
		have[r.Code] = true
	}
	for _, want := range c.Want.Reasons {
		if !have[want] {
			return fail("reason %s missing (%s)", want, codes(d))
		}
	}
	for _, not := range c.Want.NotReasons {
		if have[not] {
			return fail("reason %s present (%s)", not, codes(d))
		}
	}
	if c.Want.Approvals != 0 && d.RequiredApprovals != c.Want.Approvals {
		return fail("%d approvals, want %d", d.RequiredApprovals, c.Want.Approvals)
	}
	if c.Want.Timelock != "" {
		tl, err := time.ParseDuration(c.Want.Timelock)
		if err != nil || tl != d.Timelock {
			return fail("timelock %s, want %s", d.Timelock, c.Want.Timelock)
		}
	}
	if c.Want.WouldPass != "" && !slices.ContainsFunc(d.Reasons, func(r daoguard.Reason) bool { return strings.Contains(r.WouldPass, c.Want.WouldPass) }) {
		return fail("no reason's would_pass contains %q (%s)", c.Want.WouldPass, describe(d))
	}
	if c.Want.Detail != "" && !slices.ContainsFunc(d.Reasons, func(r daoguard.Reason) bool { return strings.Contains(r.Detail, c.Want.Detail) }) {
		return fail("no reason's detail contains %q (%s)", c.Want.Detail, describe(d))
	}
	o.Pass = true
	return o
}

func strictYAML(raw []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	return dec.Decode(v)
}

func codes(d daoguard.Decision) string {
	var cs []string
	for _, r := range d.Reasons {
		cs = append(cs, r.Code)
	}
	return strings.Join(cs, ", ")
}

func describe(d daoguard.Decision) string {
	var cs []string
	for _, r := range d.Reasons {
		s := r.Code
		if r.Detail != "" {
			s += ": " + r.Detail
		}
		if r.WouldPass != "" {
			s += " [would pass: " + r.WouldPass + "]"
		}
		cs = append(cs, s)
	}
	return strings.Join(cs, " | ")
}

func merge(base, over *Fixture) *Fixture {
	out := *base
	if over == nil {
		return &out
	}
	cp := func(dst, src any) {
		dv, sv := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src)
		if sv.Len() == 0 {
			return
		}
		m := reflect.MakeMap(dv.Type())
		for _, k := range dv.MapKeys() {
			m.SetMapIndex(k, dv.MapIndex(k))
		}
		for _, k := range sv.MapKeys() {
			m.SetMapIndex(k, sv.MapIndex(k))
		}
		dv.Set(m)
	}
	cp(&out.Principals, over.Principals)
	cp(&out.Accounts, over.Accounts)
	cp(&out.Assets, over.Assets)
	cp(&out.Prices, over.Prices)
	cp(&out.Holdings, over.Holdings)
	cp(&out.Contracts, over.Contracts)
	out.History = append(slices.Clip(base.History), over.History...)
	out.Known = append(slices.Clip(base.Known), over.Known...)
	if over.Now != "" {
		out.Now = over.Now
	}
	return &out
}

// fixtureCatalog resolves names for service.Decode, so that cases go
// through exactly the validation the API applies.
type fixtureCatalog struct {
	accounts map[string]*daoguard.Account
	assets   map[string]*daoguard.Asset
}

func (f *fixtureCatalog) Account(_ context.Context, _, name string) (*daoguard.Account, error) {
	if a, ok := f.accounts[name]; ok {
		return a, nil
	}
	return nil, daoguard.FieldError(daoguard.CodeUnknownAccount, "account", "no account %q", name)
}

func (f *fixtureCatalog) Asset(_ context.Context, _, sym string) (*daoguard.Asset, error) {
	if a, ok := f.assets[sym]; ok {
		return a, nil
	}
	return nil, daoguard.FieldError(daoguard.CodeUnknownAsset, "asset", "no asset %q", sym)
}

func build(fx *Fixture, c Case) (*policy.Input, error) {
	now, err := time.Parse(time.RFC3339, fx.Now)
	if err != nil {
		return nil, fmt.Errorf("fixture now %q: %v", fx.Now, err)
	}
	pf, ok := fx.Principals[c.Principal]
	if !ok {
		return nil, fmt.Errorf("unknown principal %q", c.Principal)
	}
	kind, err := daoguard.ParsePrincipalKind(pf.Kind)
	if err != nil {
		return nil, err
	}
	pr := &daoguard.Principal{ID: c.Principal, Kind: kind, Roles: pf.Roles, Autonomy: daoguard.AutonomyAutonomous}
	cat := &fixtureCatalog{accounts: map[string]*daoguard.Account{}, assets: map[string]*daoguard.Asset{}}
	for name, a := range fx.Accounts {
		k := daoguard.AccountWallet
		if a.Kind == "safe" {
			k = daoguard.AccountSafe
		}
		cat.accounts[name] = &daoguard.Account{Name: name, ChainID: 1, Address: strings.ToLower(a.Address), Kind: k}
	}
	var assets []*daoguard.Asset
	for sym, a := range fx.Assets {
		as := &daoguard.Asset{Symbol: sym, ChainID: 1, Address: strings.ToLower(a.Address), Decimals: a.Decimals}
		cat.assets[sym] = as
		assets = append(assets, as)
	}
	intent := c.Action.Intent
	if c.Action.Function != "" {
		data, err := encodeCall(c.Action.Function, c.Action.Args)
		if err != nil {
			return nil, fmt.Errorf("action: %v", err)
		}
		intent.Data = "0x" + hex.EncodeToString(data)
	}
	if len(c.Action.Batch) > 0 {
		data, err := encodeBatch(c.Action.Batch)
		if err != nil {
			return nil, fmt.Errorf("batch: %v", err)
		}
		intent.Data = "0x" + hex.EncodeToString(data)
	}
	d, err := service.Decode(context.Background(), cat, "", intent)
	if err != nil {
		return nil, err
	}
	if d.Simulation, err = simulation(c.Simulation, cat.assets); err != nil {
		return nil, fmt.Errorf("simulation: %v", err)
	}
	var contracts []policy.ContractABI
	for name, c := range fx.Contracts {
		contracts = append(contracts, policy.ContractABI{Name: name, Address: c.Address, ABI: []byte(c.ABI)})
	}
	reg, err := policy.NewRegistry(contracts)
	if err != nil {
		return nil, fmt.Errorf("contracts: %v", err)
	}
	quotes, err := quotesOf(fx, now)
	if err != nil {
		return nil, err
	}
	in := &policy.Input{Now: now, Principal: pr, Action: &d, Catalog: policy.NewCatalog(assets), Prices: quotes, Contracts: reg}
	balances := func(account string) (map[string]*big.Int, error) {
		out := map[string]*big.Int{}
		for sym, v := range fx.Holdings[account] {
			a, ok := cat.assets[sym]
			if !ok {
				return nil, fmt.Errorf("holdings: unknown asset %s", sym)
			}
			amt, err := daoguard.ParseAmount(v, a.Decimals)
			if err != nil {
				return nil, err
			}
			out[sym] = amt
		}
		return out, nil
	}
	if in.Holdings, err = balances(d.Account); err != nil {
		return nil, err
	}
	// The fixture's other accounts whose tokens the action pulls, as the
	// gateway finds them among the organisation's accounts.
	holders, _ := policy.Holders(&d, in.Catalog)
	for _, acc := range cat.accounts {
		if !slices.Contains(holders, acc.Address) {
			continue
		}
		if in.Owners == nil {
			in.Owners = map[string]*policy.Owner{}
		}
		o := &policy.Owner{Name: acc.Name, Safe: acc.Kind == daoguard.AccountSafe}
		if o.Holdings, err = balances(acc.Name); err != nil {
			return nil, err
		}
		in.Owners[acc.Address] = o
	}
	led := policy.NewLedger(policy.DefaultLookAlikeDigits, policy.DefaultLookAlikeDigits)
	hist := slices.Clone(fx.History)
	// Record oldest first, as a live ledger would.
	ago := func(s SpendFixture) time.Duration { d, _ := time.ParseDuration(s.Ago); return d }
	sort.SliceStable(hist, func(i, j int) bool { return ago(hist[i]) > ago(hist[j]) })
	for _, h := range hist {
		a, err := time.ParseDuration(h.Ago)
		if err != nil {
			return nil, fmt.Errorf("history ago %q: %v", h.Ago, err)
		}
		var fl []policy.Flow
		for _, f := range h.Flows {
			as, ok := cat.assets[f.Asset]
			if !ok {
				return nil, fmt.Errorf("history: unknown asset %s", f.Asset)
			}
			amt, err := daoguard.ParseAmount(f.Amount, as.Decimals)
			if err != nil {
				return nil, err
			}
			usd := int64(-1)
			if f.USD != "" {
				if usd, err = policy.ParseUSD(f.USD); err != nil {
					return nil, err
				}
			}
			fl = append(fl, policy.Flow{Asset: f.Asset, Amount: amt, USD: usd, To: strings.ToLower(f.To)})
		}
		who := policy.Who{ID: h.Principal}
		if pf, ok := fx.Principals[h.Principal]; ok { // the shared totals the ceilings bound
			who.Agent, who.Roles = pf.Kind == "agent", pf.Roles
		}
		led.RecordFor(now.Add(-a), who, fl)
	}
	for _, k := range fx.Known {
		led.AddKnown(strings.ToLower(k))
	}
	in.History = led
	return in, nil
}

// encodeCall ABI-encodes a call from its signature and string arguments.
func encodeCall(sig string, args []any) ([]byte, error) {
	m, err := policy.ParseSelector(sig)
	if err != nil {
		return nil, err
	}
	var as abi.Arguments
	for _, in := range m.Inputs {
		t, err := abi.NewType(in.Type, "", in.Components)
		if err != nil {
			return nil, err
		}
		as = append(as, abi.Argument{Type: t})
	}
	if len(args) != len(as) {
		return nil, fmt.Errorf("%s takes %d arguments, got %d", sig, len(as), len(args))
	}
	vals := make([]any, len(args))
	for i, a := range args {
		v, err := goValue(as[i].Type, a)
		if err != nil {
			return nil, fmt.Errorf("argument %d: %v", i, err)
		}
		vals[i] = v
	}
	packed, err := as.Pack(vals...)
	if err != nil {
		return nil, err
	}
	id := abi.NewMethod(m.Name, m.Name, abi.Function, "", false, false, as, nil).ID
	return append(id, packed...), nil
}

// goValue converts a YAML value to the Go type abi.Pack wants for t.
func goValue(t abi.Type, v any) (any, error) {
	switch t.T {
	case abi.SliceTy, abi.ArrayTy:
		list, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("want a list for %s", t)
		}
		out := reflect.MakeSlice(reflect.SliceOf(t.Elem.GetType()), 0, len(list))
		for _, e := range list {
			ev, err := goValue(*t.Elem, e)
			if err != nil {
				return nil, err
			}
			out = reflect.Append(out, reflect.ValueOf(ev))
		}
		if t.T == abi.ArrayTy {
			arr := reflect.New(t.GetType()).Elem()
			reflect.Copy(arr, out)
			return arr.Interface(), nil
		}
		return out.Interface(), nil
	case abi.TupleTy:
		list, ok := v.([]any)
		if !ok || len(list) != len(t.TupleElems) {
			return nil, fmt.Errorf("want a list of %d components for %s", len(t.TupleElems), t)
		}
		st := reflect.New(t.GetType()).Elem()
		for i, e := range list {
			ev, err := goValue(*t.TupleElems[i], e)
			if err != nil {
				return nil, err
			}
			st.Field(i).Set(reflect.ValueOf(ev))
		}
		return st.Interface(), nil
	}
	s := fmt.Sprint(v)
	switch t.T {
	case abi.AddressTy:
		if !common.IsHexAddress(s) {
			return nil, fmt.Errorf("%q is not an address", s)
		}
		return common.HexToAddress(s), nil
	case abi.UintTy, abi.IntTy:
		n, ok := new(big.Int).SetString(s, 0)
		if !ok {
			return nil, fmt.Errorf("%q is not an integer", s)
		}
		gt := t.GetType()
		if gt == reflect.TypeOf((*big.Int)(nil)) {
			return n, nil
		}
		rv := reflect.New(gt).Elem()
		if t.T == abi.UintTy {
			rv.SetUint(n.Uint64())
		} else {
			rv.SetInt(n.Int64())
		}
		return rv.Interface(), nil
	case abi.BoolTy:
		return s == "true", nil
	case abi.StringTy:
		return s, nil
	case abi.BytesTy, abi.FixedBytesTy:
		b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
		if err != nil {
			return nil, err
		}
		if t.T == abi.BytesTy {
			return b, nil
		}
		arr := reflect.New(t.GetType()).Elem()
		reflect.Copy(arr, reflect.ValueOf(b))
		return arr.Interface(), nil
	}
	return nil, fmt.Errorf("type %s is not supported in test cases (write data as hex)", t)
}

// encodeBatch builds multiSend(bytes) calldata from its transactions.
func encodeBatch(calls []BatchCall) ([]byte, error) {
	var packed []byte
	for i, c := range calls {
		var op byte
		switch c.Operation {
		case "", "call":
		case "delegatecall":
			op = 1
		default:
			return nil, fmt.Errorf("call %d: operation %q", i, c.Operation)
		}
		if !common.IsHexAddress(c.To) {
			return nil, fmt.Errorf("call %d: to %q", i, c.To)
		}
		value := new(big.Int)
		if c.Value != "" {
			if _, ok := value.SetString(c.Value, 10); !ok {
				return nil, fmt.Errorf("call %d: value %q", i, c.Value)
			}
		}
		var data []byte
		var err error
		switch {
		case c.Function != "":
			data, err = encodeCall(c.Function, c.Args)
		case c.Data != "":
			data, err = hex.DecodeString(strings.TrimPrefix(c.Data, "0x"))
		}
		if err != nil {
			return nil, fmt.Errorf("call %d: %v", i, err)
		}
		packed = append(packed, op)
		packed = append(packed, common.HexToAddress(c.To).Bytes()...)
		packed = append(packed, common.LeftPadBytes(value.Bytes(), 32)...)
		packed = append(packed, common.LeftPadBytes(big.NewInt(int64(len(data))).Bytes(), 32)...)
		packed = append(packed, data...)
	}
	return encodeCall("multiSend(bytes)", []any{"0x" + hex.EncodeToString(packed)})
}

// simulation builds the Simulation a case states.
func simulation(f *SimFixture, assets map[string]*daoguard.Asset) (*daoguard.Simulation, error) {
	if f == nil {
		return nil, nil
	}
	s := &daoguard.Simulation{Block: 1, Success: f.Reverts == "", Revert: f.Reverts, Error: f.Unavailable}
	if f.Unavailable != "" {
		s.Success = false
	}
	for _, sym := range slices.Sorted(maps.Keys(f.Spent)) {
		a, ok := assets[sym]
		if !ok {
			return nil, fmt.Errorf("spent: unknown asset %s", sym)
		}
		amt, err := daoguard.ParseAmount(f.Spent[sym], a.Decimals)
		if err != nil {
			return nil, err
		}
		// Any balance will do: only the fall is judged.
		before := new(big.Int).Lsh(big.NewInt(1), 200)
		s.Changes = append(s.Changes, daoguard.BalanceChange{Asset: sym, Token: a.Address, Before: daoguard.NewBigInt(before), After: daoguard.NewBigInt(new(big.Int).Sub(before, amt))})
	}
	for _, al := range f.Allowances {
		amt, err := daoguard.ParseBaseUnits(al.Amount)
		if err != nil {
			return nil, err
		}
		s.Allowances = append(s.Allowances, daoguard.Allowance{Token: strings.ToLower(al.Token), Spender: strings.ToLower(al.Spender), Amount: daoguard.NewBigInt(amt)})
	}
	return s, nil
}

// World loads a suite's policy and fixture (dir/policy.yaml and
// dir/fixture.yaml) as the world bounds are computed in: its principals,
// catalogue, holdings and the prices the fixture's readings give.
func World(dir string) (*policy.Policy, *policy.World, error) {
	src, err := os.ReadFile(filepath.Join(dir, "policy.yaml"))
	if err != nil {
		return nil, nil, err
	}
	p, err := policy.Parse(src)
	if err != nil {
		return nil, nil, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, "fixture.yaml"))
	if err != nil {
		return nil, nil, err
	}
	var fx Fixture
	if err := strictYAML(raw, &fx); err != nil {
		return nil, nil, fmt.Errorf("%s: %v", filepath.Join(dir, "fixture.yaml"), err)
	}
	w, err := world(p, &fx)
	return p, w, err
}

func world(p *policy.Policy, fx *Fixture) (*policy.World, error) {
	now, err := time.Parse(time.RFC3339, fx.Now)
	if err != nil {
		return nil, fmt.Errorf("fixture now %q: %v", fx.Now, err)
	}
	w := &policy.World{Holdings: map[string]map[string]*big.Int{}}
	ids := make([]string, 0, len(fx.Principals))
	for id := range fx.Principals {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		pf := fx.Principals[id]
		kind, err := daoguard.ParsePrincipalKind(pf.Kind)
		if err != nil {
			return nil, err
		}
		w.Principals = append(w.Principals, &daoguard.Principal{ID: id, Name: id, Kind: kind, Roles: pf.Roles, Autonomy: daoguard.AutonomyAutonomous})
	}
	assets := map[string]*daoguard.Asset{}
	var list []*daoguard.Asset
	for sym, a := range fx.Assets {
		as := &daoguard.Asset{Symbol: sym, ChainID: 1, Address: strings.ToLower(a.Address), Decimals: a.Decimals}
		assets[sym] = as
		list = append(list, as)
	}
	w.Catalog = policy.NewCatalog(list)
	for name := range fx.Accounts {
		w.Accounts = append(w.Accounts, name)
	}
	sort.Strings(w.Accounts)
	for acc, bal := range fx.Holdings {
		w.Holdings[acc] = map[string]*big.Int{}
		for sym, v := range bal {
			a, ok := assets[sym]
			if !ok {
				return nil, fmt.Errorf("holdings: unknown asset %s", sym)
			}
			amt, err := daoguard.ParseAmount(v, a.Decimals)
			if err != nil {
				return nil, err
			}
			w.Holdings[acc][sym] = amt
		}
	}
	quotes, err := quotesOf(fx, now)
	if err != nil {
		return nil, err
	}
	w.Prices = p.TrustedPrices(quotes, now)
	return w, nil
}

// WorldOf is World for a policy already parsed and a fixture file.
func WorldOf(p *policy.Policy, fixture string) (*policy.World, error) {
	raw, err := os.ReadFile(fixture)
	if err != nil {
		return nil, err
	}
	var fx Fixture
	if err := strictYAML(raw, &fx); err != nil {
		return nil, fmt.Errorf("%s: %v", fixture, err)
	}
	return world(p, &fx)
}

// quotesOf turns the fixture's price readings into quotes, each reading
// observed its age before now.
func quotesOf(fx *Fixture, now time.Time) (map[string]*policy.Quotes, error) {
	quotes := map[string]*policy.Quotes{}
	for sym, rs := range fx.Prices {
		var readings []policy.Reading
		for _, r := range rs {
			pr, err := policy.ParsePrice(r.Price)
			if err != nil {
				return nil, err
			}
			age, err := time.ParseDuration(r.Age)
			if err != nil {
				return nil, fmt.Errorf("price age %q: %v", r.Age, err)
			}
			readings = append(readings, policy.Reading{Source: r.Source, Price: pr, At: now.Add(-age)})
		}
		quotes[sym] = policy.NewQuotes(readings...)
	}
	return quotes, nil
}
