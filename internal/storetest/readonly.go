package storetest

import (
	"context"
	"strings"
	"testing"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/audit"
)

// runReadOnly: a store opened read-only reads and verifies its log, refuses
// every write, and refuses a store that is not current (not one of
// daoguard's, or not migrated yet) instead of migrating it.
func runReadOnly(t *testing.T, h Harness) {
	ctx := context.Background()
	f := setup(t, h)
	for i := range 30 {
		if _, err := f.Svc.Submit(ctx, f.Agent, "", Transfer(string(rune('1'+i%9)), Vendor)); err != nil {
			t.Fatal(err)
		}
	}
	want := auditSize(t, f.Store)
	ro, err := h.OpenReadOnly(f.DSN)
	if err != nil {
		t.Fatal(err)
	}
	size, _, _, err := audit.VerifyStore(ctx, ro, nil)
	if err != nil || uint64(size) != want {
		t.Fatalf("verify read-only: %d entries (want %d), %v", size, want, err)
	}
	err = ro.Update(ctx, func(tx daoguard.Tx) error {
		return tx.Append(ctx, &daoguard.AuditEntry{OrgID: f.Org, ActorID: "x", ActorKind: "system", Event: "e"})
	})
	if err == nil {
		t.Fatal("a read-only store took an update")
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if got := auditSize(t, f.Store); got != want {
		t.Fatalf("the log grew from %d to %d", want, got)
	}

	// A store behind this binary's migrations is not migrated: refused.
	if err := h.Exec(f.DSN, `UPDATE meta SET value = '5' WHERE key = 'schema_version'`); err != nil {
		t.Fatal(err)
	}
	if _, err := h.OpenReadOnly(f.DSN); daoguard.ErrorCode(err) != daoguard.CodeIncompatibleStore || !strings.Contains(err.Error(), "not migrated") {
		t.Fatalf("a store behind: %v", err)
	}
	// And an empty database is no daoguard store.
	if _, err := h.OpenReadOnly(h.NewDSN(t)); err == nil {
		t.Fatal("an empty store opened read-only")
	}
}
