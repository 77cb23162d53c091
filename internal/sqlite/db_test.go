package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/sqlite"
	"github.com/daoguard/daoguard/internal/storetest"
)

var harness = storetest.Harness{
	NewDSN: func(t testing.TB) string { return filepath.Join(t.TempDir(), "daoguard.db") },
	Open: func(dsn string, now func() time.Time) (daoguard.Store, error) {
		db := sqlite.NewDB(dsn)
		db.Now = now
		return db, db.Open()
	},
	Exec: func(dsn, query string) error {
		db, err := sql.Open("sqlite", "file:"+dsn)
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.Exec(query)
		return err
	},
	Untrigger: []string{`DROP TRIGGER audit_no_update`, `DROP TRIGGER audit_no_delete`, `DROP TRIGGER audit_hash_no_update`, `DROP TRIGGER audit_hash_no_delete`},
	OpenReadOnly: func(dsn string) (daoguard.Store, error) {
		db := sqlite.NewDB(dsn)
		db.ReadOnly = true
		return db, db.Open()
	},
}

func TestMain(m *testing.M) {
	storetest.MaybeChild(harness)
	os.Exit(m.Run())
}

func TestConformance(t *testing.T) { storetest.Run(t, harness) }

func BenchmarkStore(b *testing.B) { storetest.Bench(b, harness) }

// BenchmarkStoreSynchronousNormal measures the faster, less durable setting
// (a committed change survives a process crash but not a power loss).
func BenchmarkStoreSynchronousNormal(b *testing.B) {
	h := harness
	h.Open = func(dsn string, now func() time.Time) (daoguard.Store, error) {
		db := sqlite.NewDB(dsn)
		db.Now, db.Synchronous = now, "NORMAL"
		return db, db.Open()
	}
	storetest.Bench(b, h)
}

// TestReadCacheNeverServesAStaleKey: the read cache is exact. After an
// Update that revokes a key returns, every View sees the revocation, even
// with readers filling the cache concurrently with the commit.
func TestReadCacheNeverServesAStaleKey(t *testing.T) {
	ctx := context.Background()
	db := sqlite.OpenSeeded(t)
	read := func(id string) *daoguard.Credential {
		var c *daoguard.Credential
		if err := db.View(ctx, func(tx daoguard.Tx) (err error) { c, err = tx.Credential(ctx, id); return err }); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for i := range 50 {
		id := fmt.Sprintf("dg_test_%d", i)
		c := &daoguard.Credential{KeyID: id, PrincipalID: "agent_1", Alg: daoguard.AlgEd25519, PublicKey: []byte{1}, Scopes: []string{"actions:read"}, Environment: "test"}
		if err := db.Update(ctx, func(tx daoguard.Tx) error { return tx.PutCredential(ctx, c) }); err != nil {
			t.Fatal(err)
		}
		read(id) // cached now
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 { // readers racing the revocation's commit
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
						read(id)
					}
				}
			}()
		}
		c.RevokedAt = time.Now()
		if err := db.Update(ctx, func(tx daoguard.Tx) error { return tx.PutCredential(ctx, c) }); err != nil {
			t.Fatal(err)
		}
		for range 20 {
			if got := read(id); got.RevokedAt.IsZero() {
				t.Fatalf("round %d: a View after the revocation committed saw the key unrevoked", i)
			}
		}
		close(stop)
		wg.Wait()
		if got := read(id); got.RevokedAt.IsZero() {
			t.Fatalf("round %d: stale entry left in the cache", i)
		}
	}
}

