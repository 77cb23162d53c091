package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// Preparing a statement (parsing SQL) costs more than running it, so both
// the writer connection and the read pool keep prepared statements, keyed by
// their SQL text. The set of texts is small and fixed (FindActions builds a
// bounded number of variants), and maxCached guards against a bug growing it.
const maxCached = 256

// querier is what Tx needs; both implementations below prepare once.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) scanner
}

type scanner interface{ Scan(dest ...any) error }

// errRow is a row whose statement could not be prepared.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// connStmts prepares on the writer's single connection. Only the writer
// goroutine uses it, so it needs no lock. Its statements ignore the calling
// unit's cancellation: interrupting SQLite inside the batch's transaction
// would roll back every other unit of the batch with it.
type connStmts struct {
	conn  *sql.Conn
	stmts map[string]*sql.Stmt
}

func (c *connStmts) prepare(ctx context.Context, q string) (*sql.Stmt, error) {
	if s, ok := c.stmts[q]; ok {
		return s, nil
	}
	if len(c.stmts) >= maxCached {
		c.close()
	}
	s, err := c.conn.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	c.stmts[q] = s
	return s, nil
}

func (c *connStmts) close() {
	for q, s := range c.stmts {
		s.Close()
		delete(c.stmts, q)
	}
}

func (c *connStmts) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	ctx = context.WithoutCancel(ctx)
	s, err := c.prepare(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

func (c *connStmts) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	ctx = context.WithoutCancel(ctx)
	s, err := c.prepare(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

func (c *connStmts) QueryRowContext(ctx context.Context, q string, args ...any) scanner {
	ctx = context.WithoutCancel(ctx)
	s, err := c.prepare(ctx, q)
	if err != nil {
		return errRow{err}
	}
	return s.QueryRowContext(ctx, args...)
}

// poolStmts prepares on the read pool; database/sql then keeps each
// statement prepared per connection, and a read transaction borrows it.
//
// Preparing on the pool takes a connection from it. A read transaction
// already holds one, so it must never wait for a second: with every
// connection held by a transaction that waits to prepare, nothing would
// ever move (a cold gateway under a burst did exactly that). Transactions
// therefore only look statements up (lookup), prepare a missing one on
// their own connection, and leave warming the pool (get) until they have
// released theirs.
type poolStmts struct {
	db    *sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

func (p *poolStmts) lookup(q string) (*sql.Stmt, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.stmts[q]
	return s, ok
}

// get returns the pool's statement for q, preparing it if needed. The
// caller must hold no connection of the pool. The lock is not held while
// preparing, so one slow prepare does not stall every lookup.
func (p *poolStmts) get(ctx context.Context, q string) (*sql.Stmt, error) {
	if s, ok := p.lookup(q); ok {
		return s, nil
	}
	s, err := p.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.stmts[q]; ok { // prepared meanwhile by another caller
		s.Close()
		return prev, nil
	}
	if len(p.stmts) >= maxCached {
		p.closeLocked()
	}
	p.stmts[q] = s
	return s, nil
}

func (p *poolStmts) closeLocked() {
	for q, s := range p.stmts {
		s.Close()
		delete(p.stmts, q)
	}
}

// txStmts runs a read transaction's queries through the pool's statements.
// The transaction begins at the first query: a View served entirely from
// the read cache costs no BEGIN and no ROLLBACK.
type txStmts struct {
	db      *sql.DB
	tx      *sql.Tx
	err     error
	pool    *poolStmts
	missing []string // statements the pool lacked
}

func (t *txStmts) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if t.tx == nil && t.err == nil {
		t.tx, t.err = t.db.BeginTx(ctx, nil)
	}
	if t.err != nil {
		return nil, t.err
	}
	if s, ok := t.pool.lookup(q); ok {
		return t.tx.StmtContext(ctx, s), nil
	}
	// Not prepared on the pool yet: prepare on this transaction's own
	// connection (never wait for another; see poolStmts), and warm the
	// pool once the transaction is over.
	t.missing = append(t.missing, q)
	return t.tx.PrepareContext(ctx, q)
}

// rollback ends the read transaction, if one began, then prepares on the
// pool the statements it lacked.
func (t *txStmts) rollback() {
	if t.tx != nil {
		t.tx.Rollback()
	}
	for _, q := range t.missing {
		t.pool.get(context.Background(), q) // best effort: a failure only means preparing again
	}
}

func (t *txStmts) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	s, err := t.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

func (t *txStmts) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	s, err := t.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

func (t *txStmts) QueryRowContext(ctx context.Context, q string, args ...any) scanner {
	s, err := t.stmt(ctx, q)
	if err != nil {
		return errRow{err}
	}
	return s.QueryRowContext(ctx, args...)
}
