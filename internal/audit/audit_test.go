package audit

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"golang.org/x/mod/sumdb/tlog"
)

func entries(n int) []*daoguard.AuditEntry {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	out := make([]*daoguard.AuditEntry, n)
	for i := range out {
		out[i] = &daoguard.AuditEntry{Seq: uint64(i), Time: t0.Add(time.Duration(i) * time.Millisecond), OrgID: "org_1", ActorID: "agt_1", ActorKind: "agent",
			ActionID: fmt.Sprintf("act_%d", i), Event: "action.queued", Detail: []byte(fmt.Sprintf(`{"n":%d}`, i))}
	}
	return out
}

// build appends es in batches of the given sizes, as the stores do, and
// returns every stored hash by index.
func build(t *testing.T, es []*daoguard.AuditEntry, batches ...int) []tlog.Hash {
	t.Helper()
	var stored []tlog.Hash
	n := 0
	for _, b := range batches {
		var edge []tlog.Hash
		for _, x := range RightEdge(int64(n)) {
			edge = append(edge, stored[x])
		}
		start, hs, err := Append(int64(n), edge, es[n:n+b])
		if err != nil {
			t.Fatal(err)
		}
		if start != int64(len(stored)) {
			t.Fatalf("batch at %d starts at hash %d, have %d", n, start, len(stored))
		}
		stored = append(stored, hs...)
		n += b
	}
	if n != len(es) {
		t.Fatalf("batches cover %d of %d", n, len(es))
	}
	return stored
}

func verify(es []*daoguard.AuditEntry, stored []tlog.Hash) (int64, tlog.Hash, error) {
	v := NewVerifier(func(i int64) (tlog.Hash, error) {
		if i >= int64(len(stored)) {
			return tlog.Hash{}, errors.New("no such hash")
		}
		return stored[i], nil
	})
	for _, e := range es {
		if err := v.Next(e); err != nil {
			return 0, tlog.Hash{}, err
		}
	}
	return v.Done(int64(len(stored)))
}

// TestAppendMatchesTlog: batches of any size give the hashes tlog gives
// record by record, and the root verifies.
func TestAppendMatchesTlog(t *testing.T) {
	es := entries(37)
	stored := build(t, es, 1, 5, 16, 2, 13)
	var want []tlog.Hash
	r := hashReader(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			out[i] = want[x]
		}
		return out, nil
	})
	for i, e := range es {
		hs, err := tlog.StoredHashes(int64(i), Leaf(e), r)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, hs...)
	}
	if len(stored) != len(want) {
		t.Fatalf("%d hashes, tlog %d", len(stored), len(want))
	}
	for i := range want {
		if stored[i] != want[i] {
			t.Fatalf("hash %d differs", i)
		}
	}
	n, root, err := verify(es, stored)
	wantRoot, _ := tlog.TreeHash(37, r)
	if err != nil || n != 37 || root != wantRoot {
		t.Fatalf("%d %x %v", n, root, err)
	}
	if _, _, err := Append(5, nil, es[5:6]); err == nil {
		t.Fatal("a missing right edge accepted")
	}
	if _, _, err := Append(6, []tlog.Hash{{}, {}}, es[5:6]); err == nil {
		t.Fatal("an entry at the wrong position accepted")
	}
}

// TestLeafIsCanonical: every field counts, and moving bytes between
// neighbouring fields changes the leaf.
func TestLeafIsCanonical(t *testing.T) {
	e := entries(1)[0]
	base := string(Leaf(e))
	for name, change := range map[string]func(*daoguard.AuditEntry){
		"seq":       func(e *daoguard.AuditEntry) { e.Seq++ },
		"time":      func(e *daoguard.AuditEntry) { e.Time = e.Time.Add(time.Microsecond) },
		"org":       func(e *daoguard.AuditEntry) { e.OrgID += "x" },
		"actorKind": func(e *daoguard.AuditEntry) { e.ActorKind = "human" },
		"actor":     func(e *daoguard.AuditEntry) { e.ActorID = "agt_2" },
		"action":    func(e *daoguard.AuditEntry) { e.ActionID = "" },
		"event":     func(e *daoguard.AuditEntry) { e.Event = "action.denied" },
		"detail":    func(e *daoguard.AuditEntry) { e.Detail = []byte(`{"n": 0}`) },
		"shift":     func(e *daoguard.AuditEntry) { e.ActorKind, e.ActorID = "agentag", "t_1" },
	} {
		c := *e
		change(&c)
		if string(Leaf(&c)) == base {
			t.Errorf("%s: the leaf did not change", name)
		}
	}
	// Nanoseconds below the stores' precision do not count.
	c := *e
	c.Time = c.Time.Add(999 * time.Nanosecond)
	if string(Leaf(&c)) != base {
		t.Error("sub-microsecond time changed the leaf")
	}
}

