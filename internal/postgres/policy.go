package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/sqlrow"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// lockLedger is the advisory lock class that orders an organisation's
// ledger entries (see LedgerTail).
const lockLedger = 3

func (tx *Tx) AfterCommit(fn func()) {
	if tx.write {
		tx.after = append(tx.after, fn)
	}
}

func (tx *Tx) OnUndo(fn func()) {
	if tx.write {
		tx.undo = append(tx.undo, fn)
	}
}

func (tx *Tx) Accounts(ctx context.Context, orgID string) ([]*daoguard.Account, error) {
	rows, err := tx.q.Query(tx.c(ctx), `SELECT org_id, name, chain_id, address, kind FROM accounts WHERE org_id = $1 ORDER BY name`, orgID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*daoguard.Account
	for rows.Next() {
		var a daoguard.Account
		var kind string
		var chain int64
		if err := rows.Scan(&a.OrgID, &a.Name, &chain, &a.Address, &kind); err != nil {
			return nil, err
		}
		a.ChainID = uint64(chain)
		if a.Kind, err = daoguard.ParseAccountKind(kind); err != nil {
			return nil, err
		}
		out = append(out, &a)
	}
	return out, rows.Err()
}

func (tx *Tx) Assets(ctx context.Context, orgID string) ([]*daoguard.Asset, error) {
	rows, err := tx.q.Query(tx.c(ctx), `SELECT org_id, symbol, chain_id, address, decimals FROM assets WHERE org_id = $1 ORDER BY symbol`, orgID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*daoguard.Asset
	for rows.Next() {
		var a daoguard.Asset
		var chain int64
		if err := rows.Scan(&a.OrgID, &a.Symbol, &chain, &a.Address, &a.Decimals); err != nil {
			return nil, err
		}
		a.ChainID = uint64(chain)
		out = append(out, &a)
	}
	return out, rows.Err()
}

func (tx *Tx) AddPolicy(ctx context.Context, p *daoguard.PolicyVersion) error {
	c := p.Created
	tx.undo = append(tx.undo, func() { p.Created = c })
	p.Created = tx.now
	delete(tx.policyOf, p.OrgID)
	_, err := tx.q.Exec(tx.c(ctx), `INSERT INTO policies (org_id, version, source, digest, action_id, created_by, created) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		p.OrgID, p.Version, p.Source, p.Digest, p.ActionID, p.By, p.Created)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return daoguard.Errorf(daoguard.CodeConflict, "policy version %d already exists; another change landed first", p.Version)
	}
	return err
}

const currentPolicyQuery = `SELECT COALESCE(MAX(version), 0) FROM policies WHERE org_id = $1`

func (tx *Tx) CurrentPolicy(ctx context.Context, orgID string) (int, error) {
	if v, ok := tx.policyOf[orgID]; ok {
		return v, nil
	}
	var v int
	err := tx.q.QueryRow(tx.c(ctx), currentPolicyQuery, orgID).Scan(&v)
	return v, err
}

func (tx *Tx) Policy(ctx context.Context, orgID string, version int) (*daoguard.PolicyVersion, error) {
	var p daoguard.PolicyVersion
	err := tx.q.QueryRow(tx.c(ctx), `SELECT org_id, version, source, digest, action_id, created_by, created FROM policies
		WHERE org_id = $1 AND version = CASE WHEN $2::integer = 0 THEN (SELECT MAX(version) FROM policies WHERE org_id = $1) ELSE $2 END`,
		orgID, version).Scan(&p.OrgID, &p.Version, &p.Source, &p.Digest, &p.ActionID, &p.By, &p.Created)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, daoguard.Errorf(daoguard.CodeNotFound, "policy version %d of %s not found", version, orgID)
	} else if err != nil {
		return nil, err
	}
	p.Created = p.Created.UTC()
	return &p, nil
}

func (tx *Tx) AddLedgerEntry(ctx context.Context, e *daoguard.LedgerEntry) error {
	flows, err := sqlrow.FlowsJSON(e.Flows)
	if err != nil {
		return err
	}
	s, at := e.Seq, e.At
	tx.undo = append(tx.undo, func() { e.Seq, e.At = s, at })
	e.At = tx.now
	var seq int64
	err = tx.q.QueryRow(tx.c(ctx), `INSERT INTO ledger (org_id, action_id, principal_id, at, flows, agent, roles) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq`,
		e.OrgID, e.ActionID, e.PrincipalID, e.At, flows, e.Agent, sqlrow.RolesJSON(e.Roles)).Scan(&seq)
	e.Seq = uint64(seq)
	return err
}

// LedgerTail takes the organisation's ledger lock in a write unit, in the
// same round trip as the read. The lock is exclusive and held until commit:
// a unit of another gateway that wants the same windows waits, then reads
// (its statement's snapshot is taken after the lock is granted) everything
// this one added. Without it, two gateways could each see the budget left
// and both spend it — salami splitting across replicas.
//
// The same round trip reads the policy version in force (CurrentPolicy
// then answers from it): a decision reads it right after the tail, and
// under the lock it cannot change (applyPolicy takes the lock too).
func (tx *Tx) LedgerTail(ctx context.Context, orgID string, after uint64, since time.Time, limit int) ([]daoguard.LedgerEntry, error) {
	const q = `SELECT seq, org_id, action_id, principal_id, at, flows, agent, roles FROM ledger
		WHERE org_id = $1 AND seq > $2 AND at > $3 ORDER BY seq LIMIT $4`
	args := []any{orgID, int64(after), since, limit}
	var rows pgx.Rows
	var br pgx.BatchResults
	if tx.write {
		b := &pgx.Batch{}
		b.Queue(`SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(lockLedger), orgID)
		b.Queue(currentPolicyQuery, orgID)
		b.Queue(q, args...)
		br = tx.q.SendBatch(tx.c(ctx), b)
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, err
		}
		var v int
		if err := br.QueryRow().Scan(&v); err != nil {
			br.Close()
			return nil, err
		}
		if tx.policyOf == nil {
			tx.policyOf = map[string]int{}
		}
		tx.policyOf[orgID] = v
		var err error
		if rows, err = br.Query(); err != nil {
			br.Close()
			return nil, err
		}
	} else {
		var err error
		if rows, err = tx.q.Query(tx.c(ctx), q, args...); err != nil {
			return nil, err
		}
	}
	out, err := scanLedger(rows)
	if br != nil {
		err = errors.Join(err, br.Close())
	}
	return out, err
}

