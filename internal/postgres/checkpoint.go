package postgres

import (
	"context"
	"errors"

	"github.com/daoguard/daoguard"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func (tx *Tx) AddCheckpoint(ctx context.Context, size int64, note []byte) error {
	if !tx.write {
		return daoguard.Errorf(daoguard.CodeInternal, "checkpoint in a read-only transaction")
	}
	_, err := tx.q.Exec(tx.c(ctx), `INSERT INTO audit_checkpoint (size, note, created) VALUES ($1, $2, $3)`, size, string(note), tx.now)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return daoguard.Errorf(daoguard.CodeConflict, "a checkpoint of size %d is recorded already", size)
	}
	return err
}

func (tx *Tx) LatestCheckpoint(ctx context.Context) ([]byte, error) {
	var n string
	err := tx.q.QueryRow(tx.c(ctx), `SELECT note FROM audit_checkpoint ORDER BY size DESC LIMIT 1`).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, daoguard.Errorf(daoguard.CodeNotFound, "no checkpoint yet")
	}
	return []byte(n), err
}
