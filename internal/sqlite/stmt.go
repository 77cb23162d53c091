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
type poolStmts struct {
	db    *sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

func (p *poolStmts) get(ctx context.Context, q string) (*sql.Stmt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.stmts[q]; ok {
		return s, nil
	}
	if len(p.stmts) >= maxCached {
		p.closeLocked()
	}
	s, err := p.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
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
type txStmts struct {
	tx   *sql.Tx
	pool *poolStmts
}

func (t txStmts) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	s, err := t.pool.get(ctx, q)
	if err != nil {
		return nil, err
	}
	return t.tx.StmtContext(ctx, s).ExecContext(ctx, args...)
}

func (t txStmts) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	s, err := t.pool.get(ctx, q)
	if err != nil {
		return nil, err
	}
	return t.tx.StmtContext(ctx, s).QueryContext(ctx, args...)
}

func (t txStmts) QueryRowContext(ctx context.Context, q string, args ...any) scanner {
	s, err := t.pool.get(ctx, q)
	if err != nil {
		return errRow{err}
	}
	return t.tx.StmtContext(ctx, s).QueryRowContext(ctx, args...)
}
