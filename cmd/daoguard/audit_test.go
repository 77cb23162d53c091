package main

import (
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daoguard/daoguard/client"
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
	code, out, stderr := run(t, nil, "audit", "verify", "--data", dir)
	if code != exitOK || !strings.HasPrefix(out, "audit log intact: ") {
		t.Fatalf("intact log: exit %d %q %s", code, out, stderr)
	}
	code, out, stderr = run(t, nil, "audit", "checkpoint", "--data", dir)
	if code != exitOK || !strings.HasPrefix(out, "daoguard/org_") || !strings.Contains(out, "\n\n— daoguard/org_") {
		t.Fatalf("checkpoint: exit %d %q %s", code, out, stderr)
	}
	if code, out, _ = run(t, nil, "audit", "verify", "--data", dir); code != exitOK || !strings.Contains(out, "latest checkpoint: ") {
		t.Fatalf("with a checkpoint: exit %d %q", code, out)
	}
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
}

// TestServeSignsCheckpoints: serve signs a checkpoint of the log on its
// schedule (audit.checkpoint_every), which the offline verifier checks.
func TestServeSignsCheckpoints(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t)
	if code, _, stderr := run(t, nil, "init", "--data", dir); code != 0 {
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
	logs := &lockedBuffer{}
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
	stop()
	latest, err := os.ReadFile(filepath.Join(dir, "published", "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(filepath.Join(dir, "audit.pub"))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := client.OpenCheckpoint(latest, string(pub))
	if err != nil {
		t.Fatalf("published checkpoint %q: %v", latest, err)
	}
	if kept, err := os.ReadFile(filepath.Join(dir, "published", fmt.Sprintf("checkpoint.%d", cp.Size))); err != nil || string(kept) != string(latest) {
		t.Fatalf("checkpoint.%d: %v %q", cp.Size, err, kept)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(posted) == 0 || posted[len(posted)-1] != string(latest) {
		t.Fatalf("webhook got %q, directory has %q", posted, latest)
	}
	// The checkpoint the CLI signs is published too; the log grew with
	// serve's shutdown entries, if any, or it is the same one.
	if code, out, stderr := run(t, nil, "audit", "checkpoint", "--data", dir); code != exitOK {
		t.Fatalf("checkpoint: %d %s", code, stderr)
	} else if now, _ := os.ReadFile(filepath.Join(dir, "published", "checkpoint")); string(now) != out {
		t.Fatalf("published %q, printed %q", now, out)
	}
}
