package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/audit"
	"github.com/daoguard/daoguard/internal/sqlite"
	"github.com/daoguard/daoguard/internal/storetest"
)

// BenchmarkVerifyStore: `daoguard audit verify --data` on a SQLite store
// of 200,000 entries, opened read-only: read every entry and hash from the
// file, recompute the tree.
func BenchmarkVerifyStore(b *testing.B) { storetest.BenchVerifyStore(b, harness, 200_000) }

// BenchmarkInclusionProof: an inclusion proof of a random entry of a
// SQLite store of 1,000,000 entries, read from the stored tree.
func BenchmarkInclusionProof(b *testing.B) {
	ctx := context.Background()
	const n = 1_000_000
	db := filledStore(b, n)
	b.ResetTimer()
	i := int64(0)
	for b.Loop() {
		i = (i*7919 + 104729) % n
		err := db.View(ctx, func(tx daoguard.Tx) error {
			_, err := audit.InclusionProof(ctx, tx, i, n)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// filledStore is a SQLite store with n audit entries (after Seed's).
func filledStore(b *testing.B, n int) *sqlite.DB {
	db := sqlite.NewDB(filepath.Join(b.TempDir(), "d.db"))
	if err := db.Open(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	storetest.FillAudit(b, db, n)
	return db
}
