package sqlite_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/sqlite"
	"github.com/daoguard/daoguard/internal/storetest"
)

var harness = storetest.Harness{
	NewDSN: func(t testing.TB) string { return filepath.Join(t.TempDir(), "daoguard.db") },
	Open: func(dsn string, now func() time.Time) (daoguard.Store, error) {
		db := sqlite.NewDB(dsn)
		db.Now = now
		return db, db.Open()
	},
	Exec: func(dsn, query string) error {
		db, err := sql.Open("sqlite", "file:"+dsn)
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.Exec(query)
		return err
	},
}

func TestMain(m *testing.M) {
	storetest.MaybeChild(harness)
	os.Exit(m.Run())
}

func TestConformance(t *testing.T) { storetest.Run(t, harness) }

func BenchmarkStore(b *testing.B) { storetest.Bench(b, harness) }

// BenchmarkStoreSynchronousNormal measures the faster, less durable setting
// (a committed change survives a process crash but not a power loss).
func BenchmarkStoreSynchronousNormal(b *testing.B) {
	h := harness
	h.Open = func(dsn string, now func() time.Time) (daoguard.Store, error) {
		db := sqlite.NewDB(dsn)
		db.Now, db.Synchronous = now, "NORMAL"
		return db, db.Open()
	}
	storetest.Bench(b, h)
}
