package postgres

import (
	"context"
	"errors"

	"github.com/daoguard/daoguard"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func (tx *Tx) Signer(ctx context.Context, orgID, name string) (*daoguard.Signer, error) {
	var s daoguard.Signer
	err := tx.q.QueryRow(tx.c(ctx), `SELECT org_id, name, address, sealed_key, created FROM signers WHERE org_id = $1 AND name = $2`, orgID, name).
		Scan(&s.OrgID, &s.Name, &s.Address, &s.SealedKey, &s.Created)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, daoguard.Errorf(daoguard.CodeNotFound, "no signer %q", name)
	} else if err != nil {
		return nil, err
	}
	s.Created = s.Created.UTC()
	return &s, nil
}

func (tx *Tx) AddSigner(ctx context.Context, s *daoguard.Signer) error {
	c := s.Created
	tx.undo = append(tx.undo, func() { s.Created = c })
	s.Created = tx.now
	_, err := tx.q.Exec(tx.c(ctx), `INSERT INTO signers (org_id, name, address, sealed_key, created) VALUES ($1, $2, $3, $4, $5)`,
		s.OrgID, s.Name, s.Address, s.SealedKey, s.Created)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return daoguard.Errorf(daoguard.CodeConflict, "signer %q already exists", s.Name)
	}
	return err
}

func (tx *Tx) AddBroadcast(ctx context.Context, b *daoguard.Broadcast) error {
	c := b.Created
	tx.undo = append(tx.undo, func() { b.Created = c })
	b.Created = tx.now
	_, err := tx.q.Exec(tx.c(ctx), `INSERT INTO broadcasts (attempt, action_id, chain_id, sender, nonce, tx_hash, raw, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		b.Attempt, b.ActionID, int64(b.ChainID), b.Sender, int64(b.Nonce), b.TxHash, b.Raw, b.Created)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return daoguard.Errorf(daoguard.CodeConflict, "attempt %s already has a transaction, or nonce %d of %s is taken", b.Attempt, b.Nonce, b.Sender)
	}
	return err
}

func (tx *Tx) Broadcast(ctx context.Context, attempt string) (*daoguard.Broadcast, error) {
	var b daoguard.Broadcast
	var chain, nonce int64
	err := tx.q.QueryRow(tx.c(ctx), `SELECT attempt, action_id, chain_id, sender, nonce, tx_hash, raw, created FROM broadcasts WHERE attempt = $1`, attempt).
		Scan(&b.Attempt, &b.ActionID, &chain, &b.Sender, &nonce, &b.TxHash, &b.Raw, &b.Created)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, daoguard.Errorf(daoguard.CodeNotFound, "no transaction for attempt %s", attempt)
	} else if err != nil {
		return nil, err
	}
	b.ChainID, b.Nonce, b.Created = uint64(chain), uint64(nonce), b.Created.UTC()
	return &b, nil
}

func (tx *Tx) NextNonce(ctx context.Context, chainID uint64, sender string) (uint64, error) {
	var n *int64
	err := tx.q.QueryRow(tx.c(ctx), `SELECT MAX(nonce) FROM broadcasts WHERE chain_id = $1 AND sender = $2`, int64(chainID), sender).Scan(&n)
	if err != nil || n == nil {
		return 0, err
	}
	return uint64(*n) + 1, nil
}
