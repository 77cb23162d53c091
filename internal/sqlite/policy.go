package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/sqlrow"
)

func (tx *Tx) AfterCommit(fn func()) {
	if !tx.readonly {
		tx.after = append(tx.after, fn)
	}
}

func (tx *Tx) OnUndo(fn func()) {
	if !tx.readonly {
		tx.undo = append(tx.undo, fn)
	}
}

func (tx *Tx) Accounts(ctx context.Context, orgID string) ([]*daoguard.Account, error) {
	rows, err := tx.q.QueryContext(ctx, `SELECT org_id, name, chain_id, address, kind FROM accounts WHERE org_id = ? ORDER BY name`, orgID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*daoguard.Account
	for rows.Next() {
		var a daoguard.Account
		var kind string
		if err := rows.Scan(&a.OrgID, &a.Name, &a.ChainID, &a.Address, &kind); err != nil {
			return nil, err
		}
		if a.Kind, err = daoguard.ParseAccountKind(kind); err != nil {
			return nil, err
		}
		out = append(out, &a)
	}
	return out, rows.Err()
}

func (tx *Tx) Assets(ctx context.Context, orgID string) ([]*daoguard.Asset, error) {
	rows, err := tx.q.QueryContext(ctx, `SELECT org_id, symbol, chain_id, address, decimals FROM assets WHERE org_id = ? ORDER BY symbol`, orgID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*daoguard.Asset
	for rows.Next() {
		var a daoguard.Asset
		if err := rows.Scan(&a.OrgID, &a.Symbol, &a.ChainID, &a.Address, &a.Decimals); err != nil {
			return nil, err
		}
		out = append(out, &a)
	}
	return out, rows.Err()
}

func (tx *Tx) AddPolicy(ctx context.Context, p *daoguard.PolicyVersion) error {
	c := p.Created
	tx.undo = append(tx.undo, func() { p.Created = c })
	p.Created = tx.now
	_, err := tx.q.ExecContext(ctx, `INSERT INTO policies (org_id, version, source, digest, action_id, created_by, created) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		p.OrgID, p.Version, p.Source, p.Digest, p.ActionID, p.By, micros(p.Created))
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return daoguard.Errorf(daoguard.CodeConflict, "policy version %d already exists; another change landed first", p.Version)
	}
	return err
}

func (tx *Tx) CurrentPolicy(ctx context.Context, orgID string) (int, error) {
	var v int
	err := tx.q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM policies WHERE org_id = ?`, orgID).Scan(&v)
	return v, err
}

func (tx *Tx) Policy(ctx context.Context, orgID string, version int) (*daoguard.PolicyVersion, error) {
	var p daoguard.PolicyVersion
	var created int64
	err := tx.q.QueryRowContext(ctx, `SELECT org_id, version, source, digest, action_id, created_by, created FROM policies
		WHERE org_id = ? AND (version = ? OR (? = 0 AND version = (SELECT MAX(version) FROM policies WHERE org_id = ?)))`,
		orgID, version, version, orgID).Scan(&p.OrgID, &p.Version, &p.Source, &p.Digest, &p.ActionID, &p.By, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, daoguard.Errorf(daoguard.CodeNotFound, "policy version %d of %s not found", version, orgID)
	} else if err != nil {
		return nil, err
	}
	p.Created = fromMicros(created)
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
	res, err := tx.q.ExecContext(ctx, `INSERT INTO ledger (org_id, action_id, principal_id, at, flows, agent, roles) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.OrgID, e.ActionID, e.PrincipalID, micros(e.At), string(flows), e.Agent, sqlrow.RolesJSON(e.Roles))
	if err != nil {
		return err
	}
	id, err := res.LastInsertId()
	e.Seq = uint64(id)
	return err
}

// LedgerTail needs no lock: SQLite has one writer, so entries are added in
// commit order and no unit can interleave with another.
func (tx *Tx) LedgerTail(ctx context.Context, orgID string, after uint64, since time.Time, limit int) ([]daoguard.LedgerEntry, error) {
	rows, err := tx.q.QueryContext(ctx, `SELECT seq, org_id, action_id, principal_id, at, flows, agent, roles FROM ledger
		WHERE org_id = ? AND seq > ? AND at > ? ORDER BY seq LIMIT ?`, orgID, int64(after), micros(since), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []daoguard.LedgerEntry
	for rows.Next() {
		var e daoguard.LedgerEntry
		var at int64
		var flows, roles string
		if err := rows.Scan(&e.Seq, &e.OrgID, &e.ActionID, &e.PrincipalID, &at, &flows, &e.Agent, &roles); err != nil {
			return nil, err
		}
		if e.Roles, err = sqlrow.ParseRoles(roles); err != nil {
			return nil, err
		}
		e.At = fromMicros(at)
		if err := json.Unmarshal([]byte(flows), &e.Flows); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func (tx *Tx) AddReservations(ctx context.Context, rs []daoguard.Reservation) error {
	for _, r := range rs {
		if _, err := tx.q.ExecContext(ctx, `INSERT INTO reservations (org_id, action_id, account, asset, amount, usd) VALUES (?, ?, ?, ?, ?, ?)`,
			r.OrgID, r.ActionID, r.Account, r.Asset, r.Amount.String(), r.USD); err != nil {
			return err
		}
		if err := tx.addReserved(ctx, r.OrgID, r.Account, r.Asset, r.Amount.Int()); err != nil {
			return err
		}
	}
	return nil
}

// addReserved adds delta (maybe negative) to the account's open total of
// an asset. SQLite has no 256-bit integers: the sum is made here, under
// the single writer.
func (tx *Tx) addReserved(ctx context.Context, org, account, asset string, delta *big.Int) error {
	var text string
	err := tx.q.QueryRowContext(ctx, `SELECT amount FROM reserved_open WHERE org_id = ? AND account = ? AND asset = ?`, org, account, asset).Scan(&text)
	cur := new(big.Int)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return err
	default:
		if _, ok := cur.SetString(text, 10); !ok {
			return fmt.Errorf("reserved_open holds %q, not an amount", text)
		}
	}
	cur.Add(cur, delta)
	if cur.Sign() < 0 {
		return fmt.Errorf("reserved %s of %s would go below zero", asset, account)
	}
	_, err = tx.q.ExecContext(ctx, `INSERT INTO reserved_open (org_id, account, asset, amount) VALUES (?, ?, ?, ?)
		ON CONFLICT (org_id, account, asset) DO UPDATE SET amount = excluded.amount`, org, account, asset, cur.String())
	return err
}

func (tx *Tx) Reserved(ctx context.Context, orgID, account string, settledAfter time.Time) (map[string]*big.Int, error) {
	rows, err := tx.q.QueryContext(ctx, `SELECT asset, amount FROM reserved_open WHERE org_id = ? AND account = ?
		UNION ALL SELECT asset, amount FROM reserved_settled WHERE org_id = ? AND account = ? AND second >= ?`,
		orgID, account, orgID, account, floorSecond(settledAfter))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return sqlrow.SumReserved(rows)
}

// floorSecond is the settlement bucket holding t: a bucket counts if any
// of its second may be after the snapshot (never less than exact).
func floorSecond(t time.Time) int64 { return t.Unix() }

func (tx *Tx) EndReservations(ctx context.Context, actionID string, settled bool) error {
	rows, err := tx.q.QueryContext(ctx, `SELECT org_id, account, asset, amount FROM reservations WHERE action_id = ?`, actionID)
	if err != nil {
		return err
	}
	type res struct {
		org, account, asset string
		amount              *big.Int
	}
	var rs []res
	for rows.Next() {
		var r res
		var text string
		if err := rows.Scan(&r.org, &r.account, &r.asset, &text); err != nil {
			rows.Close()
			return err
		}
		var ok bool
		if r.amount, ok = new(big.Int).SetString(text, 10); !ok {
			rows.Close()
			return fmt.Errorf("reservation of %s holds %q", actionID, text)
		}
		rs = append(rs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(rs) == 0 {
		return err
	}
	if _, err := tx.q.ExecContext(ctx, `DELETE FROM reservations WHERE action_id = ?`, actionID); err != nil {
		return err
	}
	sec := tx.now.Unix()
	for _, r := range rs {
		if err := tx.addReserved(ctx, r.org, r.account, r.asset, new(big.Int).Neg(r.amount)); err != nil {
			return err
		}
		if !settled {
			continue
		}
		var text string
		err := tx.q.QueryRowContext(ctx, `SELECT amount FROM reserved_settled WHERE org_id = ? AND account = ? AND second = ? AND asset = ?`, r.org, r.account, sec, r.asset).Scan(&text)
		sum := new(big.Int).Set(r.amount)
		if err == nil {
			prev, ok := new(big.Int).SetString(text, 10)
			if !ok {
				return fmt.Errorf("reserved_settled holds %q", text)
			}
			sum.Add(sum, prev)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if _, err := tx.q.ExecContext(ctx, `INSERT INTO reserved_settled (org_id, account, asset, second, amount) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (org_id, account, second, asset) DO UPDATE SET amount = excluded.amount`, r.org, r.account, r.asset, sec, sum.String()); err != nil {
			return err
		}
	}
	if settled {
		_, err = tx.q.ExecContext(ctx, `DELETE FROM reserved_settled WHERE second < ?`, tx.now.Add(-daoguard.SettledMemory).Unix())
	}
	return err
}

func (tx *Tx) AgentStats(ctx context.Context, principalID string) ([]byte, error) {
	var b []byte
	err := tx.q.QueryRowContext(ctx, `SELECT stats FROM agent_stats WHERE principal_id = ?`, principalID).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return b, err
}

func (tx *Tx) PutAgentStats(ctx context.Context, orgID, principalID string, stats []byte) error {
	_, err := tx.q.ExecContext(ctx, `INSERT INTO agent_stats (principal_id, org_id, stats) VALUES (?, ?, ?)
		ON CONFLICT (principal_id) DO UPDATE SET stats = excluded.stats`, principalID, orgID, stats)
	return err
}

// LockLedger: SQLite has one writer; every unit is already alone.
func (tx *Tx) LockLedger(context.Context, string) error { return nil }

func (tx *Tx) PutLedgerSnapshot(ctx context.Context, s *daoguard.LedgerSnapshot) error {
	_, err := tx.q.ExecContext(ctx, `INSERT INTO ledger_snapshots (org_id, seq, taken_at, data) VALUES (?, ?, ?, ?)
		ON CONFLICT (org_id) DO UPDATE SET seq = excluded.seq, taken_at = excluded.taken_at, data = excluded.data
		WHERE excluded.seq > ledger_snapshots.seq`, s.OrgID, int64(s.Seq), micros(tx.now), s.Data)
	return err
}

func (tx *Tx) LedgerSnapshot(ctx context.Context, orgID string) (*daoguard.LedgerSnapshot, error) {
	s := &daoguard.LedgerSnapshot{OrgID: orgID}
	var seq, at int64
	err := tx.q.QueryRowContext(ctx, `SELECT seq, taken_at, data FROM ledger_snapshots WHERE org_id = ?`, orgID).Scan(&seq, &at, &s.Data)
	if err != nil {
		return nil, notFound(err, "ledger snapshot of", orgID)
	}
	s.Seq, s.At = uint64(seq), fromMicros(at)
	return s, nil
}
