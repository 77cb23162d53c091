package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/audit"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// runAuditTree: the store writes the Merkle tree of its audit log with the
// entries, through concurrent batches and rolled-back units, so that the
// log verifies; and when someone with the database's rights changes the
// log behind the code, verification names the first entry changed,
// removed, moved or cut off.
func runAuditTree(t *testing.T, h Harness) {
	ctx := context.Background()
	skey, vkey, err := note.GenerateKey(rand.Reader, "daoguard/org_test")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	// fill appends n entries from 4 writers at once (concurrent batches),
	// every fifth unit failing after its append.
	fill := func(t *testing.T, s daoguard.Store, org string, n int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n*5/4; i += 4 {
					// Every other unit serves a request: its entry names the
					// key and the request digest (a v2 leaf).
					ctx := ctx
					if i%2 == 0 {
						ctx = daoguard.WithRequest(ctx, daoguard.Request{KeyID: fmt.Sprintf("dgk_test_%d", w), Digest: fmt.Sprintf("digest-%d", i)})
					}
					err := s.Update(ctx, func(tx daoguard.Tx) error {
						if err := tx.Append(ctx, &daoguard.AuditEntry{OrgID: org, ActorID: fmt.Sprint(w), ActorKind: "system", Event: "e",
							Detail: []byte(fmt.Sprintf(`{"i":%d}`, i))}); err != nil {
							return err
						}
						if i%5 == 4 {
							return errors.New("rolled back")
						}
						return nil
					})
					if err != nil && i%5 != 4 {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}

	t.Run("OK_TreeVerifies", func(t *testing.T) {
		f := setup(t, h)
		before := auditSize(t, f.Store)
		fill(t, f.Store, f.Org, 400)
		size, root, cp, err := audit.VerifyStore(ctx, f.Store, verifier)
		if err != nil || cp != nil {
			t.Fatal(err, cp)
		}
		if n := auditSize(t, f.Store); uint64(size) != n || n != before+400 {
			t.Fatalf("tree of %d, log of %d (want %d)", size, n, before+400)
		}
		// The root is tlog's own for these entries.
		es := entries(t, f.Store)
		withRequest := 0
		for _, e := range es {
			var i int
			if _, err := fmt.Sscanf(string(e.Detail), `{"i":%d}`, &i); err != nil || e.Event != "e" {
				continue
			}
			if want := fmt.Sprintf("digest-%d", i); i%2 == 0 && (e.RequestDigest != want || e.KeyID != "dgk_test_"+e.ActorID) || i%2 == 1 && (e.RequestDigest != "" || e.KeyID != "") {
				t.Fatalf("entry %d: key %q digest %q", i, e.KeyID, e.RequestDigest)
			}
			if i%2 == 0 {
				withRequest++
			}
		}
		if withRequest != 200 {
			t.Fatalf("%d entries name their request, want 200", withRequest)
		}
		var stored []tlog.Hash
		r := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(ix))
			for i, x := range ix {
				out[i] = stored[x]
			}
			return out, nil
		})
		for i := range es {
			hs, err := tlog.StoredHashes(int64(i), audit.Leaf(&es[i]), r)
			if err != nil {
				t.Fatal(err)
			}
			stored = append(stored, hs...)
		}
		if want, _ := tlog.TreeHash(int64(len(es)), r); want != root {
			t.Fatalf("root %x, tlog %x", root, want)
		}
	})

	t.Run("ErrNegativePosition", func(t *testing.T) {
		// A row before position 0 would sit outside what verification reads:
		// the database refuses one, without any trigger lifted.
		dsn := h.NewDSN(t)
		s, err := h.Open(dsn, NewClock().Now)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := h.Exec(dsn, `INSERT INTO audit (seq, time, org_id, actor_id, actor_kind, action_id, event) VALUES (-1, 0, 'o', 'a', 'human', 'act_x', 'action.approval')`); err == nil {
			t.Fatal("a negative position was accepted")
		}
	})

	t.Run("OK_EmptyLogHasNoCheckpoint", func(t *testing.T) {
		// Nothing to sign; the first checkpoint comes with the first entries
		// and later ones stay provable from it.
		s, err := h.Open(h.NewDSN(t), NewClock().Now)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if cp, msg, err := audit.IssueCheckpoint(ctx, s, signer, verifier); err != nil || cp.Size != 0 || msg != nil {
			t.Fatalf("%+v %q %v", cp, msg, err)
		}
		for _, want := range []int64{1, 2} {
			if err := s.Update(ctx, func(tx daoguard.Tx) error {
				return tx.Append(ctx, &daoguard.AuditEntry{OrgID: "o", ActorID: "a", ActorKind: "system", Event: "e"})
			}); err != nil {
				t.Fatal(err)
			}
			cp, msg, err := audit.IssueCheckpoint(ctx, s, signer, verifier)
			if err != nil || cp.Size != want {
				t.Fatalf("%+v %v", cp, err)
			}
			if got, err := audit.OpenCheckpoint(msg, verifier); err != nil || got != cp {
				t.Fatalf("the note says %+v (%v), the checkpoint %+v", got, err, cp)
			}
		}
	})

	if len(h.Untrigger) == 0 {
		return
	}
	t.Run("OK_BackfillsALogWithoutTree", func(t *testing.T) {
		// A store upgraded from before the tree: entries, no hashes. Open
		// writes the tree, and the log verifies with the same root.
		dsn := h.NewDSN(t)
		s, err := h.Open(dsn, NewClock().Now)
		if err != nil {
			t.Fatal(err)
		}
		if err := Seed(ctx, s); err != nil {
			t.Fatal(err)
		}
		fill(t, s, "org_test", 1200) // more than a page of entries
		_, root, _, err := audit.VerifyStore(ctx, s, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		for _, q := range append(append([]string{}, h.Untrigger...), `DELETE FROM audit_hash`, `UPDATE meta SET value = 'pending' WHERE key = 'audit_tree'`) {
			if err := h.Exec(dsn, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		s, err = h.Open(dsn, NewClock().Now)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, again, _, err := audit.VerifyStore(ctx, s, nil); err != nil || again != root {
			t.Fatalf("after the backfill: %x %v, want %x", again, err, root)
		}
	})

	// Each case tampers with a fresh store of 40 entries (Seed writes a
	// few of its own first).
	for _, tc := range []struct {
		name  string
		sql   func(n uint64) []string // n: the log's size
		index func(n uint64) int64    // the first bad entry (-1: none can be named; nil: the entry naming key dgk_forged)
		// foreign: instead of a checkpoint of the log's key, one of another
		// key is recorded
		foreign bool
	}{
		{"ErrByteChanged", func(n uint64) []string {
			return []string{`UPDATE audit SET detail = replace(detail, '"i"', '"j"') WHERE seq = 20`}
		}, func(uint64) int64 { return 20 }, false},
		{"ErrKeyIDChanged", func(n uint64) []string {
			// Another credential named as the actor of an entry that names
			// its request (fill gives every even unit one).
			return []string{`UPDATE audit SET key_id = 'dgk_forged' WHERE seq = (SELECT min(seq) FROM audit WHERE key_id <> '' AND seq > 10)`}
		}, nil, false},
		{"ErrKeyIDAdded", func(n uint64) []string {
			// A request pinned on an entry daoguard wrote on its own.
			return []string{`UPDATE audit SET key_id = 'dgk_forged' WHERE seq = (SELECT min(seq) FROM audit WHERE key_id = '' AND seq > 10)`}
		}, nil, false},
		{"ErrEventChanged", func(n uint64) []string {
			return []string{`UPDATE audit SET event = 'f' WHERE seq = 7`}
		}, func(uint64) int64 { return 7 }, false},
		{"ErrEntryDeleted", func(n uint64) []string {
			return []string{`DELETE FROM audit WHERE seq = 25`}
		}, func(uint64) int64 { return 25 }, false},
		{"ErrEntriesSwapped", func(n uint64) []string {
			return []string{
				`UPDATE audit SET seq = 1000000 WHERE seq = 30`,
				`UPDATE audit SET seq = 30 WHERE seq = 31`,
				`UPDATE audit SET seq = 31 WHERE seq = 1000000`,
			}
		}, func(uint64) int64 { return 30 }, false},
		{"ErrTailEntriesCut", func(n uint64) []string {
			return []string{fmt.Sprintf(`DELETE FROM audit WHERE seq >= %d`, n-3)}
		}, func(n uint64) int64 { return int64(n) - 3 }, false},
		{"ErrEveryHashDeleted", func(n uint64) []string {
			return []string{`DELETE FROM audit_hash`}
		}, func(uint64) int64 { return 0 }, false},
		{name: "ErrTailCutWithItsHashes", sql: func(n uint64) []string {
			// What the tree alone cannot see; the checkpoint can.
			return []string{
				fmt.Sprintf(`DELETE FROM audit WHERE seq >= %d`, n-3),
				fmt.Sprintf(`DELETE FROM audit_hash WHERE idx >= %d`, tlog.StoredHashIndex(0, int64(n)-3)),
			}
		}, index: func(n uint64) int64 { return int64(n) - 3 }},
		{name: "ErrCheckpointOfAnotherKey", sql: func(uint64) []string { return nil }, index: func(uint64) int64 { return -1 }, foreign: true},
		{"ErrHashChanged", func(n uint64) []string {
			return []string{fmt.Sprintf(`DELETE FROM audit_hash WHERE idx = %d`, tlog.StoredHashIndex(0, 12))}
		}, func(uint64) int64 { return 12 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := NewClock()
			dsn := h.NewDSN(t)
			s, err := h.Open(dsn, clock.Now)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { s.Close() }()
			if err := Seed(ctx, s); err != nil {
				t.Fatal(err)
			}
			fill(t, s, "org_test", 40)
			n := auditSize(t, s)
			if tc.foreign {
				oskey, ovkey, _ := note.GenerateKey(rand.Reader, "daoguard/org_test")
				os, _ := note.NewSigner(oskey)
				ov, _ := note.NewVerifier(ovkey)
				if _, _, err := audit.IssueCheckpoint(ctx, s, os, ov); err != nil {
					t.Fatal(err)
				}
			} else {
				cp, _, err := audit.IssueCheckpoint(ctx, s, signer, verifier)
				if err != nil || cp.Size != int64(n) {
					t.Fatalf("checkpoint %+v %v", cp, err)
				}
				if _, _, got, err := audit.VerifyStore(ctx, s, verifier); err != nil || got == nil || got.Size != int64(n) {
					t.Fatalf("before tampering: %v %+v", err, got)
				}
			}
			for _, q := range append(append([]string{}, h.Untrigger...), tc.sql(n)...) {
				if err := h.Exec(dsn, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			// Reopened, as the verifier and serve do: the store must not
			// repair what was done to it.
			s.Close()
			if s, err = h.Open(dsn, clock.Now); err != nil {
				t.Fatal(err)
			}
			want := int64(-2)
			if tc.index != nil {
				want = tc.index(n)
			} else { // the entry the SQL changed: the one naming the forged key
				for _, e := range entries(t, s) {
					if e.KeyID == "dgk_forged" {
						want = int64(e.Seq)
					}
				}
			}
			_, _, _, err = audit.VerifyStore(ctx, s, verifier)
			var te *audit.TamperError
			if !errors.As(err, &te) || te.Index != want {
				t.Fatalf("got %v, want a tamper error at entry %d", err, want)
			}
		})
	}
}
