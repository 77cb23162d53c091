package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/daoguard/daoguard"
)

func (tx *Tx) Signer(ctx context.Context, orgID, name string) (*daoguard.Signer, error) {
	var s daoguard.Signer
	var created int64
	err := tx.q.QueryRowContext(ctx, `SELECT org_id, name, address, sealed_key, created FROM signers WHERE org_id = ? AND name = ?`, orgID, name).
		Scan(&s.OrgID, &s.Name, &s.Address, &s.SealedKey, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, daoguard.Errorf(daoguard.CodeNotFound, "no signer %q", name)
	} else if err != nil {
		return nil, err
	}
	s.Created = fromMicros(created)
	return &s, nil
}

func (tx *Tx) AddSigner(ctx context.Context, s *daoguard.Signer) error {
	c := s.Created
	tx.undo = append(tx.undo, func() { s.Created = c })
	s.Created = tx.now
	_, err := tx.q.ExecContext(ctx, `INSERT INTO signers (org_id, name, address, sealed_key, created) VALUES (?, ?, ?, ?, ?)`,
		s.OrgID, s.Name, s.Address, s.SealedKey, micros(s.Created))
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return daoguard.Errorf(daoguard.CodeConflict, "signer %q already exists", s.Name)
	}
	return err
}

func (tx *Tx) AddBroadcast(ctx context.Context, b *daoguard.Broadcast) error {
	c := b.Created
	tx.undo = append(tx.undo, func() { b.Created = c })
	b.Created = tx.now
	_, err := tx.q.ExecContext(ctx, `INSERT INTO broadcasts (attempt, action_id, chain_id, sender, nonce, tx_hash, raw, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		b.Attempt, b.ActionID, b.ChainID, b.Sender, b.Nonce, b.TxHash, b.Raw, micros(b.Created))
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return daoguard.Errorf(daoguard.CodeConflict, "attempt %s already has a transaction, or nonce %d of %s is taken", b.Attempt, b.Nonce, b.Sender)
	}
	return err
}

func (tx *Tx) Broadcast(ctx context.Context, attempt string) (*daoguard.Broadcast, error) {
	var b daoguard.Broadcast
	var created int64
	err := tx.q.QueryRowContext(ctx, `SELECT attempt, action_id, chain_id, sender, nonce, tx_hash, raw, created FROM broadcasts WHERE attempt = ?`, attempt).
		Scan(&b.Attempt, &b.ActionID, &b.ChainID, &b.Sender, &b.Nonce, &b.TxHash, &b.Raw, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, daoguard.Errorf(daoguard.CodeNotFound, "no transaction for attempt %s", attempt)
	} else if err != nil {
		return nil, err
	}
	b.Created = fromMicros(created)
	return &b, nil
}

func (tx *Tx) NextNonce(ctx context.Context, chainID uint64, sender string) (uint64, error) {
	var n sql.NullInt64
	err := tx.q.QueryRowContext(ctx, `SELECT MAX(nonce) FROM broadcasts WHERE chain_id = ? AND sender = ?`, chainID, sender).Scan(&n)
	if err != nil || !n.Valid {
		return 0, err
	}
	return uint64(n.Int64) + 1, nil
}
