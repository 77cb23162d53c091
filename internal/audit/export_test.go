package audit_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/audit"
	"github.com/daoguard/daoguard/internal/sqlite"
	"github.com/daoguard/daoguard/internal/storetest"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// exported is a real store's log, exported with a checkpoint of its size.
type exported struct {
	file    []byte
	cp      []byte
	v       note.Verifier
	entries []daoguard.AuditEntry
	frames  [][]byte // each entry's frame in file: length and leaf
}

func export(t testing.TB, n int) *exported {
	t.Helper()
	ctx := context.Background()
	db := sqlite.NewDB(filepath.Join(t.TempDir(), "d.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := storetest.Seed(ctx, db); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 100 {
		err := db.Update(ctx, func(tx daoguard.Tx) error {
			for j := i; j < min(i+100, n); j++ {
				e := &daoguard.AuditEntry{OrgID: "org_test", ActorID: "agent_1", ActorKind: "agent", ActionID: fmt.Sprintf("act_%d", j), Event: "action.queued",
					Detail: []byte(fmt.Sprintf(`{"verdict":"allow","reasons":["WITHIN_LIMITS"],"n":%d,"note":"<&>"}`, j))}
				if err := tx.Append(ctx, e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	skey, vkey, _ := note.GenerateKey(rand.Reader, "daoguard/org_test")
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	cp, msg, err := audit.IssueCheckpoint(ctx, db, s, v)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if got, err := audit.ExportStore(ctx, db, v, cp.Size, &buf); err != nil || got != cp.Size {
		t.Fatalf("export: %d %v", got, err)
	}
	x := &exported{file: buf.Bytes(), cp: msg, v: v}
	for int64(len(x.entries)) < cp.Size { // the store reads at most 1000 at once
		var page []daoguard.AuditEntry
		db.View(ctx, func(tx daoguard.Tx) (err error) {
			page, err = tx.AuditEntries(ctx, uint64(len(x.entries)), 1000)
			return err
		})
		if len(page) == 0 {
			t.Fatalf("no entry %d", len(x.entries))
		}
		x.entries = append(x.entries, page...)
	}
	audit.ReadExport(bytes.NewReader(x.file), func(_ int64, leaf []byte) error {
		x.frames = append(x.frames, append(binary.AppendUvarint(nil, uint64(len(leaf))), leaf...))
		return nil
	})
	if int64(len(x.frames)) != cp.Size || int64(len(x.entries)) != cp.Size {
		t.Fatalf("%d frames, %d entries, checkpoint of %d", len(x.frames), len(x.entries), cp.Size)
	}
	return x
}

// file reassembles an export from frames.
func file(frames [][]byte) []byte {
	out := []byte("daoguard-audit-export-v1\n")
	for _, f := range frames {
		out = append(out, f...)
	}
	return out
}

// TestExportVerifies: an exported log verifies against its checkpoint
// with the public key alone, and every leaf decodes back into the stored
// entry, exactly.
func TestExportVerifies(t *testing.T) {
	x := export(t, 300)
	n, cp, err := audit.VerifyExport(bytes.NewReader(x.file), x.cp, x.v)
	if err != nil || n != cp.Size || n != int64(len(x.entries)) {
		t.Fatalf("%d %+v %v", n, cp, err)
	}
	err = audit.ReadExport(bytes.NewReader(x.file), func(i int64, leaf []byte) error {
		e, err := audit.ParseLeaf(leaf)
		if err != nil {
			return err
		}
		w := x.entries[i]
		if e.Seq != w.Seq || !e.Time.Equal(w.Time) || e.OrgID != w.OrgID || e.ActorID != w.ActorID || e.ActorKind != w.ActorKind ||
			e.ActionID != w.ActionID || e.Event != w.Event || !bytes.Equal(e.Detail, w.Detail) {
			return fmt.Errorf("entry %d decodes to %+v, stored %+v", i, e, w)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Entries past the checkpoint are read but not covered: verify says
	// how many the checkpoint covers.
	extra := append(append([][]byte{}, x.frames...), frame(t, &daoguard.AuditEntry{Seq: uint64(len(x.frames)), Time: time.Now(), Event: "late"}))
	if n, cp, err := audit.VerifyExport(bytes.NewReader(file(extra)), x.cp, x.v); err != nil || n != cp.Size+1 {
		t.Fatalf("an entry past the checkpoint: %d %d %v", n, cp.Size, err)
	}
}

func frame(t testing.TB, e *daoguard.AuditEntry) []byte {
	leaf := audit.Leaf(e)
	return append(binary.AppendUvarint(nil, uint64(len(leaf))), leaf...)
}

// TestExportTampered: every change to an exported log, or a checkpoint
// from another key, fails verification; where an entry can be named (it
// is missing, moved or malformed), the first bad one is.
func TestExportTampered(t *testing.T) {
	x := export(t, 40)
	other, _, _ := note.GenerateKey(rand.Reader, "daoguard/org_test")
	os, _ := note.NewSigner(other)
	body := strings.SplitN(string(x.cp), "\n\n", 2)[0] + "\n"
	forged, _ := note.Sign(&note.Note{Text: body}, os)
	swapped := append([][]byte{}, x.frames...)
	swapped[7], swapped[8] = swapped[8], swapped[7]
	changed := append([][]byte{}, x.frames...)
	changed[12] = bytes.Replace(changed[12], []byte("allow"), []byte("alloW"), 1)
	for _, tc := range []struct {
		name  string
		file  []byte
		cp    []byte
		index int64 // -1: no single entry can be named
	}{
		{"one byte of an entry changed", file(changed), x.cp, -1},
		{"an entry deleted", file(append(append([][]byte{}, x.frames[:5]...), x.frames[6:]...)), x.cp, 5},
		{"two entries swapped", file(swapped), x.cp, 7},
		{"the tail truncated", file(x.frames[:30]), x.cp, 30},
		{"cut inside an entry", file(x.frames)[:len(file(x.frames))-3], x.cp, int64(len(x.frames) - 1)},
		{"a malformed leaf", file(append(append([][]byte{}, x.frames[:3]...), []byte{2, 'x', 'y'})), x.cp, 3},
		{"a checkpoint signed by another key", file(x.frames), forged, -1},
	} {
		_, _, err := audit.VerifyExport(bytes.NewReader(tc.file), tc.cp, x.v)
		var te *audit.TamperError
		if !errors.As(err, &te) || !errors.Is(err, audit.ErrTampered) || te.Index != tc.index {
			t.Errorf("%s: %v, want entry %d named", tc.name, err, tc.index)
		}
	}
	if _, _, err := audit.VerifyExport(strings.NewReader("hello\n"), x.cp, x.v); err == nil || !strings.Contains(err.Error(), "not a daoguard audit export") {
		t.Errorf("not an export: %v", err)
	}
}

// TestParseLeafCanonical: only Leaf's own encoding parses.
func TestParseLeafCanonical(t *testing.T) {
	e := &daoguard.AuditEntry{Seq: 3, Time: time.UnixMicro(1_700_000_000_123_456).UTC(), OrgID: "o", ActorID: "a", ActorKind: "agent", Event: "e", Detail: []byte(`{}`)}
	leaf := audit.Leaf(e)
	got, err := audit.ParseLeaf(leaf)
	if err != nil || !bytes.Equal(audit.Leaf(got), leaf) {
		t.Fatalf("%v %+v", err, got)
	}
	// An entry with its request: v2, which round-trips too; a v2 leaf
	// without them is v1's entry in another encoding, so refused.
	e2 := *e
	e2.KeyID, e2.RequestDigest = "dgk_test_1", "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="
	leaf2 := audit.Leaf(&e2)
	if got, err := audit.ParseLeaf(leaf2); err != nil || !bytes.Equal(audit.Leaf(got), leaf2) || got.KeyID != e2.KeyID || got.RequestDigest != e2.RequestDigest || !strings.HasPrefix(string(leaf2), "daoguard-audit-v2\n") {
		t.Fatalf("v2: %v %+v", err, got)
	}
	hdr0 := len("daoguard-audit-v1\n") + 16
	empty2 := append(append([]byte("daoguard-audit-v2\n"), leaf[len("daoguard-audit-v1\n"):hdr0]...), 1, 'o', 5, 'a', 'g', 'e', 'n', 't', 1, 'a', 0, 0, 0, 1, 'e', 2, '{', '}')
	if _, err := audit.ParseLeaf(empty2); err == nil || !strings.Contains(err.Error(), "without a key id") {
		t.Fatalf("a v2 leaf without key and digest: %v", err)
	}
	// A length in two bytes where one would do: the same fields, another
	// leaf, so refused.
	hdr := len("daoguard-audit-v1\n") + 16
	long := append(append(append([]byte{}, leaf[:hdr]...), 0x81, 0x00), leaf[hdr+1:]...)
	if _, err := audit.ParseLeaf(long); err == nil {
		t.Fatal("a non-minimal length parsed")
	}
	for _, bad := range [][]byte{nil, leaf[:hdr], append(append([]byte{}, leaf...), 0), []byte("daoguard-audit-v2\n" + string(leaf[hdr-16:]))} {
		if _, err := audit.ParseLeaf(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseLeaf(f *testing.F) {
	f.Add(audit.Leaf(&daoguard.AuditEntry{Seq: 1, Time: time.Unix(1, 0), OrgID: "o", Event: "e", Detail: []byte(`{"a":1}`)}))
	f.Add([]byte("daoguard-audit-v1\n"))
	f.Add(audit.Leaf(&daoguard.AuditEntry{Seq: 2, Time: time.Unix(2, 0), OrgID: "o", Event: "e", KeyID: "k", RequestDigest: "d"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := audit.ParseLeaf(b)
		if err != nil {
			return
		}
		if !bytes.Equal(audit.Leaf(e), b) {
			t.Fatalf("%x parses to an entry whose leaf is %x", b, audit.Leaf(e))
		}
	})
}

func FuzzVerifyExport(f *testing.F) {
	skey, vkey, _ := note.GenerateKey(rand.Reader, "daoguard/org_test")
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	leaf := audit.Leaf(&daoguard.AuditEntry{Seq: 0, Time: time.Unix(1, 0), OrgID: "o", Event: "e"})
	cp, _ := audit.SignCheckpoint(audit.Checkpoint{Origin: "daoguard/org_test", Size: 1, Root: tlog.RecordHash(leaf)}, s)
	good := append(append([]byte("daoguard-audit-export-v1\n"), byte(len(leaf))), leaf...)
	f.Add(good, cp)
	f.Add(good[:30], cp)
	f.Fuzz(func(t *testing.T, file, msg []byte) {
		n, c, err := audit.VerifyExport(bytes.NewReader(file), msg, v)
		if err == nil && (n < c.Size || c.Size < 1) {
			t.Fatalf("verified %d entries against a checkpoint of %d", n, c.Size)
		}
		if err != nil && !errors.Is(err, audit.ErrTampered) {
			if !strings.Contains(err.Error(), "not a daoguard audit export") {
				t.Fatalf("an error that is neither tampering nor a wrong file: %v", err)
			}
		}
	})
}

// BenchmarkVerifyExport: offline verification of an exported log file of
// 1,000,000 entries against its checkpoint (what audit verify --entries
// does), in entries per second.
func BenchmarkVerifyExport(b *testing.B) {
	x := export(b, 1_000_000)
	path := filepath.Join(b.TempDir(), "audit.log")
	if err := os.WriteFile(path, x.file, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(x.file)))
	b.ResetTimer()
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		if n, _, err := audit.VerifyExport(f, x.cp, x.v); err != nil || n != int64(len(x.frames)) {
			b.Fatal(n, err)
		}
		f.Close()
	}
	b.ReportMetric(float64(len(x.frames))*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