// TestWriterCacheIsExact: the writer serves organisations, principals,
// accounts and assets from a cache. A change that commits is seen by the
// next unit of work; a change whose unit fails is never seen, even when the
// unit read the changed row back before failing (the database returned the
// uncommitted value then, and it must not have been cached).
func TestWriterCacheIsExact(t *testing.T) {
	ctx := context.Background()
	db := sqlite.OpenSeeded(t)
	errFail := errors.New("fail the unit")
	// Each case changes one cached row (change), reads it back (read) and
	// tells whether a row shows the change (changed).
	type row = any
	cases := []struct {
		name    string
		change  func(daoguard.Tx) error
		read    func(daoguard.Tx) (row, error)
		changed func(row) bool
	}{
		{"org",
			func(tx daoguard.Tx) error {
				return tx.PutOrg(ctx, &daoguard.Organisation{ID: "org_test", Name: "Test DAO", Paused: true, PausedBy: "human_1"})
			},
			func(tx daoguard.Tx) (row, error) { return tx.Org(ctx, "org_test") },
			func(r row) bool { return r.(*daoguard.Organisation).Paused }},
		{"principal",
			func(tx daoguard.Tx) error {
				p, err := tx.Principal(ctx, "agent_1")
				if err != nil {
					return err
				}
				p.Autonomy = daoguard.AutonomySuspended
				return tx.PutPrincipal(ctx, p)
			},
			func(tx daoguard.Tx) (row, error) { return tx.Principal(ctx, "agent_1") },
			func(r row) bool { return r.(*daoguard.Principal).Autonomy == daoguard.AutonomySuspended }},
		{"account",
			func(tx daoguard.Tx) error {
				return tx.PutAccount(ctx, &daoguard.Account{OrgID: "org_test", Name: "ops", ChainID: 1337, Address: "0xdddddddddddddddddddddddddddddddddddddddd", Kind: daoguard.AccountWallet})
			},
			func(tx daoguard.Tx) (row, error) { return tx.Account(ctx, "org_test", "ops") },
			func(r row) bool { return r.(*daoguard.Account).Address == "0xdddddddddddddddddddddddddddddddddddddddd" }},
		{"asset",
			func(tx daoguard.Tx) error {
				return tx.PutAsset(ctx, &daoguard.Asset{OrgID: "org_test", Symbol: "USDC", ChainID: 1337, Address: "0xcccccccccccccccccccccccccccccccccccccccc", Decimals: 18})
			},
			func(tx daoguard.Tx) (row, error) { return tx.Asset(ctx, "org_test", "USDC") },
			func(r row) bool { return r.(*daoguard.Asset).Decimals == 18 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			read := func() row {
				var r row
				if err := db.Update(ctx, func(tx daoguard.Tx) (err error) { r, err = c.read(tx); return err }); err != nil {
					t.Fatal(err)
				}
				return r
			}
			if c.changed(read()) { // and now cached
				t.Fatal("changed before the test")
			}
			err := db.Update(ctx, func(tx daoguard.Tx) error {
				if err := c.change(tx); err != nil {
					return err
				}
				if r, err := c.read(tx); err != nil || !c.changed(r) {
					t.Errorf("the unit does not see its own change: %v", err)
				}
				return errFail
			})
			if !errors.Is(err, errFail) {
				t.Fatalf("Update = %v", err)
			}
			if c.changed(read()) {
				t.Fatal("a rolled-back change is served from the cache")
			}
			if err := db.Update(ctx, c.change); err != nil {
				t.Fatal(err)
			}
			if !c.changed(read()) {
				t.Fatal("a committed change is not seen by the next unit")
			}
		})
	}
}

// TestColdReadBurstDoesNotDeadlock: many more concurrent read transactions
// than pooled connections, each needing statements that are not prepared
// yet. Preparing on the pool from inside a transaction deadlocked here once
// (every connection held, every holder waiting for another to prepare on).
func TestColdReadBurstDoesNotDeadlock(t *testing.T) {
	ctx := context.Background()
	db := sqlite.OpenSeeded(t)
	done := make(chan error, 64)
	for range 64 {
		go func() {
			done <- db.View(ctx, func(tx daoguard.Tx) error {
				if _, err := tx.Org(ctx, "org_test"); err != nil {
					return err
				}
				if _, err := tx.Account(ctx, "org_test", "ops"); err != nil {
					return err
				}
				if _, err := tx.Asset(ctx, "org_test", "USDC"); err != nil {
					return err
				}
				_, err := tx.AuditEntries(ctx, 0, 10)
				return err
			})
		}()
	}
	// A deadlock detector, not a timing assertion: healthy runs take
	// milliseconds; a deadlocked one never finishes.
	deadline := time.After(60 * time.Second)
	for range 64 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatal("concurrent cold read transactions deadlocked")
		}
	}
}
