package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/storetest"
)

// These tests drive the writer cache through the failures a unit of work
// cannot cause through the Store interface alone (a batch whose COMMIT
// fails, a second connection writing the file), so they live inside the
// package. Several came from an independent review, which found that the
// exported tests missed regressions they catch.

// OpenSeeded opens a fresh store with the suite's organisation. Exported
// for the package's external tests (db_test.go) as well.
func OpenSeeded(t *testing.T) *DB {
	t.Helper()
	db := NewDB(filepath.Join(t.TempDir(), "d.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := storetest.Seed(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return db
}

func readAsset(t *testing.T, db *DB) *daoguard.Asset {
	t.Helper()
	var a *daoguard.Asset
	ctx := context.Background()
	if err := db.Update(ctx, func(tx daoguard.Tx) (err error) { a, err = tx.Asset(ctx, "org_test", "USDC"); return err }); err != nil {
		t.Fatal(err)
	}
	return a
}

// failCommit makes the batch's COMMIT fail: a deferred foreign key that
// is still violated at COMMIT.
func failCommit(ctx context.Context, tx daoguard.Tx) error {
	q := tx.(*Tx).q
	if _, err := q.ExecContext(ctx, `PRAGMA defer_foreign_keys = ON`); err != nil {
		return err
	}
	_, err := q.ExecContext(ctx, `INSERT INTO accounts (org_id, name, chain_id, address, kind) VALUES ('no_such_org', 'x', 1, '0x', 'wallet')`)
	return err
}

func usdc(decimals int) *daoguard.Asset {
	return &daoguard.Asset{OrgID: "org_test", Symbol: "USDC", ChainID: 1337, Address: "0xcccccccccccccccccccccccccccccccccccccccc", Decimals: decimals}
}

// TestWriterCacheBatchRollback: a change the unit read back, in a batch
// whose COMMIT then fails, is not served afterwards.
func TestWriterCacheBatchRollback(t *testing.T) {
	ctx := context.Background()
	db := OpenSeeded(t)
	readAsset(t, db) // cached
	err := db.Update(ctx, func(tx daoguard.Tx) error {
		if err := tx.PutAsset(ctx, usdc(77)); err != nil {
			return err
		}
		if a, err := tx.Asset(ctx, "org_test", "USDC"); err != nil || a.Decimals != 77 {
			t.Errorf("the unit does not see its own change: %v", err)
		}
		return failCommit(ctx, tx)
	})
	if err == nil {
		t.Fatal("the batch committed")
	}
	if a := readAsset(t, db); a.Decimals == 77 {
		t.Fatal("a change rolled back with its batch is served from the writer cache")
	}
}

// TestWriterCacheDirtyForTheWholeBatch: unit 1 changes a row and succeeds,
// unit 2 reads the uncommitted row, unit 3 makes the batch's COMMIT fail.
// What unit 2 read must not be cached (a dirty mark that ended with unit 1
// would let it in).
func TestWriterCacheDirtyForTheWholeBatch(t *testing.T) {
	ctx := context.Background()
	db := OpenSeeded(t)
	readAsset(t, db)
	// Hold the writer in a batch of its own while the three units queue,
	// in order, so that they share the next batch.
	gate, held := make(chan struct{}), make(chan struct{})
	heldDone := make(chan error, 1)
	go func() { heldDone <- db.Update(ctx, func(daoguard.Tx) error { close(held); <-gate; return nil }) }()
	<-held
	units := []func(daoguard.Tx) error{
		func(tx daoguard.Tx) error { return tx.PutAsset(ctx, usdc(66)) },
		func(tx daoguard.Tx) error { _, err := tx.Asset(ctx, "org_test", "USDC"); return err },
		func(tx daoguard.Tx) error { return failCommit(ctx, tx) },
	}
	errs := make(chan error, len(units))
	for i, fn := range units {
		go func() { errs <- db.Update(ctx, fn) }()
		waitQueued(t, db, i+1)
	}
	close(gate)
	if err := <-heldDone; err != nil {
		t.Fatal(err)
	}
	for range units {
		if err := <-errs; err == nil {
			t.Fatal("a unit of the failed batch reported success")
		}
	}
	if a := readAsset(t, db); a.Decimals == 66 {
		t.Fatal("a value read within a batch that rolled back is served from the writer cache")
	}
}

// waitQueued waits until n units wait in db's queue. Not a timing
// assertion: a healthy run waits microseconds; the deadline only turns a
// bug into a failure instead of a hang.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for db.queue.Waiting() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d units never queued", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCachesNoticeAnotherConnection: a commit by another connection (a
// second process on the file) empties the writer cache at the writer's
// next batch, and the read cache with it.
func TestCachesNoticeAnotherConnection(t *testing.T) {
	ctx := context.Background()
	db := OpenSeeded(t)
	readAsset(t, db) // cached in the writer
	view := func() *daoguard.Principal {
		var p *daoguard.Principal
		if err := db.View(ctx, func(tx daoguard.Tx) (err error) { p, err = tx.Principal(ctx, "agent_1"); return err }); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if view().Autonomy == daoguard.AutonomySuspended { // and now in the read cache
		t.Fatal("suspended before the test")
	}
	other, err := sql.Open("sqlite", "file:"+db.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for _, q := range []string{
		`UPDATE assets SET decimals = 55 WHERE org_id = 'org_test' AND symbol = 'USDC'`,
		`UPDATE principals SET autonomy = 'suspended' WHERE id = 'agent_1'`,
	} {
		if _, err := other.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if a := readAsset(t, db); a.Decimals != 55 {
		t.Fatal("the writer cache served a row another connection changed")
	}
	if view().Autonomy != daoguard.AutonomySuspended {
		t.Fatal("the read cache was not emptied when the writer saw data_version move")
	}
}

// TestWriterCacheHandsOutCopies: callers change what they read before
// writing it back; a change that is never written must not reach the
// cache, whether the row came from the cache or was just filled.
func TestWriterCacheHandsOutCopies(t *testing.T) {
	ctx := context.Background()
	db := OpenSeeded(t)
	errFail := errors.New("fail the unit")
	readAsset(t, db)
	db.Update(ctx, func(tx daoguard.Tx) error { // served from the cache
		a, err := tx.Asset(ctx, "org_test", "USDC")
		if err != nil {
			return err
		}
		a.Decimals = 99
		return errFail
	})
	db.Update(ctx, func(tx daoguard.Tx) error { // filled now
		o, err := tx.Org(ctx, "org_test")
		if err != nil {
			return err
		}
		o.Paused = true
		p, err := tx.Principal(ctx, "human_3")
		if err != nil {
			return err
		}
		p.Roles[0] = "mutated"
		return errFail
	})
	if a := readAsset(t, db); a.Decimals == 99 {
		t.Fatal("a caller's change to a cached row reached the cache")
	}
	var o *daoguard.Organisation
	var p *daoguard.Principal
	db.Update(ctx, func(tx daoguard.Tx) (err error) {
		if o, err = tx.Org(ctx, "org_test"); err != nil {
			return err
		}
		p, err = tx.Principal(ctx, "human_3")
		return err
	})
	if o.Paused || p.Roles[0] == "mutated" {
		t.Fatal("a caller's change to a freshly filled row reached the cache")
	}
}

// TestPairKeyIsUnambiguous: no two (organisation, name) pairs share a key.
func TestPairKeyIsUnambiguous(t *testing.T) {
	seen := map[string][2]string{}
	for _, o := range []string{"", "a", "ab", "1:", "a1:", "10:", "1"} {
		for _, n := range []string{"", "b", "ab", ":b", "1:a"} {
			k := pairKey(o, n)
			if prev, ok := seen[k]; ok {
				t.Fatalf("(%q, %q) and %q share the key %q", o, n, prev, k)
			}
			seen[k] = [2]string{o, n}
		}
	}
}

// TestReadCacheSnapshotOlderThanCommit is the race that
// TestReadCacheNeverServesAStaleKey hopes to hit, made deterministic: a
// View whose snapshot began before a revocation reads the key after the
// revocation committed (still unrevoked in its snapshot) and must not
// leave that in the cache.
func TestReadCacheSnapshotOlderThanCommit(t *testing.T) {
	ctx := context.Background()
	db := OpenSeeded(t)
	c := &daoguard.Credential{KeyID: "dg_test_r", PrincipalID: "agent_1", Alg: daoguard.AlgEd25519, PublicKey: []byte{1}, Scopes: []string{"actions:read"}, Environment: "test"}
	if err := db.Update(ctx, func(tx daoguard.Tx) error { return tx.PutCredential(ctx, c) }); err != nil {
		t.Fatal(err)
	}
	started, revoked := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		done <- db.View(ctx, func(tx daoguard.Tx) error {
			if _, err := tx.Org(ctx, "org_test"); err != nil { // the snapshot begins
				return err
			}
			close(started)
			<-revoked
			_, err := tx.Credential(ctx, c.KeyID)
			return err
		})
	}()
	<-started
	c.RevokedAt = time.Now()
	if err := db.Update(ctx, func(tx daoguard.Tx) error { return tx.PutCredential(ctx, c) }); err != nil {
		t.Fatal(err)
	}
	close(revoked)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var got *daoguard.Credential
	if err := db.View(ctx, func(tx daoguard.Tx) (err error) { got, err = tx.Credential(ctx, c.KeyID); return err }); err != nil {
		t.Fatal(err)
	}
	if got.RevokedAt.IsZero() {
		t.Fatal("a View after the revocation committed was served the unrevoked key")
	}
}
