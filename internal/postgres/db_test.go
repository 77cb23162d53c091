package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
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
	Exec: exec,
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

func TestConformance(t *testing.T) {
	needPostgres(t)
	storetest.Run(t, harness)
}

func BenchmarkStore(b *testing.B) {
	needPostgres(b)
	storetest.Bench(b, harness)
}
