package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
	"github.com/daoguard/daoguard/internal/auth"
	"github.com/jackc/pgx/v5"
)

// TestMain lets the test binary act as a second daoguard process: with
// DAOGUARD_TEST_CHILD_ARGS set, it runs `daoguard` with those arguments.
func TestMain(m *testing.M) {
	if args := os.Getenv("DAOGUARD_TEST_CHILD_ARGS"); args != "" {
		os.Exit((&Main{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}).Run(context.Background(), splitArgs(args)))
	}
	os.Exit(m.Run())
}

// splitArgs splits the child's arguments, one per line.
func splitArgs(s string) []string { return strings.Split(s, "\n") }

// TestReplicasSharePostgres runs two real gateway processes (this one and a
// child) on one PostgreSQL database: a request accepted by one is refused as
// a replay by the other, and a key revoked on one is refused by the other
// on the next request.
func TestReplicasSharePostgres(t *testing.T) {
	base := os.Getenv("DAOGUARD_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("DAOGUARD_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("PostgreSQL required: %v", err)
		}
		t.Skipf("no PostgreSQL: %v", err)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "dgcmd_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); conn.Close(ctx) })
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()

	addr1, addr2 := freeAddr(t), freeAddr(t)
	dir1 := filepath.Join(t.TempDir(), "gw1")
	if code, _, errs := run(t, nil, "init", "--data", dir1, "--store", u.String(), "--url", "http://"+addr1); code != 0 {
		t.Fatal(errs)
	}
	// The second replica: a copy of the data directory (same organisation,
	// same master key), its own lock and node name.
	dir2 := filepath.Join(t.TempDir(), "gw2")
	if out, err := exec.Command("cp", "-a", dir1, dir2).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	logs := &lockedWriter{}
	startServe(t, logs, nil, "--data", dir1, "--addr", addr1)
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "DAOGUARD_TEST_CHILD_ARGS="+strings.Join([]string{"serve", "--data", dir2, "--addr", addr2}, "\n"))
	child.Stderr = logs
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Signal(os.Interrupt); child.Wait() })
	for range 200 {
		if res, err := http.Get("http://" + addr2 + "/healthz"); err == nil {
			res.Body.Close()
			break
		}
		time.Sleep(25 * time.Millisecond)
	}

	admin, err := client.Load(filepath.Join(dir1, "credentials", "admin.json"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := admin.CreatePrincipal(ctx, client.PrincipalRequest{Kind: daoguard.PrincipalAgent, Name: "bot"})
	if err != nil {
		t.Fatal(err)
	}
	nk, err := admin.CreateKey(ctx, client.KeyRequest{Principal: p.ID, Alg: daoguard.AlgHMACSHA256})
	if err != nil {
		t.Fatal(err)
	}
	bot, err := client.FromFile(client.CredentialFile{URL: "http://" + addr1, KeyID: nk.Key.KeyID, Alg: nk.Key.Alg, Secret: nk.Secret})
	if err != nil {
		t.Fatal(err)
	}

	// Signed once, sent to replica 1, then the same bytes to replica 2.
	req, _ := http.NewRequest("GET", "http://"+addr1+"/v1/actions?state=queued", nil)
	if err := auth.SignRequest(req, nil, bot.Signer, time.Now()); err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("replica 1: %v %v", err, res)
	}
	res.Body.Close()
	replay, _ := http.NewRequest("GET", "http://"+addr2+"/v1/actions?state=queued", nil)
	replay.Header = req.Header.Clone()
	res, err = http.DefaultClient.Do(replay)
	if err != nil {
		t.Fatal(err)
	}
	var problem struct{ Code string }
	json.NewDecoder(res.Body).Decode(&problem)
	res.Body.Close()
	if res.StatusCode != 401 || problem.Code != string(daoguard.CodeNonceReused) {
		t.Fatalf("the replay on replica 2 (another process): %d %s, want 401 NONCE_REUSED", res.StatusCode, problem.Code)
	}

	// Revoked on replica 1; refused by replica 2 on the next request.
	on2 := *bot
	on2.URL = "http://" + addr2
	if _, err := on2.Actions(ctx, nil, "", 0); err != nil {
		t.Fatalf("replica 2 before revocation: %v", err)
	}
	if _, err := admin.RevokeKey(ctx, nk.Key.KeyID, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := on2.Actions(ctx, nil, "", 0); daoguard.ErrorCode(err) != daoguard.CodeKeyRevoked {
		t.Fatalf("replica 2 after revocation on replica 1: %v, want KEY_REVOKED", err)
	}
}
