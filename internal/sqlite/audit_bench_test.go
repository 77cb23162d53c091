package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/audit"
	"github.com/daoguard/daoguard/internal/sqlite"
	"github.com/daoguard/daoguard/internal/storetest"
)

// BenchmarkVerifyStore: `daoguard audit verify` on a SQLite store of
// 200,000 entries: read every entry and hash from the file, recompute the
// tree.
func BenchmarkVerifyStore(b *testing.B) {
	ctx := context.Background()
	db := filledStore(b, 200_000)
	b.ResetTimer()
	var size int64
	for b.Loop() {
		var err error
		if size, _, _, err = audit.VerifyStore(ctx, db, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

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
	ctx := context.Background()
	db := sqlite.NewDB(filepath.Join(b.TempDir(), "d.db"))
	if err := db.Open(); err != nil {
		b.Fatal(err)
	}
	if err := storetest.Seed(ctx, db); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	for i := 0; i < n; i += 1000 {
		err := db.Update(ctx, func(tx daoguard.Tx) error {
			for j := range 1000 {
				if err := tx.Append(ctx, &daoguard.AuditEntry{OrgID: "org_test", ActorID: "agent_1", ActorKind: "agent", ActionID: fmt.Sprintf("act_%d", i+j),
					Event: "action.queued", Detail: []byte(`{"verdict":"allow","tier":"autonomous","reasons":[{"code":"RULE_MATCHED"}]}`)}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return db
}
