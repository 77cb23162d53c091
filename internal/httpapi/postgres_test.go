package httpapi_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/postgres"
	"github.com/daoguard/daoguard/internal/secrets"
	"github.com/daoguard/daoguard/internal/storetest"
	"github.com/jackc/pgx/v5"
)

// twoGateways returns two gateways, each with its own store connection
// pool, authenticator and HTTP server, sharing one PostgreSQL schema: what
// two replicas behind a load balancer are.
func twoGateways(t testing.TB) (*env, *env) { return twoGatewaysClock(t, storetest.NewClock()) }

// twoGatewaysClock is twoGateways on the given clock (benchmarks use a
// running one).
func twoGatewaysClock(t testing.TB, clock *storetest.Clock) (*env, *env) {
	base := os.Getenv("DAOGUARD_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("DAOGUARD_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("PostgreSQL required: %v", err)
		}
		t.Skipf("no PostgreSQL at %s: %v", base, err)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "dgapi_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()

	keyring, err := secrets.ParseKeyring(secrets.NewKeyringFile())
	if err != nil {
		t.Fatal(err)
	}
	gw := func() *env {
		db := postgres.NewDB(u.String())
		db.Now = clock.Now
		if err := db.Open(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		e := &env{t: t, clock: clock, store: db, keyring: keyring}
		e.serve()
		return e
	}
	a, b2 := gw(), gw()
	if err := storetest.Seed(ctx, a.store); err != nil {
		t.Fatal(err)
	}
	return a, b2
}

func countActions(t *testing.T, s daoguard.Store) int {
	var n int
	ctx := context.Background()
	err := s.View(ctx, func(tx daoguard.Tx) error {
		as, err := tx.FindActions(ctx, daoguard.ActionFilter{Limit: daoguard.MaxFindLimit})
		n = len(as)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTwoGatewaysSharePostgres(t *testing.T) {
	g1, g2 := twoGateways(t)
	agent := g1.key("agent_1", daoguard.AlgHMACSHA256, daoguard.AgentScopes, "test", nil)
	admin := g1.key("human_3", daoguard.AlgEd25519, []string{daoguard.ScopeAdmin}, "test", nil)

	t.Run("ErrReplayedOnSecondGateway", func(t *testing.T) {
		r := signed(t, agent, "POST", "/v1/actions", intentJSON("3"))
		if status, p, _ := send(t, r); status != 201 {
			t.Fatalf("first gateway: %d %+v", status, p)
		}
		n := countActions(t, g2.store)
		// The same bytes, to the other replica: @authority is not covered,
		// so only the nonce store can stop this.
		r2, _ := http.NewRequest("POST", g2.srv.URL+"/v1/actions", ioNop(intentJSON("3")))
		r2.Header = r.Header.Clone()
		status, p, _ := send(t, r2)
		if status != 401 || p.Code != string(daoguard.CodeNonceReused) {
			t.Fatalf("replay on the second gateway: %d %s", status, p.Code)
		}
		if countActions(t, g2.store) != n {
			t.Fatal("the replay created an action")
		}
	})

	t.Run("ErrRevokedOnOneGatewayRefusedOnTheOther", func(t *testing.T) {
		victim := g1.key("agent_2", daoguard.AlgHMACSHA256, daoguard.AgentScopes, "test", nil)
		on2 := *victim
		on2.URL = g2.srv.URL
		if _, err := on2.Actions(context.Background(), nil, "", 0); err != nil {
			t.Fatalf("before revocation, on gateway 2: %v", err)
		}
		if _, err := admin.RevokeKey(context.Background(), victim.Signer.KeyID(), "compromised"); err != nil {
			t.Fatalf("revoke on gateway 1: %v", err)
		}
		_, err := on2.Actions(context.Background(), nil, "", 0)
		if daoguard.ErrorCode(err) != daoguard.CodeKeyRevoked {
			t.Fatalf("the next request on gateway 2: %v, want KEY_REVOKED", err)
		}
	})
}
