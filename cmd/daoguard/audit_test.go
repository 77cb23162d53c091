package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
	"github.com/daoguard/daoguard/internal/audit"
	"github.com/daoguard/daoguard/internal/service"
	"github.com/daoguard/daoguard/internal/sqlite"
	"github.com/daoguard/daoguard/internal/storetest"
	"golang.org/x/mod/sumdb/note"
)

// TestAuditVerify: the offline verifier passes an intact log and, after an
// entry is changed in the database behind the code, fails with exit 1
// naming the first bad entry.
func TestAuditVerify(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, stderr := run(t, nil, "init", "--data", dir); code != 0 {
		t.Fatal(stderr)
	}
	for _, a := range [][]string{
		{"assets", "add", "--data", dir, "--symbol", "ETH", "--decimals", "18", "--chain-id", "1"},
		{"accounts", "add", "--data", dir, "--name", "ops", "--kind", "wallet", "--chain-id", "1"},
		{"assets", "add", "--data", dir, "--symbol", "USDC", "--address", "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", "--decimals", "6", "--chain-id", "1"},
	} {
		if code, _, stderr := run(t, nil, a...); code != 0 {
			t.Fatal(stderr)
		}
	}
	before := mustRead(t, filepath.Join(dir, "data.db"))
	code, out, stderr := run(t, nil, "audit", "verify", "--data", dir)
	if code != exitOK || !strings.HasPrefix(out, "audit log intact: ") {
		t.Fatalf("intact log: exit %d %q %s", code, out, stderr)
	}
	if after := mustRead(t, filepath.Join(dir, "data.db")); !bytes.Equal(before, after) {
		t.Fatal("verify changed the store")
	}
	code, out, stderr = run(t, nil, "audit", "checkpoint", "--data", dir)
	if code != exitOK || !strings.HasPrefix(out, "daoguard/org_") || !strings.Contains(out, "\n\n— daoguard/org_") {
		t.Fatalf("checkpoint: exit %d %q %s", code, out, stderr)
	}
	if code, out, _ = run(t, nil, "audit", "verify", "--data", dir); code != exitOK || !strings.Contains(out, "latest checkpoint: ") {
		t.Fatalf("with a checkpoint: exit %d %q", code, out)
	}
	exportAndVerify(t, dir)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "data.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TRIGGER audit_no_update`, `UPDATE audit SET detail = replace(detail, 'USDC', 'USDT') WHERE event = 'asset.added' AND detail LIKE '%USDC%'`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	var seq int
	if err := db.QueryRow(`SELECT seq FROM audit WHERE detail LIKE '%USDT%'`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, _, stderr = run(t, nil, "audit", "verify", "--data", dir)
	if code != exitFailed || !strings.Contains(stderr, "first bad entry "+strconv.Itoa(seq)+":") {
		t.Fatalf("tampered log: exit %d %s (entry %d changed)", code, stderr, seq)
	}
	// A tampered store is not exported.
	out2 := filepath.Join(t.TempDir(), "again.log")
	code, _, stderr = run(t, nil, "audit", "export", "--data", dir, "--entries", out2, "--checkpoint", out2+".cp")
	if code != exitFailed || !strings.Contains(stderr, "first bad entry "+strconv.Itoa(seq)+":") {
		t.Fatalf("export of a tampered log: exit %d %s", code, stderr)
	}
	if _, err := os.Stat(out2); !os.IsNotExist(err) {
		t.Fatalf("a tampered log was written out: %v", err)
	}
}

// exportAndVerify: audit export writes the log and a checkpoint covering
// it; audit verify checks them with the public key alone, and fails, with
// exit 1, on a changed byte, a cut tail or another key's checkpoint;
// audit show prints the entries.
func exportAndVerify(t *testing.T, dir string) {
	t.Helper()
	tmp := t.TempDir()
	entries, cpFile, pub := filepath.Join(tmp, "audit.log"), filepath.Join(tmp, "audit.checkpoint"), filepath.Join(tmp, "audit.pub")
	code, out, stderr := run(t, nil, "audit", "export", "--data", dir, "--entries", entries, "--checkpoint", cpFile)
	if code != exitOK || !strings.HasPrefix(out, "exported ") {
		t.Fatalf("export: exit %d %q %s", code, out, stderr)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "audit.pub"))
	os.WriteFile(pub, b, 0o644)
	code, out, stderr = run(t, nil, "audit", "verify", "--entries", entries, "--checkpoint", cpFile, "--key", pub)
	if code != exitOK || !strings.HasPrefix(out, "exported audit log intact: ") {
		t.Fatalf("verify export: exit %d %q %s", code, out, stderr)
	}
	code, out, stderr = run(t, nil, "audit", "show", "--entries", entries)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitOK || len(lines) < 4 || !strings.Contains(out, `"event":"asset.added"`) {
		t.Fatalf("show: exit %d %q %s", code, out, stderr)
	}
	var e daoguard.AuditEntry
	if err := json.Unmarshal([]byte(lines[1]), &e); err != nil || e.Seq != 1 {
		t.Fatalf("show line 2: %v %+v", err, e)
	}
	if code, out, _ = run(t, nil, "audit", "show", "--entries", entries, "--from", "2", "--limit", "1"); code != exitOK || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"seq":2,`) {
		t.Fatalf("show --from 2 --limit 1: %q", out)
	}

	raw, _ := os.ReadFile(entries)
	other := filepath.Join(t.TempDir(), "other")
	if code, _, stderr := run(t, nil, "init", "--data", other); code != 0 {
		t.Fatal(stderr)
	}
	cpBytes, _ := os.ReadFile(cpFile)
	write := func(name string, b []byte) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	i := strings.LastIndex(string(raw), "asset.added")
	changed := append([]byte{}, raw...)
	changed[i] = 'A'
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"a byte changed", []string{"--entries", write("changed", changed), "--checkpoint", cpFile, "--key", pub}, exitFailed, "do not hash to the root"},
		{"the tail cut", []string{"--entries", write("cut", raw[:len(raw)-40]), "--checkpoint", cpFile, "--key", pub}, exitFailed, "first bad entry "},
		{"another log's key", []string{"--entries", entries, "--checkpoint", cpFile, "--key", filepath.Join(other, "audit.pub")}, exitFailed, "the checkpoint does not verify"},
		{"a forged checkpoint", []string{"--entries", entries, "--checkpoint", write("forged", []byte(strings.Replace(string(cpBytes), "\n\n", "\nx\n\n", 1))), "--key", pub}, exitFailed, "invalid signature"},
		{"not an export", []string{"--entries", cpFile, "--checkpoint", cpFile, "--key", pub}, exitFailed, "not a daoguard audit export"},
		{"not a checkpoint", []string{"--entries", entries, "--checkpoint", pub, "--key", pub}, exitFailed, "is not a signed checkpoint"},
		{"no such file", []string{"--entries", filepath.Join(tmp, "nope"), "--checkpoint", cpFile, "--key", pub}, exitFailed, "no such file"},
		{"no checkpoint", []string{"--entries", entries, "--key", pub}, exitUsage, "--checkpoint"},
		{"no key", []string{"--entries", entries, "--checkpoint", cpFile}, exitUsage, "--key"},
		{"a key that is no key", []string{"--entries", entries, "--checkpoint", cpFile, "--key", cpFile}, exitFailed, "not a note verifier key"},
	} {
		code, _, stderr := run(t, nil, append([]string{"audit", "verify"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d %q, want %d with %q", tc.name, code, stderr, tc.code, tc.want)
		}
	}
	// show reads an export it has not verified: an entry out of place
	// stops it, with what to run.
	var frames [][]byte
	f, _ := os.Open(entries)
	audit.ReadExport(f, func(_ int64, leaf []byte) error {
		frames = append(frames, append(binary.AppendUvarint(nil, uint64(len(leaf))), leaf...))
		return nil
	})
	f.Close()
	gap := []byte("daoguard-audit-export-v1\n")
	for i, fr := range frames {
		if i != 1 {
			gap = append(gap, fr...)
		}
	}
	if code, out, stderr := run(t, nil, "audit", "show", "--entries", write("gap", gap)); code != exitFailed || !strings.Contains(stderr, "position 1 says it is entry 2") || strings.Count(out, "\n") != 1 {
		t.Errorf("show with an entry missing: exit %d %q %s", code, out, stderr)
	}
	if st, err := os.Stat(entries); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the export's mode: %v %v", st.Mode(), err)
	}
	if code, _, stderr := run(t, nil, "audit", "export", "--data", dir, "--entries", entries); code != exitUsage || !strings.Contains(stderr, "--checkpoint") {
		t.Errorf("export without --checkpoint: %d %s", code, stderr)
	}
}

// TestServeSignsCheckpoints: serve signs a checkpoint of the log on its
// schedule (audit.checkpoint_every), which the offline verifier checks.
func TestServeSignsCheckpoints(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t)
	if code, _, stderr := run(t, nil, "init", "--data", dir, "--url", "http://"+addr); code != 0 {
		t.Fatal(stderr)
	}
	y, err := os.ReadFile(filepath.Join(dir, "daoguard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Each new checkpoint is published to a directory and a webhook.
	var mu sync.Mutex
	var posted []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != "POST" || r.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		posted = append(posted, string(b))
		mu.Unlock()
	}))
	defer hook.Close()
	y = []byte(strings.Replace(string(y), "checkpoint_every: 1m0s", "checkpoint_every: 1s", 1))
	y = []byte(strings.Replace(string(y), `publish_dir: ""`, "publish_dir: published", 1))
	y = []byte(strings.Replace(string(y), `publish_url: ""`, "publish_url: "+hook.URL+"/hooks/t0ken", 1))
	if err := os.WriteFile(filepath.Join(dir, "daoguard.yaml"), y, 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &lockedWriter{}
	stop := startServe(t, logs, nil, "--data", dir, "--addr", addr)
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, out, stderr := run(t, nil, "audit", "verify", "--data", dir)
		if code != exitOK {
			t.Fatalf("exit %d %s", code, stderr)
		}
		if strings.Contains(out, "latest checkpoint: ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint signed: %s\n%s", out, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A refused request's source address is in the log as its keyed hash:
	// the operator finds it with audit pseudonym; the log never holds it.
	if res, err := http.Get("http://" + addr + "/v1/actions"); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned request: %v %v", err, res)
	} else {
		res.Body.Close()
	}
	code, pseudo, stderr := run(t, nil, "audit", "pseudonym", "--data", dir, "127.0.0.1")
	pseudo = strings.TrimSpace(pseudo)
	if code != exitOK || !strings.HasPrefix(pseudo, "hmac:") {
		t.Fatalf("pseudonym: %d %q %s", code, pseudo, stderr)
	}
	adminClient, err := client.Load(filepath.Join(dir, "credentials", "admin.json"))
	if err != nil {
		t.Fatal(err)
	}
	es, err := adminClient.AuditEntries(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range es {
		if strings.Contains(string(e.Detail), "127.0.0.1") {
			t.Fatalf("an address in clear: %+v", e)
		}
		found = found || e.Event == "auth.failed" && strings.Contains(string(e.Detail), `"source":"`+pseudo+`"`)
	}
	if !found {
		t.Fatalf("no auth.failed entry with source %s: %+v", pseudo, es)
	}
	// Any spelling of the address finds the same entries.
	if _, mapped, _ := run(t, nil, "audit", "pseudonym", "--data", dir, "::ffff:127.0.0.1"); strings.TrimSpace(mapped) != pseudo {
		t.Fatalf("the IPv4-mapped spelling: %q, want %q", mapped, pseudo)
	}
	if code, _, _ := run(t, nil, "audit", "pseudonym", "--data", dir); code != exitUsage {
		t.Fatalf("pseudonym without a value: exit %d", code)
	}
	// A human proves entries through the API with the public key alone,
	// keeping the checkpoint it trusts in a file.
	admin, pub, trust := filepath.Join(dir, "credentials", "admin.json"), filepath.Join(dir, "audit.pub"), filepath.Join(t.TempDir(), "trusted")
	for _, i := range []string{"0", "1"} {
		code, out, stderr := run(t, nil, "audit", "proof", "--credential", admin, "--index", i, "--key", pub, "--trust", trust)
		if code != exitOK || !strings.Contains(out, `"seq": `+i+",") || !strings.Contains(stderr, "entry "+i+" is in the log") {
			t.Fatalf("proof of %s: exit %d %q %s", i, code, out, stderr)
		}
		if i == "1" && !strings.Contains(stderr, "extends the trusted checkpoint") {
			t.Fatalf("the second proof did not check consistency: %s", stderr)
		}
	}
	// A trusted checkpoint of another history: the server's log does not
	// extend it.
	other := filepath.Join(t.TempDir(), "other")
	run(t, nil, "init", "--data", other)
	skey, _ := os.ReadFile(filepath.Join(dir, "audit.key"))
	s, _ := note.NewSigner(strings.TrimSpace(string(skey)))
	msg, _ := os.ReadFile(trust)
	c, _ := client.OpenCheckpoint(msg, string(mustRead(t, pub)))
	fake := fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(make([]byte, 32)))
	signedFake, _ := note.Sign(&note.Note{Text: fake}, s)
	os.WriteFile(trust, signedFake, 0o644)
	if code, _, stderr := run(t, nil, "audit", "proof", "--credential", admin, "--index", "0", "--key", pub, "--trust", trust); code != exitFailed || !strings.Contains(stderr, "the log was rewritten") {
		t.Fatalf("another history: exit %d %s", code, stderr)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--credential", admin, "--index", "999999", "--key", pub}, exitFailed, "not found"},
		{[]string{"--credential", admin, "--index", "0", "--key", filepath.Join(other, "audit.pub")}, exitFailed, "does not verify"},
		{[]string{"--credential", admin, "--key", pub}, exitUsage, "--index"},
		{[]string{"--credential", admin, "--index", "0"}, exitUsage, "--key"},
	} {
		if code, _, stderr := run(t, nil, append([]string{"audit", "proof"}, tc.args...)...); code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d %s", tc.args, code, stderr)
		}
	}
	stop()
	latest, err := os.ReadFile(filepath.Join(dir, "published", "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := client.OpenCheckpoint(latest, string(mustRead(t, pub)))
	if err != nil {
		t.Fatalf("published checkpoint %q: %v", latest, err)
	}
	if kept, err := os.ReadFile(filepath.Join(dir, "published", fmt.Sprintf("checkpoint.%d", cp.Size))); err != nil || string(kept) != string(latest) {
		t.Fatalf("checkpoint.%d: %v %q", cp.Size, err, kept)
	}
	mu.Lock()
	last := ""
	if len(posted) > 0 {
		last = posted[len(posted)-1]
	}
	mu.Unlock()
	if last != string(latest) {
		t.Fatalf("webhook got %q last, directory has %q", last, latest)
	}
	// The checkpoint the CLI signs is published too; the log grew with
	// serve's shutdown entries, if any, or it is the same one.
	if code, out, stderr := run(t, nil, "audit", "checkpoint", "--data", dir); code != exitOK {
		t.Fatalf("checkpoint: %d %s", code, stderr)
	} else if now, _ := os.ReadFile(filepath.Join(dir, "published", "checkpoint")); string(now) != out {
		t.Fatalf("published %q, printed %q", now, out)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPublisher: serve's publisher retries a failed publication until it
// succeeds, treats a redirect as a failure (the token-bearing URL is not
// sent on) and never logs the hook's path; in the directory it keeps what
// was published as evidence: checkpoint.<size> is never replaced (another
// of that size is AUDIT_TAMPERED), and checkpoint only by a larger one
// proved to extend it.
func TestPublisher(t *testing.T) {
	ctx := context.Background()
	db := sqlite.NewDB(filepath.Join(t.TempDir(), "d.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	storetest.FillAudit(t, db, 10)
	skey, vkey, _ := note.GenerateKey(nil, "daoguard/org_test")
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	svc := service.New(db, daoguard.DenyAll{}, nil, "test")
	svc.AuditSigner, svc.AuditVerifier = signer, verifier
	sign := func() ([]byte, int64) {
		cp, msg, err := svc.SignCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return msg, cp.Size
	}
	forge := func(size int64) []byte { // the log's key over another history
		b, _ := note.Sign(&note.Note{Text: fmt.Sprintf("daoguard/org_test\n%d\n%s\n", size, base64.StdEncoding.EncodeToString(make([]byte, 32)))}, signer)
		return b
	}
	msg1, size1 := sign()
	storetest.FillAudit(t, db, 5)
	msg2, size2 := sign()

	var mu sync.Mutex
	var got []string
	calls := 0
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the redirect was followed (Referer %q)", r.Referer())
	}))
	defer elsewhere.Close()
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls++
		switch calls {
		case 1:
			http.Error(w, "down", http.StatusBadGateway)
		case 2:
			http.Redirect(w, r, elsewhere.URL+"/x", http.StatusFound)
		default:
			got = append(got, string(b))
		}
	}))
	defer hook.Close()
	dir := t.TempDir()
	logs := &lockedWriter{}
	cfg := DefaultConfig()
	cfg.Audit.PublishDir, cfg.Audit.PublishURL = "pub", hook.URL+"/hooks/s3cret-token"
	p := newPublisher(dir, cfg, slog.New(slog.NewTextHandler(logs, nil)), svc)
	p.retry = 10 * time.Millisecond
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go p.run(rctx)
	p.offer(ctx, msg1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never published: %s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	first, n := got[0], calls
	mu.Unlock()
	if first != string(msg1) || n != 3 {
		t.Fatalf("after %d calls the hook got %q", n, first)
	}
	if strings.Contains(logs.String(), "s3cret") || !strings.Contains(logs.String(), "not published to the webhook") {
		t.Fatalf("logs: %s", logs.String())
	}
	cancel()

	p.hook = "" // the directory alone from here
	latest := filepath.Join(dir, "pub", "checkpoint")
	if !p.publish(ctx, msg2) || string(mustRead(t, latest)) != string(msg2) {
		t.Fatalf("a checkpoint extending the published one was not published: %s", logs.String())
	}
	for name, msg := range map[string][]byte{
		"another checkpoint of a published size": forge(size1),
		"a larger one of another history":        forge(size2 + 5),
		"an older one":                           msg1,
	} {
		p.publish(ctx, msg)
		if string(mustRead(t, latest)) != string(msg2) {
			t.Fatalf("%s replaced the latest", name)
		}
	}
	if b := mustRead(t, filepath.Join(dir, "pub", fmt.Sprintf("checkpoint.%d", size1))); string(b) != string(msg1) {
		t.Fatalf("checkpoint.%d was replaced: %q", size1, b)
	}
	if _, err := os.Stat(filepath.Join(dir, "pub", fmt.Sprintf("checkpoint.%d", size2+5))); err != nil {
		t.Fatal("the forked checkpoint is not kept as evidence")
	}
	if strings.Count(logs.String(), "contradicts the published ones") != 2 || !strings.Contains(logs.String(), "AUDIT_TAMPERED") {
		t.Fatalf("logs: %s", logs.String())
	}
}
