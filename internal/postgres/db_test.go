package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/postgres"
	"github.com/daoguard/daoguard/internal/storetest"
	"github.com/jackc/pgx/v5"
)

// The tests use the server in DAOGUARD_TEST_POSTGRES (default: the
// development machines' 127.0.0.1:5432, database test, trust auth). Each
// test gets a schema of its own. Where no server answers, the tests skip
// with a message, unless DAOGUARD_REQUIRE_POSTGRES=1 (set by .ci/run), in
// which case they fail.
func baseURL() string {
	if u := os.Getenv("DAOGUARD_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

func withSchema(base, schema string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

var harness = storetest.Harness{
	NewDSN: func(t testing.TB) string {
		var b [6]byte
		rand.Read(b[:])
		schema := "dgtest_" + hex.EncodeToString(b[:])
		if err := exec(baseURL(), "CREATE SCHEMA "+schema); err != nil {
			t.Fatalf("create schema: %v", err)
		}
		t.Cleanup(func() { exec(baseURL(), "DROP SCHEMA "+schema+" CASCADE") })
		return withSchema(baseURL(), schema)
	},
	Open: func(dsn string, now func() time.Time) (daoguard.Store, error) {
		db := postgres.NewDB(dsn)
		db.Now = now
		return db, db.Open()
	},
	Exec:      exec,
	Untrigger: []string{`ALTER TABLE audit DISABLE TRIGGER USER`, `ALTER TABLE audit_hash DISABLE TRIGGER USER`},
	OpenReadOnly: func(dsn string) (daoguard.Store, error) {
		db := postgres.NewDB(dsn)
		db.ReadOnly = true
		return db, db.Open()
	},
}

func exec(dsn, query string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, query)
	return err
}

// skipReason is set when no server answers and PostgreSQL is not required.
var skipReason string

func TestMain(m *testing.M) {
	storetest.MaybeChild(harness)
	if err := exec(baseURL(), "SELECT 1"); err != nil {
		if os.Getenv("DAOGUARD_REQUIRE_POSTGRES") == "1" {
			fmt.Fprintf(os.Stderr, "PostgreSQL is required (DAOGUARD_REQUIRE_POSTGRES=1) but %s is unreachable: %v\n", baseURL(), err)
			os.Exit(1)
		}
		skipReason = fmt.Sprintf("PostgreSQL tests skipped: no server at %s (%v); set DAOGUARD_TEST_POSTGRES or start one", baseURL(), err)
	}
	os.Exit(m.Run())
}

func needPostgres(t testing.TB) {
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// TestPostgresReachable reports, under -v, whether the suite ran against a
// real server; `make test` prints its line.
func TestPostgresReachable(t *testing.T) {
	needPostgres(t)
	t.Logf("PostgreSQL tests ran against %s", baseURL())
}

// By default the store takes time from the database server's clock.
func TestServerClock(t *testing.T) {
	needPostgres(t)
	db := postgres.NewDB(harness.NewDSN(t))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var server time.Time
	var ours time.Time
	err := db.View(context.Background(), func(tx daoguard.Tx) error {
		ours = tx.Now()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := exec(baseURL(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(context.Background(), baseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := c.QueryRow(context.Background(), `SELECT clock_timestamp()`).Scan(&server); err != nil {
		t.Fatal(err)
	}
	if d := server.Sub(ours); d < 0 || d > 5*time.Second {
		t.Fatalf("store time %s vs server %s", ours, server)
	}
}

func TestConformance(t *testing.T) {
	needPostgres(t)
	storetest.Run(t, harness)
}

func BenchmarkStore(b *testing.B) {
	needPostgres(b)
	storetest.Bench(b, harness)
}

func BenchmarkVerifyStore(b *testing.B) {
	needPostgres(b)
	storetest.BenchVerifyStore(b, harness, 200_000)
}

// Two gateway processes lock the same two actions in opposite order.
// PostgreSQL aborts one as a deadlock victim; the store must roll its whole
// batch back (releasing its locks) and run it again, so both succeed.
func TestDeadlockRetried(t *testing.T) {
	needPostgres(t)
	ctx := context.Background()
	dsn := harness.NewDSN(t)
	var dbs [2]daoguard.Store
	for i := range dbs {
		s, err := harness.Open(dsn, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		dbs[i] = s
	}
	if err := storetest.Seed(ctx, dbs[0]); err != nil {
		t.Fatal(err)
	}
	ids := [2]string{"act_x", "act_y"}
	err := dbs[0].Update(ctx, func(tx daoguard.Tx) error {
		for _, id := range ids {
			a := &daoguard.Action{ID: id, OrgID: "org_test", PrincipalID: "agent_1", RequestHash: "h", Intent: storetest.Transfer("1", storetest.Vendor),
				State: daoguard.StateQueued, Decoded: daoguard.Decoded{Kind: daoguard.KindTransfer, Operation: daoguard.OpCall}}
			if err := tx.CreateAction(ctx, a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	held := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	var first [2]atomic.Bool
	lockBoth := func(i int) error {
		return dbs[i].Update(ctx, func(tx daoguard.Tx) error {
			a, err := tx.Action(ctx, ids[i])
			if err != nil {
				return err
			}
			if !first[i].Swap(true) { // first run only: make sure both hold one lock
				close(held[i])
				select {
				case <-held[1-i]:
				case <-time.After(5 * time.Second):
				}
			}
			b, err := tx.Action(ctx, ids[1-i])
			if err != nil {
				return err
			}
			return errors.Join(tx.UpdateAction(ctx, a), tx.UpdateAction(ctx, b))
		})
	}
	errs := make(chan error, 2)
	for i := range 2 {
		go func() { errs <- lockBoth(i) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a deadlock victim was not retried: %v", err)
		}
	}
	err = dbs[0].View(ctx, func(tx daoguard.Tx) error {
		for _, id := range ids {
			a, err := tx.Action(ctx, id)
			if err != nil {
				return err
			}
			if a.Version != 3 {
				return fmt.Errorf("%s version %d, want 3 (both updates applied once)", id, a.Version)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
