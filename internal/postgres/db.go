// Package postgres is the store for several gateway processes sharing one
// PostgreSQL database. Changes to one action are serialised optimistically:
// every write checks the version the unit read, and a unit that lost a race
// is run again on the new state. A lock on one head row makes audit
// positions dense and ordered by commit. Because that lock is held through the commit's
// WAL flush, each process commits concurrent units of work together (group
// commit): every unit runs in its own savepoint of a shared transaction, and
// the head row is locked once per batch.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"github.com/daoguard/daoguard/internal/audit"
	"golang.org/x/mod/sumdb/tlog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/groupcommit"
	"github.com/daoguard/daoguard/internal/sqlrow"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migration/*.sql
var migrations embed.FS

// Defaults copied into a new DB.
const (
	DefaultMaxConns = 16
	DefaultRetries  = 10  // re-runs of a unit of work after a serialization failure or deadlock
	DefaultMaxBatch = 256 // units of work committed together at most
	DefaultBatchers = 2   // concurrent batches: one runs its units while another commits

	DefaultClockRefresh = 30 * time.Second
	DefaultBatchTimeout = 30 * time.Second // a batch not committed by then fails with UNAVAILABLE
)

// DB is the PostgreSQL store. Set the exported fields before Open.
type DB struct {
	ConnString string
	// Now is the clock. Nil (the default) means the database server's clock:
	// timelocks and leases are judged by several processes, and a process
	// whose own clock runs ahead must not shorten a veto window. The offset
	// to the server's clock is measured at Open and every ClockRefresh.
	Now          func() time.Time
	ClockRefresh time.Duration
	MaxConns     int32
	Retries      int
	MaxBatch     int
	Batchers     int
	BatchTimeout time.Duration
	// ReadOnly opens a current store for reading only: sessions are
	// read-only (default_transaction_read_only), nothing is migrated, no
	// batcher runs and Update is refused. The offline verifier opens the
	// store so.
	ReadOnly bool

	pool   *pgxpool.Pool
	offset atomic.Int64 // server clock minus local clock, in nanoseconds
	queue  *groupcommit.Queue
	quit   chan struct{} // stops the clock loop
	wg     sync.WaitGroup
}

// NewDB returns a DB for the connection string with the defaults.
func NewDB(conn string) *DB {
	return &DB{ConnString: conn, ClockRefresh: DefaultClockRefresh, MaxConns: DefaultMaxConns, Retries: DefaultRetries, MaxBatch: DefaultMaxBatch, Batchers: DefaultBatchers, BatchTimeout: DefaultBatchTimeout}
}

// Open connects, checks the data version and applies pending migrations.
//
// Errors: UNAVAILABLE if the server cannot be reached, INCOMPATIBLE_STORE if
// the database was written by a newer daoguard.
func (db *DB) Open() error {
	cfg, err := pgxpool.ParseConfig(db.ConnString)
	if err != nil {
		return daoguard.Errorf(daoguard.CodeConfig, "invalid PostgreSQL connection string: %v", err)
	}
	cfg.MaxConns = db.MaxConns
	if db.ReadOnly {
		// The server refuses every write in these sessions, whatever a
		// bug here might try.
		cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if db.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return err
	}
	if err := db.pool.Ping(ctx); err != nil {
		db.pool.Close()
		return &daoguard.Error{Code: daoguard.CodeUnavailable, Message: "cannot reach PostgreSQL: " + err.Error(), Hint: "check --store and that the server is running"}
	}
	if db.ReadOnly {
		err := sqlrow.CheckCurrent(migrations, "migration", sqlrow.Schema{
			HasMeta: func() (has bool, err error) {
				err = db.pool.QueryRow(ctx, `SELECT to_regclass('meta') IS NOT NULL`).Scan(&has)
				return has, err
			},
			Meta: func(key string) (v string, err error) {
				err = db.pool.QueryRow(ctx, `SELECT value FROM meta WHERE key = $1`, key).Scan(&v)
				return v, err
			},
		})
		if err != nil {
			db.pool.Close()
		}
		return err
	}
	if err := db.migrate(ctx); err != nil {
		db.pool.Close()
		return err
	}
	db.queue = groupcommit.NewQueue(db.MaxBatch)
	db.quit = make(chan struct{})
	if db.Now == nil {
		if err := db.measureClock(ctx); err != nil {
			db.pool.Close()
			return err
		}
		db.wg.Add(1)
		go db.clockLoop()
	}
	for range max(1, db.Batchers) {
		db.wg.Add(1)
		go db.batcher()
	}
	// A log written before its Merkle tree existed gets its tree now, under
	// the audit head's lock (another replica starting at once waits, then
	// finds the tree there).
	err = db.Update(ctx, func(t daoguard.Tx) error {
		tx := t.(*Tx)
		if _, err := tx.q.Exec(tx.c(ctx), `SELECT next FROM audit_head FOR UPDATE`); err != nil {
			return err
		}
		var state string
		if err := tx.q.QueryRow(tx.c(ctx), `SELECT value FROM meta WHERE key = 'audit_tree'`).Scan(&state); err != nil || state != "pending" {
			return err
		}
		if _, err := tx.q.Exec(tx.c(ctx), `UPDATE meta SET value = 'complete' WHERE key = 'audit_tree'`); err != nil {
			return err
		}
		return audit.Backfill(ctx, tx, func(start int64, hashes []tlog.Hash) error {
			idx := make([]int64, len(hashes))
			hs := make([][]byte, len(hashes))
			for i := range hashes {
				idx[i], hs[i] = start+int64(i), hashes[i][:]
			}
			_, err := tx.q.Exec(tx.c(ctx), `INSERT INTO audit_hash (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])`, idx, hs)
			return err
		})
	})
	if err != nil {
		db.Close()
		return fmt.Errorf("audit tree: %w", err)
	}
	return nil
}

// Close stops the batchers after their batches in progress and closes the pool.
func (db *DB) Close() error {
	if db.ReadOnly && db.pool != nil {
		db.pool.Close()
		db.pool = nil
		return nil
	}
	if db.queue == nil || !db.queue.Close() {
		return nil
	}
	close(db.quit)
	db.wg.Wait()
	db.pool.Close()
	return nil
}

func (db *DB) migrate(ctx context.Context) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	// Replicas starting together migrate one at a time.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('daoguard.migrate'))`); err != nil {
		return err
	}
	err = sqlrow.Migrate(migrations, "migration", sqlrow.Schema{
		HasMeta: func() (has bool, err error) {
			err = tx.QueryRow(ctx, `SELECT to_regclass('meta') IS NOT NULL`).Scan(&has)
			return has, err
		},
		Meta: func(key string) (v string, err error) {
			err = tx.QueryRow(ctx, `SELECT value FROM meta WHERE key = $1`, key).Scan(&v)
			return v, err
		},
		Exec: func(q string) error { _, err := tx.Exec(ctx, q); return err },
		SetVersions: func(schema int) error {
			_, err := tx.Exec(ctx, `INSERT INTO meta (key, value) VALUES ('schema_version', $1), ('data_version', $2)
				ON CONFLICT (key) DO UPDATE SET value = excluded.value`, strconv.Itoa(schema), strconv.Itoa(daoguard.DataVersion))
			return err
		},
	})
	if err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func (db *DB) now() time.Time {
	var t time.Time
	if db.Now != nil {
		t = db.Now()
	} else {
		t = time.Now().Add(time.Duration(db.offset.Load()))
	}
	return t.UTC().Truncate(time.Microsecond)
}

// measureClock sets the offset to the server's clock, taking the middle of
// the round trip as the moment the server read its clock.
func (db *DB) measureClock(ctx context.Context) error {
	var server time.Time
	t0 := time.Now()
	if err := db.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&server); err != nil {
		return unavailable(err)
	}
	t1 := time.Now()
	db.offset.Store(int64(server.Sub(t0.Add(t1.Sub(t0) / 2))))
	return nil
}

func (db *DB) clockLoop() {
	defer db.wg.Done()
	t := time.NewTicker(db.ClockRefresh)
	defer t.Stop()
	for {
		select {
		case <-db.quit:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			db.measureClock(ctx) // on failure keep the last offset; store errors surface elsewhere
			cancel()
		}
	}
}

// Update queues fn for a batcher and waits until its batch has committed (or
// fn's savepoint was rolled back).
func (db *DB) Update(ctx context.Context, fn func(daoguard.Tx) error) error {
	if db.ReadOnly {
		return daoguard.Errorf(daoguard.CodeInternal, "the store is open read-only")
	}
	return db.queue.Do(ctx, fn)
}

// batcher commits the units that are waiting as one read-committed
// transaction, batch after batch.
func (db *DB) batcher() {
	defer db.wg.Done()
	batch := make([]*groupcommit.Unit, 0, db.MaxBatch)
	for {
		var ok bool
		if batch, ok = db.queue.Next(batch); !ok {
			return
		}
		errs, err := db.commitBatch(batch)
		for i, u := range batch {
			if err != nil {
				u.Done(err)
			} else {
				u.Done(errs[i])
			}
		}
	}
}

// commitBatch commits a batch, first without savepoints (two round trips
// fewer per unit); if any unit fails, its writes cannot be undone alone, so
// the batch is rolled back and run again with a savepoint per unit — at most
// two passes however many units fail. A deadlock or serialization failure
// aborts the whole transaction, so the batch is rolled back (releasing every
// lock it holds) and run again after a short random pause.
func (db *DB) commitBatch(batch []*groupcommit.Unit) ([]error, error) {
	for attempt := 0; ; attempt++ {
		errs, err := db.commit(batch, false)
		if errors.Is(err, errUnitFailed) {
			errs, err = db.commit(batch, true)
		}
		if err == nil || !retryable(err) {
			return errs, err
		}
		if attempt >= db.Retries {
			return nil, &daoguard.Error{Code: daoguard.CodeConflict, Message: "the store stayed too contended to commit; nothing was written", Hint: "retry the request"}
		}
		time.Sleep(time.Duration(1+rand.IntN(min(10<<attempt, 100))) * time.Millisecond)
	}
}

// errUnitFailed stops an optimistic pass at the first failing unit.
var errUnitFailed = errors.New("a unit failed in a batch without savepoints")

// commit runs the units in one transaction — with savepoints, each in its
// own — then positions and inserts all their audit entries and commits.
// errs holds each unit's own outcome; err is a failure of the batch as a
// whole. Without savepoints, any unit's failure ends the pass with
// errUnitFailed and nothing committed.
func (db *DB) commit(batch []*groupcommit.Unit, savepoints bool) (errs []error, err error) {
	// The batch's queries run under a context that never ends: with a
	// cancellable one, pgx arms a watcher for every query, a goroutine
	// handoff per round trip. The deadline for the whole batch is instead a
	// timer that closes the connection, so a database that stops answering
	// fails the callers instead of hanging them (they wait for the outcome
	// regardless of their own contexts).
	ctx := context.Background()
	ptx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	defer ptx.Rollback(ctx)
	var expired atomic.Bool
	timer := time.AfterFunc(db.BatchTimeout, func() {
		expired.Store(true)
		ptx.Conn().PgConn().Conn().Close() // safe from another goroutine; the pool drops the connection
	})
	defer timer.Stop()
	batchFailed := func(err error) error {
		if expired.Load() {
			return &daoguard.Error{Code: daoguard.CodeUnavailable, Message: "PostgreSQL did not answer in time; nothing was written", Hint: "check the database"}
		}
		return err
	}
	errs = make([]error, len(batch))
	var pending []*daoguard.AuditEntry
	// Units whose writes this pass holds; if the pass does not commit, their
	// changes to callers' objects are undone before anything reruns.
	var held []func()
	var after []func() // AfterCommit functions of the units that succeeded
	defer func() {
		if err != nil {
			undoAll(held)
		}
	}()
	for i, u := range batch {
		if errs[i] = u.Ctx.Err(); errs[i] != nil {
			continue
		}
		if !savepoints {
			tx := &Tx{q: ptx, now: db.now(), write: true, batch: ctx}
			err := run(u.Fn, tx)
			held = append(held, tx.undo...)
			after = append(after, tx.after...)
			if err != nil {
				if retryable(err) {
					return nil, err
				}
				return nil, errUnitFailed
			}
			pending = append(pending, tx.pending...)
			continue
		}
		// A unit that lost a race on an action is run again alone, inside
		// its savepoint: the other transaction has committed (PostgreSQL
		// waited for it), so the rerun reads the new state.
		for attempt := 0; ; attempt++ {
			sp, err := ptx.Begin(ctx) // SAVEPOINT
			if err != nil {
				return nil, batchFailed(err)
			}
			tx := &Tx{q: sp, now: db.now(), write: true, batch: ctx}
			if errs[i] = run(u.Fn, tx); errs[i] == nil {
				held = append(held, tx.undo...)
				after = append(after, tx.after...)
				if err := sp.Commit(ctx); err != nil { // RELEASE SAVEPOINT
					return nil, batchFailed(err)
				}
				pending = append(pending, tx.pending...)
				break
			}
			undoAll(tx.undo) // its writes are rolled back below
			if retryable(errs[i]) {
				return nil, errs[i] // the transaction is aborted: the whole batch goes again
			}
			if err := sp.Rollback(ctx); err != nil { // ROLLBACK TO SAVEPOINT
				return nil, batchFailed(err)
			}
			if !errors.Is(errs[i], errLostRace) {
				break
			}
			if attempt >= db.Retries {
				errs[i] = daoguard.Errorf(daoguard.CodeConflict, "the action kept changing concurrently; nothing was written")
				break
			}
		}
	}
	if err := flushAudit(ctx, ptx, pending); err != nil {
		return nil, batchFailed(err)
	}
	if err := ptx.Commit(ctx); err != nil {
		if expired.Load() {
			return nil, &daoguard.Error{Code: daoguard.CodeUnavailable, Message: "PostgreSQL did not confirm the commit in time; the outcome is unknown", Hint: "read the action back before retrying"}
		}
		return nil, err
	}
	for _, fn := range after {
		fn()
	}
	return errs, nil
}

// View runs fn in a read-only, repeatable-read snapshot.
func (db *DB) View(ctx context.Context, fn func(daoguard.Tx) error) error {
	ptx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return unavailable(err)
	}
	defer ptx.Rollback(context.WithoutCancel(ctx))
	return run(fn, &Tx{q: ptx, now: db.now()})
}

func run(fn func(daoguard.Tx) error, tx *Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in store update: %v", p)
		}
	}()
	return fn(tx)
}

// retryable reports serialization failures and deadlocks: they abort the
// transaction, after which re-running the whole batch is correct.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

func unavailable(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return &daoguard.Error{Code: daoguard.CodeUnavailable, Message: "PostgreSQL is unreachable", Hint: "check the server"}
	}
	return err
}
