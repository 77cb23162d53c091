// Package sqlite is the embedded store: one SQLite file in WAL mode, written
// by a single goroutine that commits concurrent units of work together
// (group commit), so every commit is fsynced (synchronous=FULL) and still
// thousands of state changes per second fit through one fsync each batch.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"github.com/daoguard/daoguard/internal/audit"
	"golang.org/x/mod/sumdb/tlog"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/groupcommit"
	"github.com/daoguard/daoguard/internal/sqlrow"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migration/*.sql
var migrations embed.FS

// Defaults copied into a new DB.
const (
	DefaultMaxBatch    = 256    // units of work committed together at most
	DefaultSynchronous = "FULL" // fsync the WAL on every commit: a committed change survives power loss
	DefaultBusyTimeout = 5 * time.Second
)

// DB is the SQLite store. Set the exported fields before Open.
type DB struct {
	Path string
	// Now is the clock; tests inject a fixed one. Times are kept in
	// microseconds, like PostgreSQL, so both stores round-trip the same values.
	Now func() time.Time
	// MaxBatch bounds how many units of work share one commit.
	MaxBatch int
	// Synchronous is SQLite's synchronous pragma: FULL (default, durable on
	// power loss) or NORMAL (durable on process crash only; faster).
	Synchronous string
	// ReadOnly opens an existing, current store for reading only: no
	// migration, no writer, Update refused. The offline verifier opens
	// the store so, and leaves what it checks as it found it.
	ReadOnly bool

	write *sql.DB // exactly one connection, owned by the writer goroutine
	read  *sql.DB
	reads *poolStmts
	queue *groupcommit.Queue
	cache *readCache
	wg    sync.WaitGroup
	stats struct {
		batches, units atomic.Uint64
		commitNanos    atomic.Int64
	}
}

// NewDB returns a DB for the file at path with the defaults.
func NewDB(path string) *DB {
	return &DB{Path: path, Now: time.Now, MaxBatch: DefaultMaxBatch, Synchronous: DefaultSynchronous}
}

func (db *DB) dsn(readonly bool) string {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+db.Synchronous+")")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", DefaultBusyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	if readonly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
		// Each unit of work runs in a savepoint, and SQLite keeps the
		// pages a savepoint may have to restore in a statement journal:
		// a temporary file unless temp_store is MEMORY. On a file it cost
		// a dozen pwrite calls per submission.
		q.Add("_pragma", "temp_store(MEMORY)")
	}
	return "file:" + db.Path + "?" + q.Encode()
}

// Open opens or creates the database, checks its data version, applies
// pending migrations and starts the writer.
//
// Errors: INCOMPATIBLE_STORE if the file was written by a newer daoguard.
func (db *DB) Open() error {
	switch strings.ToUpper(db.Synchronous) {
	case "FULL", "NORMAL", "EXTRA":
	default:
		return daoguard.Errorf(daoguard.CodeConfig, "sqlite synchronous must be FULL, EXTRA or NORMAL, not %q", db.Synchronous)
	}
	if db.ReadOnly {
		return db.openReadOnly()
	}
	// Create the file owner-only before SQLite does (it would use 0644); the
	// -wal and -shm files inherit this mode.
	f, err := os.OpenFile(db.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	if db.write, err = sql.Open("sqlite", db.dsn(false)); err != nil {
		return err
	}
	db.write.SetMaxOpenConns(1)
	db.write.SetConnMaxIdleTime(0)
	if err := db.migrate(context.Background()); err != nil {
		db.write.Close()
		return err
	}
	if db.read, err = sql.Open("sqlite", db.dsn(true)); err != nil {
		db.write.Close()
		return err
	}
	db.read.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	db.read.SetMaxIdleConns(max(4, runtime.GOMAXPROCS(0)))
	db.reads = &poolStmts{db: db.read, stmts: map[string]*sql.Stmt{}}
	db.queue = groupcommit.NewQueue(db.MaxBatch)
	db.cache = newReadCache()
	db.wg.Add(1)
	go db.writer()
	// A log written before its Merkle tree existed gets its tree now (the
	// writer is the only one: nothing is appended meanwhile).
	err = db.Update(context.Background(), func(t daoguard.Tx) error {
		tx := t.(*Tx)
		ctx := context.Background()
		var state string
		if err := tx.q.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'audit_tree'`).Scan(&state); err != nil || state != "pending" {
			return err
		}
		err := audit.Backfill(ctx, tx, func(start int64, hashes []tlog.Hash) error {
			for i, h := range hashes {
				if _, err := tx.q.ExecContext(ctx, `INSERT INTO audit_hash (idx, hash) VALUES (?, ?)`, start+int64(i), h[:]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		_, err = tx.q.ExecContext(ctx, `UPDATE meta SET value = 'complete' WHERE key = 'audit_tree'`)
		return err
	})
	if err != nil {
		db.Close()
		return fmt.Errorf("audit tree: %w", err)
	}
	return nil
}

// openReadOnly is Open for ReadOnly: the file must exist and be current;
// every connection is query_only.
func (db *DB) openReadOnly() error {
	if _, err := os.Stat(db.Path); err != nil {
		return daoguard.Errorf(daoguard.CodeConfig, "no store at %s: %v", db.Path, err)
	}
	// mode=ro, and no pragma that writes (journal_mode would convert a
	// rollback-journal file; a writable connection closing last would
	// checkpoint a crashed writer's WAL into the file): what is verified
	// stays as it was found.
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", DefaultBusyTimeout.Milliseconds()))
	q.Add("_pragma", "query_only(1)")
	var err error
	if db.read, err = sql.Open("sqlite", "file:"+db.Path+"?"+q.Encode()); err != nil {
		return err
	}
	if err = sqlrow.CheckCurrent(migrations, "migration", schema(context.Background(), db.read)); err != nil {
		db.read.Close()
		return err
	}
	db.reads = &poolStmts{db: db.read, stmts: map[string]*sql.Stmt{}}
	db.cache = newReadCache()
	return nil
}

// Close stops the writer after the batch in progress and closes the file.
func (db *DB) Close() error {
	if db.ReadOnly && db.reads != nil {
		db.reads.mu.Lock()
		db.reads.closeLocked()
		db.reads.mu.Unlock()
		err := db.read.Close()
		db.reads = nil
		return err
	}
	if db.queue == nil || !db.queue.Close() {
		return nil
	}
	db.wg.Wait()
	db.reads.mu.Lock()
	db.reads.closeLocked()
	db.reads.mu.Unlock()
	return errors.Join(db.read.Close(), db.write.Close())
}

// schema reads the store's meta table through q (a transaction, or the
// read-only pool).
func schema(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) sqlrow.Schema {
	return sqlrow.Schema{
		HasMeta: func() (bool, error) {
			var n int
			err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'`).Scan(&n)
			return n > 0, err
		},
		Meta: func(key string) (v string, err error) {
			err = q.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
			return v, err
		},
	}
}

// migrate applies the embedded migrations in one transaction, after
// checking that the file is not from a newer daoguard.
func (db *DB) migrate(ctx context.Context) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	sc := schema(ctx, tx)
	err = sqlrow.Migrate(migrations, "migration", sqlrow.Schema{
		HasMeta: sc.HasMeta,
		Meta:    sc.Meta,
		Exec:    func(q string) error { _, err := tx.ExecContext(ctx, q); return err },
		SetVersions: func(schema int) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('schema_version', ?), ('data_version', ?)
				ON CONFLICT (key) DO UPDATE SET value = excluded.value`, strconv.Itoa(schema), strconv.Itoa(daoguard.DataVersion))
			return err
		},
	})
	if err != nil {
		return err
	}
	return tx.Commit()
}

// Update queues fn for the writer and waits until its batch has committed
// (or fn's savepoint was rolled back).
func (db *DB) Update(ctx context.Context, fn func(daoguard.Tx) error) error {
	if db.ReadOnly {
		return daoguard.Errorf(daoguard.CodeInternal, "the store is open read-only")
	}
	return db.queue.Do(ctx, fn)
}

// View runs fn in a read-only snapshot.
func (db *DB) View(ctx context.Context, fn func(daoguard.Tx) error) error {
	gen := db.cache.generation() // before the snapshot begins: see readCache
	q := &txStmts{db: db.read, pool: db.reads}
	defer q.rollback()
	return fn(&Tx{q: q, now: db.now(), readonly: true, cache: db.cache, gen: gen})
}

func (db *DB) now() time.Time { return db.Now().UTC().Truncate(time.Microsecond) }

// writer is the only goroutine that writes. It takes whatever units of work
// are waiting (at most MaxBatch), runs each inside its own savepoint of one
// transaction, and commits once. Under no load a batch is one unit and
// adds no latency; under load the fsync is shared.
func (db *DB) writer() {
	defer db.wg.Done()
	conn, err := db.write.Conn(context.Background())
	if err != nil {
		for batch := []*groupcommit.Unit{}; ; { // fail every unit until Close
			var ok bool
			if batch, ok = db.queue.Next(batch); !ok {
				return
			}
			for _, u := range batch {
				u.Done(err)
			}
		}
	}
	defer conn.Close()
	q := &connStmts{conn: conn, stmts: map[string]*sql.Stmt{}}
	defer q.close()
	wc := newWriterCache()
	batch := make([]*groupcommit.Unit, 0, db.MaxBatch)
	for {
		var ok bool
		if batch, ok = db.queue.Next(batch); !ok {
			return
		}
		db.commit(q, wc, batch)
		wc.endBatch()
	}
}

func (db *DB) commit(conn *connStmts, wc *writerCache, batch []*groupcommit.Unit) {
	ctx := context.Background()
	errs := make([]error, len(batch))
	var held []func() // undo of the units whose writes this batch holds
	// Cached rows this batch changed are dropped once the batch is over,
	// committed or not (dropping too much is only a cache miss), and
	// before any caller learns the outcome: a caller whose revocation
	// returned must never be served the revoked key from the cache.
	var dirtyCreds, dirtyPrincipals []string
	var after []func()
	fail := func(err error) {
		undoAll(held)
		conn.ExecContext(ctx, "ROLLBACK")
		db.cache.invalidate(dirtyCreds, dirtyPrincipals)
		for _, u := range batch {
			u.Done(err)
		}
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		fail(err)
		return
	}
	// Under the write lock: has another connection committed since this
	// writer's last batch? Then what the caches hold may be stale.
	var version int64
	if err := conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&version); err != nil {
		fail(err)
		return
	}
	if version != wc.dataVersion {
		wc.reset()
		wc.dataVersion = version
		db.cache.invalidateAll()
	}
	// The next audit position is read under the write lock, so it is right
	// even if another process wrote the file since the last batch.
	var next uint64
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq) + 1, 0) FROM audit`).Scan(&next); err != nil {
		fail(err)
		return
	}
	first := next
	var appended []*daoguard.AuditEntry // the batch's entries, in log order
	for i, u := range batch {
		if err := u.Ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if _, err := conn.ExecContext(ctx, "SAVEPOINT unit"); err != nil {
			fail(err)
			return
		}
		tx := &Tx{q: conn, now: db.now(), seq: next, wc: wc}
		err := run(u.Fn, tx)
		if err != nil {
			undoAll(tx.undo)
			if _, rerr := conn.ExecContext(ctx, "ROLLBACK TO unit"); rerr != nil {
				fail(rerr)
				return
			}
		} else {
			next = tx.seq
			appended = append(appended, tx.appended...)
			held = append(held, tx.undo...)
			after = append(after, tx.after...)
			dirtyCreds = append(dirtyCreds, tx.dirtyCreds...)
			dirtyPrincipals = append(dirtyPrincipals, tx.dirtyPrincipals...)
		}
		if _, rerr := conn.ExecContext(ctx, "RELEASE unit"); rerr != nil {
			fail(rerr)
			return
		}
		errs[i] = err
	}
	// The entries' Merkle hashes commit with them, or nothing does: a log
	// whose tree cannot be extended takes no more state changes.
	edge, err := writeTree(ctx, conn, wc.tree, first, appended)
	wc.tree = treeEdge{} // valid again only once this batch has committed
	if err != nil {
		fail(fmt.Errorf("audit tree: %w", err))
		return
	}
	start := time.Now()
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		fail(err)
		return
	}
	wc.tree = edge
	db.stats.commitNanos.Add(int64(time.Since(start)))
	db.stats.batches.Add(1)
	db.stats.units.Add(uint64(len(batch)))
	db.cache.invalidate(dirtyCreds, dirtyPrincipals)
	for _, fn := range after {
		fn()
	}
	for i, u := range batch {
		u.Done(errs[i])
	}
}

// run calls fn and turns a panic into an error, so one bad unit of work
// cannot kill the writer and strand every other caller.
func run(fn func(daoguard.Tx) error, tx *Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in store update: %v", p)
		}
	}()
	return fn(tx)
}

// Stats counts the writer's committed batches since Open: how many units of
// work share each commit, and what the commits cost.
type Stats struct {
	Batches    uint64        // batches committed
	Units      uint64        // units of work in them (including units that failed and were rolled back to their savepoint)
	CommitTime time.Duration // time spent in COMMIT: writing the WAL and fsyncing it
}

// Stats returns the counters so far; safe to call at any time.
func (db *DB) Stats() Stats {
	return Stats{Batches: db.stats.batches.Load(), Units: db.stats.units.Load(), CommitTime: time.Duration(db.stats.commitNanos.Load())}
}

// hashRows is how many hashes one INSERT writes.
const hashRows = 32

var insertHashes = `INSERT INTO audit_hash (idx, hash) VALUES (?, ?)` + strings.Repeat(`, (?, ?)`, hashRows-1)

// writeTree adds the Merkle hashes of entries, the leaves first, first+1,
// …: from the right edge of the tree so far, known from the last commit or
// read back, and returns the right edge after them.
func writeTree(ctx context.Context, q querier, known treeEdge, first uint64, entries []*daoguard.AuditEntry) (treeEdge, error) {
	if len(entries) == 0 {
		return known, nil
	}
	var edge []tlog.Hash
	for _, x := range audit.RightEdge(int64(first)) {
		h, ok := known.hashes[x]
		if !ok || known.size != int64(first) {
			var b []byte
			if err := q.QueryRowContext(ctx, `SELECT hash FROM audit_hash WHERE idx = ?`, x).Scan(&b); err != nil {
				return treeEdge{}, fmt.Errorf("hash %d of the tree so far: %w", x, err)
			}
			if len(b) != tlog.HashSize {
				return treeEdge{}, fmt.Errorf("hash %d is %d bytes", x, len(b))
			}
			h = tlog.Hash(b)
		}
		edge = append(edge, h)
	}
	start, hashes, err := audit.Append(int64(first), edge, entries)
	if err != nil {
		return treeEdge{}, err
	}
	args := make([]any, 0, 2*hashRows)
	for i := 0; i < len(hashes); {
		q1, n := insertHashes, hashRows
		if len(hashes)-i < hashRows {
			q1, n = `INSERT INTO audit_hash (idx, hash) VALUES (?, ?)`, 1
		}
		args = args[:0]
		for j := range n {
			args = append(args, start+int64(i+j), hashes[i+j][:])
		}
		if _, err := q.ExecContext(ctx, q1, args...); err != nil {
			return treeEdge{}, err
		}
		i += n
	}
	size := int64(first) + int64(len(entries))
	next := treeEdge{size: size, hashes: map[int64]tlog.Hash{}}
	old := audit.RightEdge(int64(first))
	for _, x := range audit.RightEdge(size) {
		if x >= start {
			next.hashes[x] = hashes[x-start]
			continue
		}
		for i, y := range old {
			if y == x {
				next.hashes[x] = edge[i]
			}
		}
	}
	return next, nil
}
