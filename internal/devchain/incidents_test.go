package devchain_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/anomaly"
	"github.com/daoguard/daoguard/internal/decider"
	"github.com/daoguard/daoguard/internal/devchain"
	"github.com/daoguard/daoguard/internal/evm"
	"github.com/daoguard/daoguard/internal/evm/evmtest"
	"github.com/daoguard/daoguard/internal/policy"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"go.yaml.in/yaml/v3"
)

// An incident is one public loss of a DAO or an AI agent, replayed as the
// attacker's moves through the real pipeline (decode, simulate on the
// in-process chain, screen, policy, approvals, timelock, execution) under
// the dev environment's policy (or the template the incident names), with
// what daoguard must do at each step. Pending incidents say why; they are listed, not skipped in silence.
type incident struct {
	Name    string `yaml:"name"`
	When    string `yaml:"when"`
	What    string `yaml:"what"`
	Source  string `yaml:"source"`
	Answer  string `yaml:"answer"`  // the mechanism that stops it
	Pending string `yaml:"pending"` // why it is not replayed yet
	Policy  string `yaml:"policy"`  // a policy template (text/template over devchain.Env); default: the dev policy
	Steps   []step `yaml:"steps"`
}

type step struct {
	Name    string  `yaml:"name"`
	Submit  *submit `yaml:"submit"`
	Approve bool    `yaml:"approve"` // both humans approve the last action (with Safe signatures when it is a Safe's)
	Veto    bool    `yaml:"veto"`    // human1 vetoes the last action
	Run     bool    `yaml:"run"`     // time passes the timelock; what is due executes
	Chain   string  `yaml:"chain"`   // deploy_proxy | upgrade_proxy: the world changes
	// Prices sets the price sources' readings, now: asset → one price per
	// source (sources a, b, …), in USD.
	Prices map[string][]string `yaml:"prices"`
	Expect *expect             `yaml:"expect"`
}

type submit struct {
	As        string `yaml:"as"` // agent (default), human1, human2
	Account   string `yaml:"account"`
	Kind      string `yaml:"kind"`
	Asset     string `yaml:"asset"`
	To        string `yaml:"to"`
	Amount    string `yaml:"amount"`
	Value     string `yaml:"value"`
	Rationale string `yaml:"rationale"`
	Operation string `yaml:"operation"`
	Data      string `yaml:"data"`
	Call      *call  `yaml:"call"`      // the data: one call by its contract's ABI
	MultiSend []call `yaml:"multisend"` // the data: a MultiSend batch (to the MultiSend contract, delegatecall)
	Repeat    int    `yaml:"repeat"`    // submit this many times; expect judges the last
	Parallel  int    `yaml:"parallel"`  // submit this many at once; expect judges one of them, count all
}

type call struct {
	Contract string   `yaml:"contract"` // token | safe | proxy
	To       string   `yaml:"to"`       // default: the contract's address
	Method   string   `yaml:"method"`
	Args     []string `yaml:"args"`
}

type expect struct {
	State   string   `yaml:"state"`
	Reasons []string `yaml:"reasons"` // each must be among the decision's
	Result  string   `yaml:"result"`  // the execution result's code
	NoTx    bool     `yaml:"no_tx"`   // nothing was sent: the result has no transaction hash
	Detail  string   `yaml:"detail"`  // a substring of the first expected reason's detail ($names resolved)
	Error   string   `yaml:"error"`   // the submission is refused with this code
	// Count is how many actions of the last submit step (all its repeats
	// or parallel submissions) are in each state, now.
	Count map[string]int `yaml:"count"`
	// Received is what addresses have received since the replay began,
	// on chain: address → asset → amount in display units, exactly.
	Received map[string]map[string]string `yaml:"received"`
}

// incidentsDir holds the replays.
const incidentsDir = "../../testdata/incidents"

// The incidents issue 8 names: each has its file, replayed or pending.
var wantIncidents = []string{
	"aixbt", "audius", "beanstalk", "build-finance", "burst-before-detection", "bybit", "compound-289", "eth-salami",
	"freysa", "lobstar-wilde", "mango", "parallel-drain", "socket", "tornado-cash", "transfer-from-treasury", "wbtc-poisoning",
}