func scanLedger(rows pgx.Rows) ([]daoguard.LedgerEntry, error) {
	defer rows.Close()
	var out []daoguard.LedgerEntry
	for rows.Next() {
		var e daoguard.LedgerEntry
		var seq int64
		var flows []byte
		var roles string
		if err := rows.Scan(&seq, &e.OrgID, &e.ActionID, &e.PrincipalID, &e.At, &flows, &e.Agent, &roles); err != nil {
			return nil, err
		}
		var err error
		if e.Roles, err = sqlrow.ParseRoles(roles); err != nil {
			return nil, err
		}
		e.Seq, e.At = uint64(seq), e.At.UTC()
		if err := json.Unmarshal(flows, &e.Flows); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func (tx *Tx) AddReservations(ctx context.Context, rs []daoguard.Reservation) error {
	for _, r := range rs {
		if _, err := tx.q.Exec(tx.c(ctx), `INSERT INTO reservations (org_id, action_id, account, asset, amount, usd) VALUES ($1, $2, $3, $4, $5::numeric, $6)`,
			r.OrgID, r.ActionID, r.Account, r.Asset, r.Amount.String(), r.USD); err != nil {
			return err
		}
		if _, err := tx.q.Exec(tx.c(ctx), `INSERT INTO reserved_open (org_id, account, asset, amount) VALUES ($1, $2, $3, $4::numeric)
			ON CONFLICT (org_id, account, asset) DO UPDATE SET amount = reserved_open.amount + excluded.amount`,
			r.OrgID, r.Account, r.Asset, r.Amount.String()); err != nil {
			return err
		}
	}
	return nil
}

// Reserved is read after LedgerTail took the organisation's ledger lock,
// so every reservation committed by another gateway before it is seen.
func (tx *Tx) Reserved(ctx context.Context, orgID, account string, settledAfter time.Time) (map[string]*big.Int, error) {
	rows, err := tx.q.Query(tx.c(ctx), `SELECT asset, amount::text FROM reserved_open WHERE org_id = $1 AND account = $2
		UNION ALL SELECT asset, amount::text FROM reserved_settled WHERE org_id = $1 AND account = $2 AND second >= $3`,
		orgID, account, settledAfter.Unix())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return sqlrow.SumReserved(rows)
}

// EndReservations moves the action's reservations out of the open totals
// (into the settled ones, executed) in one statement.
func (tx *Tx) EndReservations(ctx context.Context, actionID string, settled bool) error {
	_, err := tx.q.Exec(tx.c(ctx), `WITH gone AS (
			DELETE FROM reservations WHERE action_id = $1 RETURNING org_id, account, asset, amount
		), opened AS (
			UPDATE reserved_open o SET amount = o.amount - g.amount FROM gone g
			WHERE o.org_id = g.org_id AND o.account = g.account AND o.asset = g.asset
		)
		INSERT INTO reserved_settled (org_id, account, asset, second, amount)
		SELECT org_id, account, asset, $2, amount FROM gone WHERE $3
		ON CONFLICT (org_id, account, second, asset) DO UPDATE SET amount = reserved_settled.amount + excluded.amount`,
		actionID, tx.now.Unix(), settled)
	if err != nil || !settled {
		return err
	}
	_, err = tx.q.Exec(tx.c(ctx), `DELETE FROM reserved_settled WHERE second < $1`, tx.now.Add(-daoguard.SettledMemory).Unix())
	return err
}

func (tx *Tx) AgentStats(ctx context.Context, principalID string) ([]byte, error) {
	var b []byte
	err := tx.q.QueryRow(tx.c(ctx), `SELECT stats FROM agent_stats WHERE principal_id = $1`, principalID).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return b, err
}

func (tx *Tx) PutAgentStats(ctx context.Context, orgID, principalID string, stats []byte) error {
	_, err := tx.q.Exec(tx.c(ctx), `INSERT INTO agent_stats (principal_id, org_id, stats) VALUES ($1, $2, $3)
		ON CONFLICT (principal_id) DO UPDATE SET stats = excluded.stats`, principalID, orgID, stats)
	return err
}

// LockLedger takes the organisation's ledger lock, held to commit (taking
// it again in the same transaction is free of effect).
func (tx *Tx) LockLedger(ctx context.Context, orgID string) error {
	if !tx.write {
		return nil
	}
	_, err := tx.q.Exec(tx.c(ctx), `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(lockLedger), orgID)
	return err
}

func (tx *Tx) PutLedgerSnapshot(ctx context.Context, s *daoguard.LedgerSnapshot) error {
	_, err := tx.q.Exec(tx.c(ctx), `INSERT INTO ledger_snapshots (org_id, seq, taken_at, data) VALUES ($1, $2, $3, $4)
		ON CONFLICT (org_id) DO UPDATE SET seq = excluded.seq, taken_at = excluded.taken_at, data = excluded.data
		WHERE excluded.seq > ledger_snapshots.seq`, s.OrgID, int64(s.Seq), tx.now, s.Data)
	return err
}

func (tx *Tx) LedgerSnapshot(ctx context.Context, orgID string) (*daoguard.LedgerSnapshot, error) {
	s := &daoguard.LedgerSnapshot{OrgID: orgID}
	var seq int64
	var at time.Time
	err := tx.q.QueryRow(tx.c(ctx), `SELECT seq, taken_at, data FROM ledger_snapshots WHERE org_id = $1`, orgID).Scan(&seq, &at, &s.Data)
	if err != nil {
		return nil, notFound(err, "ledger snapshot of", orgID)
	}
	s.Seq, s.At = uint64(seq), at.UTC()
	return s, nil
}
