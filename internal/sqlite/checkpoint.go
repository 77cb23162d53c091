package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/daoguard/daoguard"
)

func (tx *Tx) AddCheckpoint(ctx context.Context, size int64, note []byte) error {
	if tx.readonly {
		return daoguard.Errorf(daoguard.CodeInternal, "checkpoint in a read-only transaction")
	}
	_, err := tx.q.ExecContext(ctx, `INSERT INTO audit_checkpoint (size, note, created) VALUES (?, ?, ?)`, size, string(note), micros(tx.now))
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return daoguard.Errorf(daoguard.CodeConflict, "a checkpoint of size %d is recorded already", size)
	}
	return err
}

func (tx *Tx) LatestCheckpoint(ctx context.Context) ([]byte, error) {
	var n string
	err := tx.q.QueryRowContext(ctx, `SELECT note FROM audit_checkpoint ORDER BY size DESC LIMIT 1`).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, daoguard.Errorf(daoguard.CodeNotFound, "no checkpoint yet")
	}
	return []byte(n), err
}
