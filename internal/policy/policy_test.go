package policy

import (
	"encoding/hex"
	"math/big"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

const goldenPolicy = "../../testdata/policy/golden/policy.yaml"

// TestSelectors recomputes every selector policy recognises from its
// signature: a typo in a constant would silently disable a protection.
func TestSelectors(t *testing.T) {
	for sig, sel := range map[string][4]byte{
		"transfer(address,uint256)":              selTransfer,
		"transferFrom(address,address,uint256)":  selTransferFrom,
		"approve(address,uint256)":               selApprove,
		"increaseAllowance(address,uint256)":     selIncreaseAllowance,
		"setApprovalForAll(address,bool)":        selSetApprovalForAll,
		"multiSend(bytes)":                       selMultiSend,
		"transferAndCall(address,uint256,bytes)": selTransferAndCall,
		"send(address,uint256,bytes)":            selSend,
		"push(address,uint256)":                  selPush,
		"move(address,address,uint256)":          selMove,
		"increaseApproval(address,uint256)":      selIncreaseApproval,
		"authorizeOperator(address)":             selAuthorizeOperator,
	} {
		if got := [4]byte(crypto.Keccak256([]byte(sig))[:4]); got != sel {
			t.Errorf("%s: constant %x, keccak %x", sig, sel, got)
		}
	}
	for sel, sig := range permitSelectors {
		if got := [4]byte(crypto.Keccak256([]byte(sig))[:4]); got != sel {
			t.Errorf("%s: constant %x, keccak %x", sig, sel, got)
		}
	}
}

// TestParseProblemsLocated: each problem names its line and field, every
// problem is reported at once, and nothing is returned.
func TestParseProblemsLocated(t *testing.T) {
	src := `version: 1
name: t
groups: {c: {role: council}}
council: {group: c, approvals: 2, timelock: 1h}
lists:
  v: ["0x9f3a11111111111111111111111111111111c0dE"]
rules:
  - name: ok
    tier: autonomous
  - name: bad
    tier: sometimes
    recipients: {lists: [nope]}
    function: "transfer(address,uint256)"
    params:
      - {arg: "5", op: eq, value: "1"}
      - {arg: "0", op: lt, value: "0x9f3a11111111111111111111111111111111c0de"}
    cel: 'amount > "x"'
  - name: ok
    tier: deny
`
	_, err := Parse([]byte(src))
	pe, ok := err.(*ParseError)
	if !ok {
		t.Fatalf("want a ParseError, got %v", err)
	}
	want := []struct {
		line  int
		field string
		msg   string
	}{
		{6, "lists.v[0]", "EIP-55"},
		{11, "rules[1].tier", "sometimes"},
		{12, "rules[1].recipients.lists[0]", `unknown list "nope"`},
		{15, "rules[1].params[0].arg", "does not exist"},
		{16, "rules[1].params[1].op", "compare with eq"},
		{17, "rules[1].cel", "CEL"},
		{18, "rules[2].name", "used twice"},
	}
	if len(pe.Problems) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(pe.Problems), len(want), pe)
	}
	for i, w := range want {
		p := pe.Problems[i]
		if p.Line != w.line || p.Field != w.field || !strings.Contains(p.Message, w.msg) {
			t.Errorf("problem %d = %+v, want line %d field %s containing %q", i, p, w.line, w.field, w.msg)
		}
	}
}