// TestVerifierFindsTampering: one byte changed, an entry removed, two
// swapped, entries (not hashes) cut from the tail, a hash changed: each is
// found at the first bad index; the intact log verifies.
func TestVerifierFindsTampering(t *testing.T) {
	es := entries(50)
	stored := build(t, es, 7, 20, 23)
	if _, _, err := verify(es, stored); err != nil {
		t.Fatal(err)
	}
	clone := func() []*daoguard.AuditEntry {
		out := make([]*daoguard.AuditEntry, len(es))
		for i, e := range es {
			c := *e
			c.Detail = append([]byte{}, e.Detail...)
			out[i] = &c
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		tamper func(es []*daoguard.AuditEntry, hs []tlog.Hash) ([]*daoguard.AuditEntry, []tlog.Hash)
		index  int64
	}{
		{"ByteChanged", func(es []*daoguard.AuditEntry, hs []tlog.Hash) ([]*daoguard.AuditEntry, []tlog.Hash) {
			es[17].Detail[5] ^= 1
			return es, hs
		}, 17},
		{"EntryDeleted", func(es []*daoguard.AuditEntry, hs []tlog.Hash) ([]*daoguard.AuditEntry, []tlog.Hash) {
			return append(es[:30:30], es[31:]...), hs
		}, 30},
		{"EntriesSwapped", func(es []*daoguard.AuditEntry, hs []tlog.Hash) ([]*daoguard.AuditEntry, []tlog.Hash) {
			// Contents swapped, positions kept: what a row swap leaves.
			es[12].Detail, es[13].Detail = es[13].Detail, es[12].Detail
			return es, hs
		}, 12},
		{"TailEntriesCut", func(es []*daoguard.AuditEntry, hs []tlog.Hash) ([]*daoguard.AuditEntry, []tlog.Hash) {
			return es[:45], hs
		}, 45},
		{"HashChanged", func(es []*daoguard.AuditEntry, hs []tlog.Hash) ([]*daoguard.AuditEntry, []tlog.Hash) {
			hs[tlog.StoredHashIndex(0, 40)][0] ^= 1
			return es, hs
		}, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, hs := tc.tamper(clone(), append([]tlog.Hash{}, stored...))
			_, _, err := verify(es, hs)
			var te *TamperError
			if !errors.As(err, &te) || te.Index != tc.index || !errors.Is(err, ErrTampered) {
				t.Fatalf("got %v, want a tamper error at %d", err, tc.index)
			}
		})
	}
}

func TestRightEdge(t *testing.T) {
	for n, want := range map[int64][]int64{
		0: nil,
		1: {tlog.StoredHashIndex(0, 0)},
		6: {tlog.StoredHashIndex(2, 0), tlog.StoredHashIndex(1, 2)},
		7: {tlog.StoredHashIndex(2, 0), tlog.StoredHashIndex(1, 2), tlog.StoredHashIndex(0, 6)},
	} {
		got := RightEdge(n)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("RightEdge(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestEmptyLog(t *testing.T) {
	n, root, err := verify(nil, nil)
	want, _ := tlog.TreeHash(0, nil)
	if err != nil || n != 0 || root != want {
		t.Fatalf("%d %x %v", n, root, err)
	}
}

// BenchmarkVerify: offline verification of an in-memory log (the entries
// and hashes as a store returns them), in entries per second.
func BenchmarkVerify(b *testing.B) {
	const n = 1 << 20
	es := entries(n)
	var stored []tlog.Hash
	for i := 0; i < n; i += 1024 {
		var edge []tlog.Hash
		for _, x := range RightEdge(int64(i)) {
			edge = append(edge, stored[x])
		}
		_, hs, err := Append(int64(i), edge, es[i:i+1024])
		if err != nil {
			b.Fatal(err)
		}
		stored = append(stored, hs...)
	}
	b.ResetTimer()
	for b.Loop() {
		if got, _, err := verify(es, stored); err != nil || got != n {
			b.Fatal(got, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkAppend: the hashes of a batch of 32 entries, as a store computes
// them before commit, per entry.
func BenchmarkAppend(b *testing.B) {
	es := entries(1 << 16)
	var stored []tlog.Hash
	b.ResetTimer()
	n := 0
	for b.Loop() {
		if n+32 > len(es) {
			b.StopTimer()
			n, stored = 0, nil
			b.StartTimer()
		}
		var edge []tlog.Hash
		for _, x := range RightEdge(int64(n)) {
			edge = append(edge, stored[x])
		}
		_, hs, err := Append(int64(n), edge, es[n:n+32])
		if err != nil {
			b.Fatal(err)
		}
		stored = append(stored, hs...)
		n += 32
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(32*b.N), "µs/entry")
}

// TestPseudonyms: one key gives one pseudonym per value and kind; another
// key, or another kind, gives another; the value is not in it.
func TestPseudonyms(t *testing.T) {
	p, err := NewPseudonyms([]byte("PRIVATE+KEY+daoguard/org_1+abc+secret"))
	if err != nil {
		t.Fatal(err)
	}
	q, _ := NewPseudonyms([]byte("PRIVATE+KEY+daoguard/org_2+abc+secret"))
	a := p.Of("source", "203.0.113.7")
	if a != p.Of("source", "203.0.113.7") || len(a) != len("hmac:")+22 || a[:5] != "hmac:" {
		t.Fatalf("%q", a)
	}
	for _, other := range []string{p.Of("source", "203.0.113.8"), p.Of("name", "203.0.113.7"), q.Of("source", "203.0.113.7")} {
		if other == a {
			t.Fatalf("%q twice", a)
		}
	}
}
