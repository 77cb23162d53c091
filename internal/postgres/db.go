// Package postgres is the store for several gateway processes sharing one
// PostgreSQL database. Concurrency is PostgreSQL's: row locks (SELECT ...
// FOR UPDATE) serialise changes to one action, a lock on one head row makes
// audit positions dense and ordered by commit, and serialization failures
// and deadlocks are retried by re-running the unit of work.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migration/*.sql
var migrations embed.FS

// Defaults copied into a new DB.
const (
	DefaultMaxConns = 16
	DefaultRetries  = 10 // re-runs of a unit of work after a serialization failure or deadlock
)

// DB is the PostgreSQL store. Set the exported fields before Open.
type DB struct {
	ConnString string
	Now        func() time.Time
	MaxConns   int32
	Retries    int

	pool *pgxpool.Pool
}

// NewDB returns a DB for the connection string with the defaults.
func NewDB(conn string) *DB {
	return &DB{ConnString: conn, Now: time.Now, MaxConns: DefaultMaxConns, Retries: DefaultRetries}
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if db.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return err
	}
	if err := db.pool.Ping(ctx); err != nil {
		db.pool.Close()
		return &daoguard.Error{Code: daoguard.CodeUnavailable, Message: "cannot reach PostgreSQL: " + err.Error(), Hint: "check --store and that the server is running"}
	}
	if err := db.migrate(ctx); err != nil {
		db.pool.Close()
		return err
	}
	return nil
}

// Close closes the pool.
func (db *DB) Close() error {
	if db.pool != nil {
		db.pool.Close()
	}
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
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass('meta') IS NOT NULL`).Scan(&exists); err != nil {
		return err
	}
	schema := 0
	if exists {
		var dv, sv string
		if err := tx.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'data_version'`).Scan(&dv); err != nil {
			return fmt.Errorf("read data version: %w", err)
		}
		if err := checkDataVersion(dv); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'schema_version'`).Scan(&sv); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		schema, _ = strconv.Atoi(sv)
	}
	names, err := fs.Glob(migrations, "migration/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for i, name := range names {
		if v := i + 1; v > schema {
			body, err := migrations.ReadFile(name)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return fmt.Errorf("migration %s: %w", name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO meta (key, value) VALUES ('schema_version', $1), ('data_version', $2)
				ON CONFLICT (key) DO UPDATE SET value = excluded.value`, strconv.Itoa(v), strconv.Itoa(daoguard.DataVersion)); err != nil {
				return err
			}
		}
	}
	return tx.Commit(ctx)
}

func checkDataVersion(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		return daoguard.Errorf(daoguard.CodeIncompatibleStore, "store has an unreadable data version %q", s)
	}
	if v > daoguard.DataVersion {
		return &daoguard.Error{Code: daoguard.CodeIncompatibleStore,
			Message: fmt.Sprintf("store data version %d is newer than this daoguard reads (%d)", v, daoguard.DataVersion),
			Hint:    "run a daoguard release at least as new as the one that wrote this store"}
	}
	return nil
}

func (db *DB) now() time.Time { return db.Now().UTC().Truncate(time.Microsecond) }

// Update runs fn in a read-committed transaction; row locks taken through
// Tx.Action serialise writers of the same action. Audit entries fn appends
// are positioned and inserted just before commit.
func (db *DB) Update(ctx context.Context, fn func(daoguard.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := db.update(ctx, fn)
		if err == nil || !retryable(err) || attempt >= db.Retries {
			return err
		}
	}
}

func (db *DB) update(ctx context.Context, fn func(daoguard.Tx) error) error {
	ptx, err := db.pool.Begin(ctx)
	if err != nil {
		return unavailable(err)
	}
	defer ptx.Rollback(context.WithoutCancel(ctx))
	tx := &Tx{q: ptx, now: db.now(), write: true}
	if err := run(fn, tx); err != nil {
		return err
	}
	if err := tx.flushAudit(ctx); err != nil {
		return err
	}
	return ptx.Commit(ctx)
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

// retryable reports serialization failures and deadlocks, after which
// re-running the whole unit of work is correct.
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