func loadIncidents(t *testing.T) map[string]incident {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(incidentsDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]incident{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var in incident
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true) // a misspelt expectation must not pass silently
		if err := dec.Decode(&in); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if in.Name == "" || in.What == "" || in.Answer == "" || (in.Pending == "") == (len(in.Steps) == 0) {
			t.Fatalf("%s: needs name, what, answer, and either steps or the reason it is pending", f)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".yaml")] = in
	}
	return out
}

// TestIncidents replays every incident that is not pending, each on a
// chain and store of its own.
func TestIncidents(t *testing.T) {
	incidents := loadIncidents(t)
	var names []string
	for n := range incidents {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(names, wantIncidents) {
		t.Fatalf("incident files %v, want %v", names, wantIncidents)
	}
	for _, n := range names {
		in := incidents[n]
		if in.Pending != "" {
			// Listed as SKIP with the reason (go test -v, -json), never
			// left out in silence.
			t.Run(n, func(t *testing.T) { t.Skip("pending: " + in.Pending) })
			continue
		}
		var tmpl *template.Template // nil: the dev environment's own policy
		if in.Policy != "" {
			var err error
			if tmpl, err = template.ParseFiles(filepath.Join(incidentsDir, in.Policy)); err != nil {
				t.Fatal(err)
			}
		}
		t.Run(n, func(t *testing.T) { replay(t, in, tmpl) })
	}
}

func replay(t *testing.T, in incident, tmpl *template.Template) {
	ctx := context.Background()
	chain, err := evm.NewSimChain()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chain.Close() })
	w := newWorld(t, filepath.Join(t.TempDir(), "data.db"), chain, chain.Client, newKeyring(t), false)
	w.provisionWith(func(env *devchain.Env) string {
		if tmpl == nil {
			return env.Policy()
		}
		var b strings.Builder
		if err := tmpl.Execute(&b, env); err != nil {
			t.Fatal(err)
		}
		return b.String()
	})
	prices := staticPrices{}
	w.svc.Decider.(*decider.Policy).Prices = prices
	// Every control on, as serve runs: the anomaly breaker too.
	breaker := anomaly.DefaultConfig()
	w.svc.Anomaly = &breaker
	safeArt, err := evm.LoadArtifact("Safe")
	if err != nil {
		t.Fatal(err)
	}
	proxyArt := evmtest.Artifact(t, "DevProxy")
	var proxy common.Address
	rcpt := w.env.Recipients[0]
	// A look-alike of the first recipient: the same first and last four
	// hex digits, the middle the attacker's own.
	h := strings.ToLower(rcpt.Hex())
	lookalike := common.HexToAddress(h[:6] + strings.Repeat("e", 32) + h[38:])
	vars := map[string]string{
		"$recipient": rcpt.Hex(), "$recipient2": w.env.Recipients[1].Hex(),
		"$attacker": "0x000000000000000000000000000000000000dEaD", "$lookalike": lookalike.Hex(),
		"$safe": w.env.Contracts.Safe.Hex(), "$token": w.env.Contracts.Token.Hex(), "$ops": common.HexToAddress(w.env.Ops.Address).Hex(),
		"$multisend": w.env.Contracts.MultiSend.Hex(),
		"$max":       new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1)).String(),
	}
	resolve := func(s string) string {
		if s == "$proxy" {
			return proxy.Hex()
		}
		if v, ok := vars[s]; ok {
			return v
		}
		return s
	}
	artifact := func(c string) (*evm.Artifact, common.Address) {
		switch c {
		case "token":
			return w.token, w.env.Contracts.Token
		case "safe":
			return safeArt, w.env.Contracts.Safe
		case "proxy":
			return proxyArt, proxy
		}
		t.Fatalf("unknown contract %q", c)
		return nil, common.Address{}
	}
	pack := func(c call) (common.Address, []byte) {
		art, at := artifact(c.Contract)
		if c.To != "" {
			at = common.HexToAddress(resolve(c.To))
		}
		m, ok := art.ABI.Methods[c.Method]
		if !ok || len(m.Inputs) != len(c.Args) {
			t.Fatalf("%s.%s with %d args: no such method", c.Contract, c.Method, len(c.Args))
		}
		args := make([]any, len(c.Args))
		for i, a := range c.Args {
			args[i] = abiArg(t, resolve(a), m.Inputs[i].Type)
		}
		data, err := art.ABI.Pack(c.Method, args...)
		if err != nil {
			t.Fatal(err)
		}
		return at, data
	}
	principal := map[string]string{"": w.agent, "agent": w.agent, "human1": w.humans[0], "human2": w.humans[1]}
	var last *daoguard.Action
	var batch []*daoguard.Action // the last submit step's actions
	start := map[string]*big.Int{}
	for _, a := range []common.Address{rcpt, w.env.Recipients[1], common.HexToAddress(vars["$attacker"])} {
		for _, asset := range []string{"ETH", "USDC"} {
			start[a.Hex()+asset] = w.balance(asset, a)
		}
	}
	for i, st := range in.Steps {
		label := fmt.Sprintf("step %d (%s)", i+1, st.Name)
		actions := 0
		for _, on := range []bool{st.Submit != nil, st.Approve, st.Veto, st.Run, st.Chain != "", st.Prices != nil} {
			if on {
				actions++
			}
		}
		if actions != 1 {
			t.Fatalf("%s: a step does exactly one thing (submit, approve, veto, run, chain or prices), not %d", label, actions)
		}
		if (st.Approve || st.Veto) && last == nil {
			t.Fatalf("%s: no action submitted yet", label)
		}
		if st.Expect != nil && (st.Chain != "" || st.Prices != nil) {
			t.Fatalf("%s: chain and prices steps change the world; expect goes on the step that acts", label)
		}
		var err error
		switch {
		case st.Submit != nil:
			s := st.Submit
			intent := daoguard.Intent{Account: s.Account, Kind: s.Kind, Asset: s.Asset, To: resolve(s.To), Amount: s.Amount, Value: s.Value,
				Rationale: s.Rationale, Operation: s.Operation, Data: s.Data}
			if s.Call != nil {
				to, data := pack(*s.Call)
				if intent.To == "" {
					intent.To = to.Hex()
				}
				intent.Data = hexutil.Encode(data)
			}
			if len(s.MultiSend) > 0 {
				var batch []evm.TxCall
				for _, c := range s.MultiSend {
					to, data := pack(c)
					batch = append(batch, evm.TxCall{To: to, Data: data})
				}
				intent.To, intent.Operation, intent.Data = w.env.Contracts.MultiSend.Hex(), "delegatecall", hexutil.Encode(evm.PackMultiSend(batch...))
			}
			batch = nil
			if s.Parallel > 0 {
				if s.Repeat > 0 {
					t.Fatalf("%s: repeat or parallel, not both", label)
				}
				if err = w.hold.Poll(ctx); err != nil {
					t.Fatal(err)
				}
				batch = make([]*daoguard.Action, s.Parallel)
				errs := make([]error, s.Parallel)
				var wg sync.WaitGroup
				for k := range s.Parallel {
					wg.Add(1)
					go func() {
						defer wg.Done()
						batch[k], errs[k] = w.svc.Submit(ctx, principal[s.As], "", intent)
					}()
				}
				wg.Wait()
				if err = errors.Join(errs...); err == nil {
					last = batch[len(batch)-1]
				}
				break
			}
			for range max(1, s.Repeat) {
				if err = w.hold.Poll(ctx); err != nil {
					t.Fatal(err)
				}
				last, err = w.svc.Submit(ctx, principal[s.As], "", intent)
				if err != nil {
					break
				}
				batch = append(batch, last)
				w.clock.Advance(time.Second)
			}
		case st.Approve:
			for j, hum := range w.humans {
				sig := ""
				if last.Decoded.SafeTx != nil {
					sig = w.sign(last, w.env.Humans[devchain.HumanNames[j]])
				}
				if last, err = w.svc.Approve(ctx, hum, last.ID, sig, "replay"); err != nil {
					break
				}
			}
		case st.Veto:
			last, err = w.svc.Veto(ctx, w.humans[0], last.ID, "replay")
		case st.Run:
			w.clock.Advance(time.Hour)
			if _, err = w.svc.ExecuteDue(ctx); err != nil {
				t.Fatal(err)
			}
		case st.Prices != nil:
			for asset, ps := range st.Prices {
				var rs []policy.Reading
				for k, p := range ps {
					v, err := policy.ParsePrice(p)
					if err != nil {
						t.Fatal(err)
					}
					rs = append(rs, policy.Reading{Source: string(rune('a' + k)), Price: v, At: w.clock.Now()})
				}
				prices[asset] = policy.NewQuotes(rs...)
			}
		case st.Chain == "deploy_proxy":
			if proxy, err = evm.Deploy(ctx, w.eth, chain.Mine, chain.Deployer, proxyArt, w.env.Contracts.Token); err != nil {
				t.Fatal(err)
			}
		case st.Chain == "upgrade_proxy":
			other, err := evm.Deploy(ctx, w.eth, chain.Mine, chain.Deployer, w.token, "Other", "OTH", uint8(18))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := evm.Send(ctx, w.eth, chain.Mine, chain.Deployer, proxyArt, proxy, "upgradeTo", other); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("%s: no action", label)
		}
		if st.Expect == nil {
			if err != nil {
				t.Fatalf("%s: %v", label, err)
			}
			continue
		}
		x := st.Expect
		if x.Error != "" {
			if string(daoguard.ErrorCode(err)) != x.Error {
				t.Fatalf("%s: got %v, want the error %s", label, err, x.Error)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		if last == nil {
			t.Fatalf("%s: no action to judge", label)
		}
		if x.Count != nil {
			have := map[string]int{}
			for _, a := range batch {
				have[w.state(a.ID).State.String()]++
			}
			for state, n := range x.Count {
				if have[state] != n {
					t.Fatalf("%s: %d actions %s, want %d (all: %v)", label, have[state], state, n, have)
				}
			}
		}
		for who, assets := range x.Received {
			addr := common.HexToAddress(resolve(who))
			for asset, amt := range assets {
				dec := 18
				if asset == "USDC" {
					dec = 6
				}
				want, perr := daoguard.ParseAmount(amt, dec)
				if perr != nil {
					t.Fatal(perr)
				}
				base := start[addr.Hex()+asset]
				if base == nil {
					t.Fatalf("%s: %s is not watched", label, who)
				}
				if got := new(big.Int).Sub(w.balance(asset, addr), base); got.Cmp(want) != 0 {
					t.Fatalf("%s: %s received %s %s on chain, want %s", label, who, daoguard.FormatAmount(got, dec), asset, amt)
				}
			}
		}
		got := w.state(last.ID)
		var codes []string
		for _, r := range got.Decision.Reasons {
			codes = append(codes, r.Code)
		}
		if x.State != "" && got.State.String() != x.State {
			t.Fatalf("%s: state %s, want %s (reasons %v, result %+v)", label, got.State, x.State, codes, got.Result)
		}
		for _, r := range x.Reasons {
			if !slices.Contains(codes, r) {
				t.Fatalf("%s: reasons %v lack %s", label, codes, r)
			}
		}
		if x.Result != "" && (got.Result == nil || got.Result.Code != x.Result) {
			t.Fatalf("%s: result %+v, want %s", label, got.Result, x.Result)
		}
		if x.State == "executed" && (got.Result == nil || got.Result.TxHash == "") {
			t.Fatalf("%s: executed without a transaction hash", label)
		}
		if x.NoTx && got.Result != nil && got.Result.TxHash != "" {
			t.Fatalf("%s: a transaction was sent: %s", label, got.Result.TxHash)
		}
		if x.Detail != "" {
			if len(x.Reasons) == 0 {
				t.Fatalf("%s: detail needs a reason to look in", label)
			}
			want := strings.ToLower(resolve(x.Detail))
			found := false
			for _, r := range got.Decision.Reasons {
				found = found || r.Code == x.Reasons[0] && strings.Contains(strings.ToLower(r.Detail+" "+r.WouldPass), want)
			}
			if !found {
				t.Fatalf("%s: no %s reason says %q: %+v", label, x.Reasons[0], want, got.Decision.Reasons)
			}
		}
	}
}

// staticPrices are the replay's price sources: what the last prices step
// set.
type staticPrices map[string]*policy.Quotes

func (p staticPrices) Quotes() map[string]*policy.Quotes { return p }

// abiArg converts a replay's argument to the Go value the ABI packs.
func abiArg(t *testing.T, s string, typ abi.Type) any {
	t.Helper()
	switch typ.T {
	case abi.AddressTy:
		if !common.IsHexAddress(s) {
			t.Fatalf("%q is not an address", s)
		}
		return common.HexToAddress(s)
	case abi.UintTy, abi.IntTy:
		n, ok := new(big.Int).SetString(s, 10)
		if !ok {
			t.Fatalf("%q is not an integer", s)
		}
		if typ.Size > 64 {
			return n
		}
		return reflect.ValueOf(n.Uint64()).Convert(typ.GetType()).Interface()
	case abi.BoolTy:
		return s == "true"
	case abi.BytesTy:
		b, err := hexutil.Decode(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Fatalf("argument type %s is not supported by the replays", typ)
	return nil
}
