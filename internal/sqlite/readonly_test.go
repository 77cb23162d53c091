package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/daoguard/daoguard/internal/audit"
	"github.com/daoguard/daoguard/internal/sqlite"
	"github.com/daoguard/daoguard/internal/storetest"
)

// TestReadOnlyLeavesFilesAsFound: the store of a writer that crashed
// (its WAL still holds committed frames) is verified read-only without
// the WAL being checkpointed into the file or removed; and a SQLite file
// in rollback-journal mode is refused without being converted.
func TestReadOnlyLeavesFilesAsFound(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "d.db")
	w := sqlite.NewDB(src)
	if err := w.Open(); err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	storetest.FillAudit(t, w, 3000)
	// A crash, as a copy of the files while the writer holds them open.
	dir := t.TempDir()
	dst := filepath.Join(dir, "d.db")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		copyFile(t, src+suffix, dst+suffix)
	}
	before := map[string][]byte{}
	for _, suffix := range []string{"", "-wal"} {
		before[suffix] = readFile(t, dst+suffix)
	}
	if len(before["-wal"]) == 0 {
		t.Fatal("the WAL is empty: nothing to test")
	}
	ro := sqlite.NewDB(dst)
	ro.ReadOnly = true
	if err := ro.Open(); err != nil {
		t.Fatal(err)
	}
	size, _, _, err := audit.VerifyStore(ctx, ro, nil)
	if err != nil || size < 3000 {
		t.Fatalf("verify: %d %v", size, err)
	}
	ro.Close()
	for suffix, b := range before {
		if !bytes.Equal(readFile(t, dst+suffix), b) {
			t.Errorf("d.db%s changed", suffix)
		}
	}

	// A rollback-journal SQLite file that is not daoguard's.
	other := filepath.Join(t.TempDir(), "other.db")
	db, err := sql.Open("sqlite", "file:"+other+"?_pragma=journal_mode(DELETE)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t (x)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	was := readFile(t, other)
	ro = sqlite.NewDB(other)
	ro.ReadOnly = true
	if err := ro.Open(); err == nil {
		t.Fatal("another SQLite file opened as a store")
	}
	if !bytes.Equal(readFile(t, other), was) {
		t.Fatal("the refused file was changed")
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
}
