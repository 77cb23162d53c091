package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
	"github.com/daoguard/daoguard/internal/audit"
	"github.com/daoguard/daoguard/internal/auth"
	"github.com/daoguard/daoguard/internal/httpapi"
	"github.com/daoguard/daoguard/internal/secrets"
	"github.com/daoguard/daoguard/internal/service"
	"github.com/daoguard/daoguard/internal/sqlite"
	"github.com/daoguard/daoguard/internal/storetest"
)

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// env is one gateway over a real store, served over real HTTP on loopback.
type env struct {
	t           testing.TB
	clock       *storetest.Clock
	store       daoguard.Store
	dsn         string // the SQLite file, for raw snapshots
	keyring     *secrets.Keyring
	keyringFile []byte // the keyring's text, for a child process serving the same store
	svc         *service.Service
	authn       *auth.Authenticator
	srv         *httptest.Server
	logs        *syncBuffer
	secrets     [][]byte // every secret and private key the test created
}

func newSQLiteEnv(t testing.TB) *env { return newSQLiteEnvClock(t, storetest.NewClock()) }

// newSQLiteEnvClock is newSQLiteEnv on the given clock (benchmarks use a
// running one).
func newSQLiteEnvClock(t testing.TB, clock *storetest.Clock) *env {
	dsn := filepath.Join(t.TempDir(), "d.db")
	db := sqlite.NewDB(dsn)
	db.Now = clock.Now
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := storetest.Seed(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	keyringFile := secrets.NewKeyringFile()
	keyring, err := secrets.ParseKeyring(keyringFile)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, clock: clock, store: db, dsn: dsn, keyring: keyring, keyringFile: keyringFile}
	e.serve()
	return e
}

// serve starts a gateway process-equivalent over e.store: its own service,
// authenticator (and rate limiters) and HTTP server.
func (e *env) serve() {
	e.logs = &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.svc = service.New(e.store, storetest.NewDecider(), nil, "test")
	e.svc.Logger, e.svc.Keyring, e.svc.Environment = log, e.keyring, "test"
	e.authn = auth.New(e.store, e.keyring, "test")
	e.authn.Now, e.authn.Logger = e.clock.Now, log
	e.authn.Pseudonyms, _ = audit.NewPseudonyms([]byte("test audit key"))
	e.authn.FailLimit = auth.NewLimiter("failed-auth", 0, 0) // the table sends many failures from one address
	e.authn.AuditLimit = auth.NewLimiter("failed-auth-audit", 0, 0)
	e.srv = httptest.NewServer((&httpapi.Server{Store: e.store, Service: e.svc, Auth: e.authn, Logger: log}).Handler())
	e.t.Cleanup(e.srv.Close)
}

// key inserts a credential for principal directly into the store (as init
// and an attacker with database access could) and returns a client for it.
func (e *env) key(principal, alg string, scopes []string, env string, edit func(*daoguard.Credential)) *client.Client {
	e.t.Helper()
	c := &daoguard.Credential{KeyID: auth.NewKeyID(env), PrincipalID: principal, Alg: alg, Scopes: scopes, Environment: env}
	var signer client.Signer
	switch alg {
	case daoguard.AlgEd25519:
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		c.PublicKey, signer = pub, &client.Ed25519Signer{ID: c.KeyID, Key: priv}
		e.secrets = append(e.secrets, priv.Seed())
	default:
		secret := make([]byte, 32)
		rand.Read(secret)
		sealed, err := e.keyring.Seal(secret, daoguard.SealedSecretAD(c.KeyID))
		if err != nil {
			e.t.Fatal(err)
		}
		c.SealedSecret, signer = sealed, &client.HMACSigner{ID: c.KeyID, Secret: secret}
		e.secrets = append(e.secrets, secret)
	}
	if edit != nil {
		edit(c)
	}
	ctx := context.Background()
	if err := e.store.Update(ctx, func(tx daoguard.Tx) error { return tx.PutCredential(ctx, c) }); err != nil {
		e.t.Fatal(err)
	}
	return e.client(signer)
}

func (e *env) client(s client.Signer) *client.Client {
	cl := client.New(e.srv.URL, s)
	cl.Now = e.clock.Now
	return cl
}

var humanScopes = []string{daoguard.ScopeActionsRead, daoguard.ScopeApprovalsWrite, daoguard.ScopeControlsWrite, daoguard.ScopeAuditRead}

// snapshot is everything a refused request must leave unchanged: every
// table but the audit log, row by row.
func (e *env) snapshot() string {
	e.t.Helper()
	db, err := sql.Open("sqlite", "file:"+e.dsn+"?mode=ro")
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	var out bytes.Buffer
	for _, q := range []string{
		`SELECT id, state, version FROM actions ORDER BY id`,
		`SELECT action_id, principal_id FROM approvals ORDER BY 1, 2`,
		`SELECT key_id, revoked_at, expires_at, replaced_by, hex(sealed_secret), scopes FROM credentials ORDER BY 1`,
		`SELECT key_id, nonce FROM nonces ORDER BY 1, 2`,
		`SELECT id, paused FROM orgs`,
		`SELECT id, autonomy, updated FROM principals ORDER BY 1`,
	} {
		rows, err := db.Query(q)
		if err != nil {
			e.t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			rows.Scan(ptrs...)
			fmt.Fprintln(&out, vals...)
		}
		rows.Close()
	}
	return out.String()
}

func (e *env) auditSize() uint64 {
	var n uint64
	ctx := context.Background()
	e.store.View(ctx, func(tx daoguard.Tx) (err error) { n, err = tx.AuditSize(ctx); return err })
	return n
}

func (e *env) auditFrom(from uint64) []daoguard.AuditEntry {
	var es []daoguard.AuditEntry
	ctx := context.Background()
	e.store.View(ctx, func(tx daoguard.Tx) (err error) { es, err = tx.AuditEntries(ctx, from, 1000); return err })
	return es
}

// signed builds a request signed by cl as the client would send it.
func signed(t testing.TB, cl *client.Client, method, path string, body []byte) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, cl.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if err := auth.SignRequest(r, body, cl.Signer, cl.Now()); err != nil {
		t.Fatal(err)
	}
	return r
}

// send sends r and returns the status and the problem (if any).
func send(t *testing.T, r *http.Request) (int, httpapi.Problem, http.Header) {
	t.Helper()
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var p httpapi.Problem
	if res.StatusCode >= 400 {
		if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("error answer with Content-Type %q: %s", ct, b)
		}
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("problem body %q: %v", b, err)
		}
	}
	return res.StatusCode, p, res.Header
}

func intentJSON(amount string) []byte {
	return fmt.Appendf(nil, `{"account":"ops","kind":"transfer","asset":"USDC","to":%q,"amount":%q,"rationale":"pay invoice"}`, storetest.Vendor, amount)
}

var _ = time.Second

var base64Std = base64.StdEncoding

func ioNop(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }
