package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var update = flag.Bool("update", false, "rewrite testdata/audit.golden from the current encoding (make golden)")

// goldenEntries cover both leaf versions, empty and non-ASCII fields, a
// detail with bytes JSON would escape, and times at microsecond precision.
func goldenEntries() []*daoguard.AuditEntry {
	t0 := time.Date(2026, 12, 8, 9, 30, 0, 123456000, time.UTC)
	return []*daoguard.AuditEntry{
		{Seq: 0, Time: t0, OrgID: "org_golden", ActorKind: "system", Event: "org.created", Detail: []byte(`{"name":"Golden DAO"}`)},
		{Seq: 1, Time: t0.Add(time.Microsecond), OrgID: "org_golden", ActorKind: "agent", ActorID: "agt_payroll", ActionID: "act_01", Event: "action.queued",
			KeyID: "key_01", RequestDigest: "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:", Detail: []byte(`{"amount":"400","asset":"USDC"}`)},
		{Seq: 2, Time: t0.Add(time.Second), OrgID: "org_golden", ActorKind: "human", ActorID: "hum_alice", ActionID: "act_01", Event: "action.approved",
			KeyID: "key_02", Detail: []byte(`{"comment":"ok — approved <b>"}`)},
		{Seq: 3, Time: t0.Add(time.Hour), OrgID: "org_golden", ActorKind: "system", ActionID: "act_01", Event: "action.executed", Detail: []byte(`{"tx":"0xabc"}`)},
		{Seq: 4, Time: t0.Add(24 * time.Hour), OrgID: "org_golden", ActorKind: "human", ActorID: "hum_bob", Event: "org.paused"},
	}
}

// goldenKey is a fixed Ed25519 key: note keys are generated from 32 bytes
// of randomness, and Ed25519 signatures are deterministic, so the signed
// checkpoint is fixed bytes too.
func goldenKey(t *testing.T) (note.Signer, note.Verifier, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 32)), "daoguard/org_golden")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v, vkey
}

// TestGolden freezes the bytes a verifier outside daoguard relies on: each
// leaf's encoding and hash, the tree's root at every size, and a signed
// checkpoint. A change to any of them is a new leaf version, never an edit
// of these bytes: regenerate (make golden) only for a new version, and
// keep the old one's entries verifying.
func TestGolden(t *testing.T) {
	es := goldenEntries()
	s, v, vkey := goldenKey(t)
	var b strings.Builder
	fmt.Fprintf(&b, "# daoguard audit log: frozen encodings (internal/audit/golden_test.go; regenerate with make golden)\n")
	fmt.Fprintf(&b, "verifier-key %s\n", vkey)
	stored := build(t, es, 2, 3)
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	for i, e := range es {
		leaf := Leaf(e)
		back, err := ParseLeaf(leaf)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if !reflect.DeepEqual(back, e) {
			t.Errorf("entry %d does not parse back: %+v", i, back)
		}
		fmt.Fprintf(&b, "leaf %d %s\n", i, hex.EncodeToString(leaf))
		lh := tlog.RecordHash(leaf)
		fmt.Fprintf(&b, "leaf-hash %d %s\n", i, hex.EncodeToString(lh[:]))
		root, err := tlog.TreeHash(int64(i+1), r)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "root %d %s\n", i+1, base64.StdEncoding.EncodeToString(root[:]))
	}
	root, _ := tlog.TreeHash(int64(len(es)), r)
	cp, err := SignCheckpoint(Checkpoint{Origin: "daoguard/org_golden", Size: int64(len(es)), Root: root}, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(cp, v); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "checkpoint\n%s", cp)
	got := b.String()

	const path = "testdata/audit.golden"
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run make golden once)", err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("the audit encoding changed at %s line %d:\n got  %s\n want %s\nleaves and checkpoints already published would no longer verify: add a leaf version instead", path, i+1, g, w)
			}
		}
	}
}
