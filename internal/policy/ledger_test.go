package policy

import (
	"bytes"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// fillBusy records n entries of one agent to one of a few recipients,
// spread over the day before now, some of them unpriced, one asset or two.
func fillBusy(l *Ledger, rng *rand.Rand, now time.Time, n int) {
	for i := 0; i < n; i++ {
		at := now.Add(-time.Duration(n-i) * 24 * time.Hour / time.Duration(n))
		usd := rng.Int64N(1_000_000)
		if rng.IntN(20) == 0 {
			usd = -1
		}
		l.RecordFor(at, Who{ID: "a", Agent: true, Roles: []string{"ops"}},
			[]Flow{{Asset: []string{"USDC", "ETH"}[rng.IntN(2)], Amount: big.NewInt(rng.Int64N(1000) + 1), USD: usd, To: []string{"0x01", "0x02"}[rng.IntN(2)]}})
	}
}

// TestLedgerThinning: merging aged entries into buckets keeps windows
// never looser (every entry still counts at least as long as before) and
// at most 1/128 of their length stricter, release times consistent with
// the totals, and a busy key at a few hundred buckets per doubling of age.
func TestLedgerThinning(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	now := time.Unix(1_800_000_000, 0)
	exact, thin := NewLedger(4, 4), NewLedger(4, 4)
	fillBusy(exact, rand.New(rand.NewPCG(5, 6)), now, 100_000)
	fillBusy(thin, rand.New(rand.NewPCG(5, 6)), now, 100_000)
	thin.Trim(now, 48*time.Hour, 30*24*time.Hour)
	n, m := exact.Len(), thin.Len()
	t.Logf("100,000 entries over a day in %d keys: %d kept, %d after thinning", len(exact.series), n, m)
	if m*10 > n {
		t.Fatalf("thinned to %d of %d entries", m, n)
	}
	keys := []Key{{Per: PerOrg}, {Per: PerAgent, Who: "a"}, {Per: PerRecipient, Who: "0x02"}, {Per: PerOrg, Asset: "ETH"},
		{Per: PerAgent, Who: "a", Asset: "USDC"}, {Per: PerRole, Who: "ops"}, {Per: PerAgents, Asset: "USDC"}}
	for q := 0; q < 2000; q++ {
		age := time.Duration(rng.Int64N(int64(25 * time.Hour)))
		since := now.Add(-age)
		for _, k := range keys {
			got, lo, hi := thin.Window(k, since), exact.Window(k, since), exact.Window(k, since.Add(-age/128-time.Second))
			if got.Count < lo.Count || got.Count > hi.Count {
				t.Fatalf("%+v age %s: count %d outside [%d, %d]", k, age, got.Count, lo.Count, hi.Count)
			}
			if k.Asset != "" && (got.Amount.Cmp(lo.Amount) < 0 || got.Amount.Cmp(hi.Amount) > 0) {
				t.Fatalf("%+v age %s: amount %s outside [%s, %s]", k, age, got.Amount, lo.Amount, hi.Amount)
			}
			if k.Asset == "" && (got.USD < lo.USD || got.USD > hi.USD || got.Unpriced < lo.Unpriced || got.Unpriced > hi.Unpriced) {
				t.Fatalf("%+v age %s: usd %d/%d outside [%d/%d, %d/%d]", k, age, got.USD, got.Unpriced, lo.USD, lo.Unpriced, hi.USD, hi.Unpriced)
			}
			// Release agrees with Window: once the returned time is
			// outside the window, the total has dropped by at least excess.
			if got.Count > 1 {
				excess := big.NewInt(int64(rng.IntN(got.Count-1) + 1))
				at, ok := thin.Release(k, since, excess, true)
				if !ok {
					t.Fatalf("%+v: no release of %s of %d", k, excess, got.Count)
				}
				if after := thin.Window(k, at); got.Count-after.Count < int(excess.Int64()) {
					t.Fatalf("%+v: release at %v frees %d, want %s", k, at, got.Count-after.Count, excess)
				}
				if before := thin.Window(k, at.Add(-1)); got.Count-before.Count >= int(excess.Int64()) {
					t.Fatalf("%+v: release at %v is later than needed", k, at)
				}
			}
		}
	}
	// Thinning again changes nothing until time passes.
	n = thin.Len()
	thin.Trim(now, 48*time.Hour, 30*24*time.Hour)
	if thin.Len() != n {
		t.Fatalf("second trim: %d → %d", n, thin.Len())
	}
	// A day later everything is past the 48 h horizon but the counterparties.
	thin.Trim(now.Add(25*time.Hour), 24*time.Hour, 30*24*time.Hour)
	if thin.Len() != 0 || !thin.Known("0x01") {
		t.Fatalf("after the horizon: %d entries, known %v", thin.Len(), thin.Known("0x01"))
	}
	thin.Trim(now.Add(31*24*time.Hour), 24*time.Hour, 30*24*time.Hour)
	if thin.Known("0x01") {
		t.Fatal("a counterparty not paid for 31 days is still known")
	}
}

// TestLedgerThinningSaturated: an overflowed key stays saturated through
// thinning.
func TestLedgerThinningSaturated(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := NewLedger(4, 4)
	huge := new(big.Int).Lsh(big.NewInt(1), 255)
	for i := 0; i < 100; i++ {
		at := now.Add(-time.Duration(100-i) * time.Hour / 10)
		amt := big.NewInt(1)
		if i == 40 || i == 41 {
			amt = huge
		}
		l.Record(at, "a", []Flow{{Asset: "T", Amount: amt, USD: MaxUSD / 2, To: "0x01"}})
	}
	l.Trim(now, 24*time.Hour, 24*time.Hour)
	w := l.Window(Key{Per: PerOrg, Asset: "T"}, now.Add(-8*time.Hour))
	if w.Amount.BitLen() <= 256 {
		t.Fatalf("window over the overflow: %s", w.Amount)
	}
	if u := l.Window(Key{Per: PerOrg}, now.Add(-8*time.Hour)).USD; u != MaxUSD {
		t.Fatalf("USD over the overflow: %d", u)
	}
	if w := l.Window(Key{Per: PerOrg, Asset: "T"}, now.Add(-time.Hour)); w.Amount.Int64() > 10 || w.Amount.Sign() == 0 {
		t.Fatalf("window after the overflow: %s", w.Amount)
	}
}

// TestLedgerEncoding: the binary form reads back to a ledger that answers
// every window, release and counterparty question alike, and encodes to
// the same bytes.
func TestLedgerEncoding(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := NewLedger(3, 5)
	fillBusy(l, rand.New(rand.NewPCG(7, 8)), now, 5_000)
	l.Record(now, "b", []Flow{{Asset: "T", Amount: new(big.Int).Lsh(big.NewInt(1), 256), USD: -1, To: "0x0000000000000000000000000000000000000abc"}})
	l.Trim(now, 48*time.Hour, 30*24*time.Hour)
	b, err := l.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseLedger(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := r.AppendBinary(nil)
	if !bytes.Equal(b, b2) {
		t.Fatal("re-encoding differs")
	}
	if a, c := r.LookAlikeDigits(); a != 3 || c != 5 {
		t.Fatalf("digits %d %d", a, c)
	}
	for h := 0; h <= 25; h++ {
		since := now.Add(-time.Duration(h) * time.Hour)
		for k := range l.series {
			a, c := l.Window(k, since), r.Window(k, since)
			if a.Count != c.Count || a.USD != c.USD || a.Unpriced != c.Unpriced || (a.Amount == nil) != (c.Amount == nil) || a.Amount != nil && a.Amount.Cmp(c.Amount) != 0 {
				t.Fatalf("%+v since %v: %+v vs %+v", k, since, a, c)
			}
		}
	}
	if !r.Known("0x01") || r.Imitated("0x000"+strings.Repeat("1", 32)+"00abc") != "0x0000000000000000000000000000000000000abc" {
		t.Fatal("counterparties lost")
	}
	for _, bad := range [][]byte{nil, []byte("DGL\x02"), b[:len(b)-1], append(append([]byte{}, b...), 0)} {
		if _, err := ParseLedger(bad); err == nil {
			t.Fatalf("%q… parsed", bad[:min(len(bad), 8)])
		}
	}
}

// FuzzParseLedger: any input is refused or parses to a ledger that
// encodes back to the same bytes and answers without panicking.
func FuzzParseLedger(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	l := NewLedger(4, 4)
	fillBusy(l, rand.New(rand.NewPCG(1, 1)), now, 50)
	b, _ := l.AppendBinary(nil)
	f.Add(b)
	f.Add([]byte("DGL\x01\x04\x04\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseLedger(data)
		if err != nil {
			return
		}
		out, _ := r.AppendBinary(nil)
		if !bytes.Equal(out, data) {
			t.Fatalf("re-encoding differs:\n%x\n%x", data, out)
		}
		for k := range r.series {
			r.Window(k, now.Add(-time.Hour))
			r.Release(k, now.Add(-time.Hour), big.NewInt(1), false)
		}
		r.Trim(now, time.Hour, time.Hour)
	})
}

// TestLedgerEncodingSaturatedTrimmed: a saturated key whose overflowing
// entry was trimmed away encodes and parses back.
func TestLedgerEncodingSaturatedTrimmed(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := NewLedger(4, 4)
	l.Record(now.Add(-3*time.Hour), "a", []Flow{{Asset: "T", Amount: new(big.Int).Lsh(big.NewInt(1), 256), USD: MaxUSD, To: "0x01"}})
	l.Record(now.Add(-time.Minute), "a", []Flow{{Asset: "T", Amount: big.NewInt(1), USD: 1, To: "0x01"}})
	l.Trim(now, time.Hour, time.Hour)
	b, _ := l.AppendBinary(nil)
	r, err := ParseLedger(b)
	if err != nil {
		t.Fatal(err)
	}
	if w := r.Window(Key{Per: PerOrg}, now.Add(-time.Hour)); w.USD != MaxUSD {
		t.Fatalf("USD %d", w.USD)
	}
	// Over-long varints are not the encoding.
	if _, err := ParseLedger([]byte("DGL\x01\x04\x04\x80\x00\x00\x00")); err == nil {
		t.Fatal("an over-long uvarint parsed")
	}
}