func TestParseRefusesYAMLTricks(t *testing.T) {
	for name, src := range map[string]string{
		"unknown key":      "version: 1\nname: t\nrulez: []\n",
		"alias":            "version: 1\nname: &n t\nrules: [{name: *n, tier: deny}]\n",
		"two documents":    "version: 1\nname: t\n---\nversion: 1\n",
		"empty":            "   \n",
		"wrong type":       "version: one\n",
		"wrong version":    "version: 2\nname: t\nrules: [{name: a, tier: deny}]\n",
		"no rules":         "version: 1\nname: t\ngroups: {c: {role: r}}\ncouncil: {group: c, approvals: 1, timelock: 1h}\n",
		"council no tl":    "version: 1\nname: t\ngroups: {c: {role: r}}\ncouncil: {group: c, approvals: 1}\nrules: [{name: a, tier: deny}]\n",
		"over < tier":      "version: 1\nname: t\ngroups: {c: {role: r}}\ncouncil: {group: c, approvals: 1, timelock: 1h}\nrules: [{name: a, tier: approval, approval: {group: c, approvals: 1}, limits: {max_usd: '1'}, over_limit: autonomous}]\n",
		"approval group":   "version: 1\nname: t\ngroups: {c: {role: r}}\ncouncil: {group: c, approvals: 1, timelock: 1h}\nrules: [{name: a, tier: approval, approval: {group: x, approvals: 1}}]\n",
		"bad hours":        "version: 1\nname: t\ngroups: {c: {role: r}}\ncouncil: {group: c, approvals: 1, timelock: 1h}\nrules: [{name: a, tier: deny, time: {hours: '9-5'}}]\n",
		"window two":       "version: 1\nname: t\ngroups: {c: {role: r}}\ncouncil: {group: c, approvals: 1, timelock: 1h}\nrules: [{name: a, tier: autonomous, limits: {windows: [{period: 1h, per: agent, max_usd: '1', max_count: 2}]}}]\n",
		"empty principals": "version: 1\nname: t\ngroups: {c: {role: r}}\ncouncil: {group: c, approvals: 1, timelock: 1h}\nrules: [{name: a, tier: autonomous, principals: []}]\n",
		"deep tuple":       "version: 1\nname: t\ngroups: {c: {role: r}}\ncouncil: {group: c, approvals: 1, timelock: 1h}\nrules: [{name: a, tier: autonomous, function: 'f(" + strings.Repeat("(", 40) + "uint256" + strings.Repeat(")", 40) + ")'}]\n",
		"max_amount two":   "version: 1\nname: t\ngroups: {c: {role: r}}\ncouncil: {group: c, approvals: 1, timelock: 1h}\nrules: [{name: a, tier: autonomous, assets: [A, B], limits: {max_amount: '1'}}]\n",
	} {
		if _, err := Parse([]byte(src)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if _, ok := err.(*ParseError); !ok {
			t.Errorf("%s: %T, want *ParseError", name, err)
		}
	}
}

// fixture is a small world for evaluation tests.
func fixture(t testing.TB, p *Policy) *Input {
	t.Helper()
	usdc := &daoguard.Asset{Symbol: "USDC", Address: "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", Decimals: 6}
	eth := &daoguard.Asset{Symbol: "ETH", Decimals: 18}
	now := time.Date(2026, 11, 18, 10, 0, 0, 0, time.UTC)
	one, _ := ParsePrice("1")
	return &Input{
		Now:       now,
		Principal: &daoguard.Principal{ID: "agent-ops", Kind: daoguard.PrincipalAgent, Roles: []string{"payments"}, Autonomy: daoguard.AutonomyAutonomous},
		Action: &daoguard.Decoded{Kind: daoguard.KindTransfer, Account: "ops", AccountKind: daoguard.AccountWallet, From: "0x1000000000000000000000000000000000000001",
			To: "0x9f3a11111111111111111111111111111111c0de", Asset: "USDC", Token: usdc.Address, Decimals: 6, Amount: daoguard.NewBigInt(big.NewInt(500_000_000)), Operation: daoguard.OpCall},
		Catalog:  NewCatalog([]*daoguard.Asset{usdc, eth}),
		Prices:   map[string]*Quotes{"USDC": NewQuotes(Reading{Source: "a", Price: one, At: now}, Reading{Source: "b", Price: one, At: now})},
		Holdings: map[string]*big.Int{"USDC": big.NewInt(100_000_000_000), "ETH": new(big.Int).Exp(big.NewInt(10), big.NewInt(20), nil)},
		History:  NewLedger(4, 4),
	}
}

func mustParse(t testing.TB, path string) *Policy {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCELErrorDenies: a condition that fails at run time denies the whole
// action, whatever other rules say.
func TestCELErrorDenies(t *testing.T) {
	src := `version: 1
name: t
groups: {c: {role: r}}
council: {group: c, approvals: 1, timelock: 1h}
rules:
  - {name: all, tier: autonomous}
  - {name: boom, tier: autonomous, cel: 'int(amount) / 0 == 1'}
`
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	in := fixture(t, p)
	in.Holdings = map[string]*big.Int{"USDC": new(big.Int).Exp(big.NewInt(10), big.NewInt(30), nil)}
	res := p.Evaluate(in)
	if res.Decision.Verdict != daoguard.VerdictDeny || res.Decision.Reasons[len(res.Decision.Reasons)-1].Code != ReasonEvaluationError {
		t.Fatalf("got %+v", res.Decision)
	}
}

// TestIncompleteInputDenies: evaluation never trusts a half-built input.
func TestIncompleteInputDenies(t *testing.T) {
	p := mustParse(t, goldenPolicy)
	for _, in := range []*Input{{}, {Principal: &daoguard.Principal{}}} {
		if d := p.Evaluate(in).Decision; d.Verdict != daoguard.VerdictDeny {
			t.Fatalf("%+v: %+v", in, d)
		}
	}
}

// TestLedgerMatchesBruteForce checks window totals, counts and release
// times against a scan of the raw entries, over random histories,
// including clock steps backwards and trimming.
func TestLedgerMatchesBruteForce(t *testing.T) {
	type entry struct {
		at    int64
		who   string
		to    string
		asset string
		amt   int64
		usd   int64
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 30; round++ {
		l := NewLedger(4, 4)
		var es []entry
		t0 := time.Unix(1_700_000_000, 0)
		var last int64
		for i := 0; i < 300; i++ {
			step := rng.Int64N(600) - 30 // sometimes backwards
			at := last + step*int64(time.Second)
			e := entry{at: at, who: []string{"a", "b"}[rng.IntN(2)], to: []string{"0x01", "0x02", "0x03"}[rng.IntN(3)], asset: []string{"USDC", "ETH"}[rng.IntN(2)], amt: rng.Int64N(1000), usd: rng.Int64N(1000)}
			if rng.IntN(10) == 0 {
				e.usd = -1 // no trusted price when recorded
			}
			l.Record(t0.Add(time.Duration(at)), e.who, []Flow{{Asset: e.asset, Amount: big.NewInt(e.amt), USD: e.usd, To: e.to}})
			last = max(last, at)
			es = append(es, e)
		}
		// The ledger keeps each key's entries in time order by recording a
		// backwards step at the latest time seen for that key; the
		// reference applies the same rule per key.
		recorded := func(k Key) []entry {
			var out []entry
			var maxAt int64 = -1 << 62
			for _, e := range es {
				match := k.Per == PerOrg || k.Per == PerAgent && e.who == k.Who || k.Per == PerRecipient && e.to == k.Who
				if !match || k.Asset != "" && e.asset != k.Asset {
					continue
				}
				maxAt = max(maxAt, e.at)
				e.at = maxAt
				out = append(out, e)
			}
			return out
		}
		if round%3 == 2 {
			h := t0.Add(time.Duration(last/2) * time.Nanosecond)
			l.Trim(h, 0, 0) // nothing after h is old enough to be merged
			// Trimming never changes a window that starts at or after h.
		}
		for q := 0; q < 50; q++ {
			since := t0.Add(time.Duration(rng.Int64N(last+1)) * time.Nanosecond)
			if q%2 == 0 { // exactly at an entry: the window is (since, now]
				since = t0.Add(time.Duration(es[rng.IntN(len(es))].at))
			}
			if round%3 == 2 {
				if h := t0.Add(time.Duration(last / 2)); since.Before(h) {
					since = h
				}
			}
			for _, k := range []Key{{Per: PerOrg}, {Per: PerAgent, Who: "a"}, {Per: PerRecipient, Who: "0x02"}, {Per: PerOrg, Asset: "ETH"}, {Per: PerAgent, Who: "b", Asset: "USDC"}} {
				var amt, usd int64
				n, unpriced := 0, 0
				for _, e := range recorded(k) {
					if t0.Add(time.Duration(e.at)).After(since) {
						amt += e.amt
						usd += max(e.usd, 0)
						n++
						if e.usd < 0 {
							unpriced++
						}
					}
				}
				got := l.Window(k, since)
				if got.Count != n {
					t.Fatalf("round %d %+v since %v: count %d, want %d", round, k, since, got.Count, n)
				}
				if k.Asset == "" && got.Unpriced != unpriced {
					t.Fatalf("round %d %+v since %v: unpriced %d, want %d", round, k, since, got.Unpriced, unpriced)
				}
				if k.Asset != "" && got.Amount.Int64() != amt || k.Asset == "" && got.USD != usd {
					t.Fatalf("round %d %+v: got %v/%d, want %d/%d", round, k, got.Amount, got.USD, amt, usd)
				}
				// Release: the first entry at which the running sum reaches excess.
				if n > 0 {
					excess := rng.Int64N(max(amt, usd, 1)) + 1
					var run int64
					var want time.Time
					for _, e := range recorded(k) {
						if !t0.Add(time.Duration(e.at)).After(since) {
							continue
						}
						if k.Asset != "" {
							run += e.amt
						} else {
							run += max(e.usd, 0)
						}
						if run >= excess {
							want = t0.Add(time.Duration(e.at))
							break
						}
					}
					at, ok := l.Release(k, since, big.NewInt(excess), false)
					if ok != !want.IsZero() || ok && !at.Equal(want) {
						t.Fatalf("round %d %+v excess %d: release %v %v, want %v", round, k, excess, at, ok, want)
					}
				}
			}
		}
	}
}

// TestLedgerOverflowSaturates: totals beyond uint256 or MaxUSD report as
// saturated (exceeding every limit), never wrap around.
func TestLedgerOverflowSaturates(t *testing.T) {
	l := NewLedger(4, 4)
	now := time.Unix(1_700_000_000, 0)
	huge := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))
	for i := 0; i < 3; i++ {
		l.Record(now.Add(time.Duration(i)*time.Second), "a", []Flow{{Asset: "X", Amount: huge, USD: MaxUSD / 2, To: "0x01"}})
	}
	if got := l.Window(Key{Per: PerOrg, Asset: "X"}, now.Add(time.Second)); got.Amount.Cmp(huge) <= 0 {
		t.Fatalf("amount %v does not exceed uint256", got.Amount)
	}
	if got := l.Window(Key{Per: PerOrg}, now.Add(time.Second)); got.USD != MaxUSD {
		t.Fatalf("usd %d, want saturated", got.USD)
	}
}

func TestAggregate(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := func(s string) *big.Int { v, _ := ParsePrice(s); return v }
	dev, _ := ParsePercent("2")
	cfg := PriceConfig{MaxAge: time.Minute, MaxDeviation: dev, Quorum: 2}
	cases := []struct {
		name string
		rs   []Reading
		want string // "" for no price
	}{
		{"median of three", []Reading{{"a", p("100"), now}, {"b", p("101"), now}, {"c", p("100.5"), now}}, "100.500000"},
		{"outlier dropped", []Reading{{"a", p("100"), now}, {"b", p("101"), now}, {"c", p("150"), now}}, "100.000000"},
		{"stale dropped, no quorum", []Reading{{"a", p("100"), now}, {"b", p("100"), now.Add(-2 * time.Minute)}}, ""},
		{"future dropped", []Reading{{"a", p("100"), now}, {"b", p("100"), now.Add(time.Hour)}}, ""},
		{"two far apart", []Reading{{"a", p("100"), now}, {"b", p("80"), now}}, ""},
		{"nothing", nil, ""},
		{"boundary deviation kept", []Reading{{"a", p("100"), now}, {"b", p("102"), now}}, "100.000000"},
	}
	for _, c := range cases {
		got := Aggregate(c.rs, now, cfg)
		s := ""
		if got.Value != nil {
			s = FormatPrice(got.Value)
		}
		if s != c.want {
			t.Errorf("%s: %q (%+v), want %q", c.name, s, got, c.want)
		}
	}
}

func TestUSDArithmetic(t *testing.T) {
	price, _ := ParsePrice("1834.25")
	// 1.5 ETH at 1834.25 = 2751.375 USD exactly.
	if got := usdValue(new(big.Int).Mul(big.NewInt(15), new(big.Int).Exp(big.NewInt(10), big.NewInt(17), nil)), 18, price); got != 2_751_375_000 {
		t.Fatalf("got %d", got)
	}
	// Rounds up: 1 base unit of a 6-decimal token at $1 is 1 micro-dollar;
	// at $0.5 it is half, rounded up to 1.
	half, _ := ParsePrice("0.5")
	if got := usdValue(big.NewInt(1), 6, half); got != 1 {
		t.Fatalf("got %d", got)
	}
	if got := usdValue(new(big.Int).Lsh(big.NewInt(1), 255), 0, price); got != MaxUSD {
		t.Fatalf("no saturation: %d", got)
	}
	if FormatUSD(1_234_567_890) != "1,234.57" || FormatUSD(0) != "0.00" {
		t.Fatal(FormatUSD(1_234_567_890))
	}
	for _, bad := range []string{"-1", "1e3", "abc", "1/2", "0.0000001"} {
		if _, err := ParseUSD(bad); err == nil {
			t.Errorf("ParseUSD(%q) accepted", bad)
		}
	}
}

// FuzzParsePolicy: any input either parses or gives problems with a line;
// never a panic. A parsed policy evaluates a fixed action without panic.
func FuzzParsePolicy(f *testing.F) {
	for _, path := range []string{goldenPolicy, "../../testdata/policy/ceilings/policy.yaml"} {
		if src, err := os.ReadFile(path); err == nil {
			f.Add(src)
		}
	}
	f.Add([]byte("version: 1\nname: t\ngroups: {c: {role: r}}\ncouncil: {group: c, approvals: 1, timelock: 1h}\nrules: [{name: a, tier: autonomous, cel: 'usd < 10.0', limits: {windows: [{period: 1h, per: agent, max_count: 2}]}}]\n"))
	f.Add([]byte("version: 1\nrules: [{name: a, tier: approval, params: [{arg: '1.*.0', op: in, set: ['1']}], function: 'f((uint8,address)[])'}]\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse(src)
		if err != nil {
			pe, ok := err.(*ParseError)
			if !ok || len(pe.Problems) == 0 {
				t.Fatalf("error %T %v", err, err)
			}
			return
		}
		d := p.Evaluate(fixture(t, p)).Decision
		if d.Verdict < daoguard.VerdictDeny || d.Verdict > daoguard.VerdictAllow {
			t.Fatalf("verdict %v", d.Verdict)
		}
	})
}

// FuzzCalldata: the call decoder never panics, and whatever it accepts
// is judged (never silently skipped).
func FuzzCalldata(f *testing.F) {
	h := func(s string) []byte { b, _ := hex.DecodeString(s); return b }
	f.Add(h("a9059cbb0000000000000000000000009f3a11111111111111111111111111111111c0de00000000000000000000000000000000000000000000000000000000000f4240"), uint8(0))
	f.Add(h("8d80ff0a0000000000000000000000000000000000000000000000000000000000000020000000000000000000000000000000000000000000000000000000000000005500a0b86991c6218b36c1d19d4a2e9eb0ce3606eb48000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"), uint8(1))
	f.Add(h("095ea7b3"), uint8(0))
	p := mustParse(f, goldenPolicy)
	f.Fuzz(func(t *testing.T, data []byte, op uint8) {
		in := fixture(t, p)
		d := *in.Action
		d.Kind, d.Asset, d.Token, d.Amount = daoguard.KindCall, "", "", nil
		d.To, d.Data, d.Value = "0x40a2accbd92bca938b02010e17a5b8929b49130d", data, daoguard.NewBigInt(big.NewInt(0))
		d.AccountKind, d.Operation = daoguard.AccountSafe, daoguard.Operation(op%2+1)
		in.Action = &d
		its, err := items(&d, in.Catalog)
		if err == nil && len(its) == 0 {
			t.Fatal("a decoded call with no items")
		}
		res := p.Evaluate(in)
		if res.Decision.Verdict == 0 {
			t.Fatal("no verdict")
		}
	})
}

// TestQuotesMemo: a memoised aggregation is reused only while it is still
// what Aggregate would answer: not once a reading turns stale, not once a
// future-dated reading comes within the skew, not for another policy.
func TestQuotesMemo(t *testing.T) {
	p := mustParse(t, goldenPolicy) // max_age 10m, quorum 2
	now := time.Date(2026, 11, 18, 10, 0, 0, 0, time.UTC)
	one, _ := ParsePrice("1")
	q := NewQuotes(Reading{Source: "a", Price: one, At: now}, Reading{Source: "b", Price: one, At: now.Add(-9 * time.Minute)},
		Reading{Source: "c", Price: one, At: now.Add(3 * time.Minute)})
	priceAt := func(pol *Policy, at time.Time) *big.Int {
		e := &evaluation{p: pol, in: &Input{Now: at, Prices: map[string]*Quotes{"USDC": q}}}
		return e.price("USDC").Value
	}
	for _, c := range []struct {
		at   time.Duration
		want bool
	}{
		{0, true},                              // a and b fresh (c in the future)
		{30 * time.Second, true},               // the memo is reused
		{61 * time.Second, false},              // b turned stale; c is still too far in the future
		{2*time.Minute + 56*time.Second, true}, // c came within the skew: a and c
		{11 * time.Minute, false},              // a turned stale too
		{13*time.Minute + time.Second, false},  // and c
		{5 * time.Second, true},                // the clock went back: recomputed, not the memo
	} {
		got := priceAt(p, now.Add(c.at)) != nil
		want := Aggregate(q.Readings(), now.Add(c.at), p.prices).Value != nil
		if got != want || got != c.want {
			t.Fatalf("at +%s: memo says %v, Aggregate %v, want %v", c.at, got, want, c.want)
		}
	}
	p2 := mustParse(t, goldenPolicy)
	if priceAt(p2, now) == nil || q.memo.Load().policy != p2 {
		t.Fatal("the memo of one policy served another")
	}
}

// A stack of an older ledger and a newer one answers as one ledger holding
// every entry would.
func TestStackMatchesOneLedger(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	t0 := time.Unix(1_700_000_000, 0)
	for round := 0; round < 20; round++ {
		all, older, newer := NewLedger(4, 4), NewLedger(4, 4), NewLedger(4, 4)
		n := 50 + rng.IntN(100)
		split := rng.IntN(n)
		for i := 0; i < n; i++ {
			at := t0.Add(time.Duration(i) * time.Minute)
			who := []string{"a", "b"}[rng.IntN(2)]
			fl := []Flow{{Asset: []string{"USDC", "ETH"}[rng.IntN(2)], Amount: big.NewInt(rng.Int64N(1000)), USD: rng.Int64N(1000) - 100, To: []string{"0x01", "0x02"}[rng.IntN(2)]}}
			fl[0].USD = max(fl[0].USD, -1) // about one in ten unpriced
			all.Record(at, who, fl)
			if i < split {
				older.Record(at, who, fl)
			} else {
				newer.Record(at, who, fl)
			}
		}
		s := Stack(older, newer)
		for q := 0; q < 40; q++ {
			since := t0.Add(time.Duration(rng.IntN(n*60)) * time.Second)
			for _, k := range []Key{{Per: PerOrg}, {Per: PerAgent, Who: "a"}, {Per: PerRecipient, Who: "0x02", Asset: "USDC"}} {
				got, want := s.Window(k, since), all.Window(k, since)
				if got.Count != want.Count || got.USD != want.USD || got.Unpriced != want.Unpriced || (want.Amount != nil && got.Amount.Cmp(want.Amount) != 0) {
					t.Fatalf("round %d %+v since %v: stack %+v, one ledger %+v", round, k, since, got, want)
				}
				for _, count := range []bool{true, false} {
					ex := big.NewInt(rng.Int64N(int64(max(want.Count, 1)*1000)) + 1)
					if count {
						ex = big.NewInt(rng.Int64N(int64(want.Count)+2) + 1)
					}
					gt, gok := s.Release(k, since, ex, count)
					wt, wok := all.Release(k, since, ex, count)
					if gok != wok || !gt.Equal(wt) {
						t.Fatalf("round %d %+v release %v (count %v): stack %v %v, one ledger %v %v", round, k, ex, count, gt, gok, wt, wok)
					}
				}
			}
		}
	}
}

func TestDecimalGrammar(t *testing.T) {
	for _, ok := range []string{"0", "1", "18.25", "0.000001", "100"} {
		if _, err := ParseUSD(ok); err != nil {
			t.Errorf("ParseUSD(%q): %v", ok, err)
		}
		if _, err := ParsePercent(ok); err != nil {
			t.Errorf("ParsePercent(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "1.", ".5", "0x10", "1_000", "1e3", "0x1p-2", "1/3", "-1", "+1", " 1", "1,5", "１"} {
		if _, err := ParseUSD(bad); err == nil {
			t.Errorf("ParseUSD(%q) accepted", bad)
		}
		if _, err := ParsePercent(bad); err == nil {
			t.Errorf("ParsePercent(%q) accepted", bad)
		}
		if _, err := ParsePrice(bad); err == nil {
			t.Errorf("ParsePrice(%q) accepted", bad)
		}
	}
	if _, err := ParsePrice("0"); err == nil {
		t.Error("a zero price accepted")
	}
}

// TestRecipientCountSeesCalls: a per-recipient count limits calls that move
// no funds as well as payments: each decision's recorded flows name every
// counterparty, with a zero amount where nothing moves.
func TestRecipientCountSeesCalls(t *testing.T) {
	src := `version: 1
name: t
groups: {c: {role: r}}
council: {group: c, approvals: 1, timelock: 1h}
rules:
  - name: poke
    principal_kinds: [agent]
    actions: [call]
    tier: autonomous
    limits:
      windows: [{period: 1h, per: recipient, max_count: 2}]
    over_limit: deny
`
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	in := fixture(t, p)
	l := in.History.(*Ledger)
	target := "0xe592427a0aece92de3edee1f18e0157c05861564"
	// The target's ABI is configured, so that its calldata is not opaque.
	reg, err := NewRegistry([]ContractABI{{Name: "Poker", Address: target, ABI: []byte(`[{"type":"function","name":"poke","inputs":[{"name":"n","type":"uint8"}],"outputs":[]}]`)}})
	if err != nil {
		t.Fatal(err)
	}
	in.Contracts = reg
	poke := append(crypto.Keccak256([]byte("poke(uint8)"))[:4], common.LeftPadBytes([]byte{1}, 32)...)
	in.Action = &daoguard.Decoded{Kind: daoguard.KindCall, Account: "ops", AccountKind: daoguard.AccountWallet, From: in.Action.From,
		To: target, Data: poke, Operation: daoguard.OpCall}
	for i, want := range []daoguard.Verdict{daoguard.VerdictAllow, daoguard.VerdictAllow, daoguard.VerdictDeny} {
		res := p.Evaluate(in)
		if res.Decision.Verdict != want {
			t.Fatalf("call %d: %s %+v", i, res.Decision.Verdict, res.Decision.Reasons)
		}
		if want == daoguard.VerdictAllow {
			if len(res.Flows) != 1 || res.Flows[0].To != target || res.Flows[0].Amount.Sign() != 0 || res.Flows[0].USD != 0 {
				t.Fatalf("call %d: recorded flows %+v", i, res.Flows)
			}
			l.Record(in.Now, in.Principal.ID, res.Flows)
			in.Now = in.Now.Add(time.Minute)
		}
	}
	// Calls that moved nothing do not make the target a known
	// counterparty (it would pass new-recipient rules and the look-alike
	// check as if it had been paid).
	if l.Known(target) {
		t.Fatal("a zero flow made its counterparty known")
	}
}

// TestFunctionRulesSeeTransferIntents: a token transfer asked for as a
// transfer intent is judged as the call it becomes, so a function or
// parameter rule (here a deny) cannot be bypassed by asking for the
// transfer instead of sending its calldata.
func TestFunctionRulesSeeTransferIntents(t *testing.T) {
	src := `version: 1
name: t
groups: {c: {role: r}}
council: {group: c, approvals: 1, timelock: 1h}
rules:
  - {name: payments, principal_kinds: [agent], actions: [transfer], tier: autonomous}
  - name: big-token-transfers
    function: "transfer(address,uint256)"
    params: [{arg: "1", op: gt, value: "1000000000"}]
    tier: deny
  - {name: selector-seen, principal_kinds: [agent], cel: 'selector == "0xa9059cbb" && amount > 1500.0', tier: deny}
`
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		amount int64 // USDC base units
		want   daoguard.Verdict
		rule   string
	}{
		{500_000000, daoguard.VerdictAllow, ""},
		{1200_000000, daoguard.VerdictDeny, "big-token-transfers"},
		{2000_000000, daoguard.VerdictDeny, "selector-seen"},
	} {
		in := fixture(t, p)
		in.Action.Amount = daoguard.NewBigInt(big.NewInt(tc.amount))
		d := p.Evaluate(in).Decision
		if d.Verdict != tc.want {
			t.Fatalf("%d: %s %+v", tc.amount, d.Verdict, d.Reasons)
		}
		if tc.rule != "" && !slices.ContainsFunc(d.Reasons, func(r daoguard.Reason) bool { return r.Code == ReasonDenyRule && r.Rule == tc.rule }) {
			t.Fatalf("%d: rule %s did not deny: %+v", tc.amount, tc.rule, d.Reasons)
		}
	}
}

// TestParseSelectorNeverPanics: go-ethereum's selector parser indexes past
// the end of some inputs; a policy's function field is checked first and
// any panic becomes an error.
func TestParseSelectorNeverPanics(t *testing.T) {
	for _, sig := range []string{"s", "(", ")", "f(", "f)", "f((", "f(,)", "f(uint256", "(uint256)", "f()x", ""} {
		if _, err := ParseSelector(sig); err == nil && sig != "f(,)" {
			t.Errorf("%q parsed", sig)
		}
	}
	if m, err := ParseSelector("transfer(address,uint256)"); err != nil || m.Name != "transfer" || len(m.Inputs) != 2 {
		t.Fatalf("transfer: %+v %v", m, err)
	}
}

// TestNearLimit: an action that holds a limit with less than 10% to spare
// is reported near the limit (the anomaly breaker counts clusters of
// them); one well under, or over (refused anyway), is not.
func TestNearLimit(t *testing.T) {
	src := `version: 1
name: t
groups: {c: {role: r}}
council: {group: c, approvals: 1, timelock: 1h}
rules:
  - {name: small, principal_kinds: [agent], actions: [transfer], tier: autonomous, assets: [USDC], limits: {max_amount: '1000', max_usd: '2000'}}
  - {name: daily, principal_kinds: [agent], actions: [transfer], tier: autonomous, limits: {windows: [{period: 24h, per: agent, max_usd: '5000'}]}}
`
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		usdc int64
		near bool
	}{
		{500, false}, {899, false}, {900, true}, {1000, true}, {1001, false},
	} {
		in := fixture(t, p)
		in.Action.Amount = daoguard.NewBigInt(big.NewInt(tc.usdc * 1_000_000))
		if res := p.Evaluate(in); res.NearLimit != tc.near {
			t.Errorf("%d USDC: near %v, want %v (%s %+v)", tc.usdc, res.NearLimit, tc.near, res.Decision.Verdict, res.Decision.Reasons)
		}
	}
}

// TestNearLimitWindow: the payment that takes a window past 90% is near
// the limit; small payments after it are not.
func TestNearLimitWindow(t *testing.T) {
	src := `version: 1
name: t
groups: {c: {role: r}}
council: {group: c, approvals: 1, timelock: 1h}
rules:
  - {name: daily, principal_kinds: [agent], actions: [transfer], tier: autonomous, limits: {windows: [{period: 24h, per: agent, max_usd: '1000'}]}}
`
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	in := fixture(t, p)
	ledger := NewLedger(4, 4)
	in.History = ledger
	for i, tc := range []struct {
		usdc int64
		near bool
	}{
		{500, false}, {380, false}, {50, true}, {10, false}, {10, false},
	} {
		in.Action.Amount = daoguard.NewBigInt(big.NewInt(tc.usdc * 1_000_000))
		res := p.Evaluate(in)
		if res.NearLimit != tc.near || res.Decision.Verdict != daoguard.VerdictAllow {
			t.Fatalf("payment %d (%d USDC): near %v %s, want near %v (%+v)", i, tc.usdc, res.NearLimit, res.Decision.Verdict, tc.near, res.Decision.Reasons)
		}
		ledger.Record(in.Now, in.Principal.ID, res.Flows)
		in.Now = in.Now.Add(time.Minute)
	}
}
