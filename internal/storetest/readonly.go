package storetest

import (
	"context"
	"fmt"
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

// BenchVerifyStore: offline verification of a store's log of n entries
// (after Seed's), read-only as `daoguard audit verify --data` does, in
// entries per second.
func BenchVerifyStore(b *testing.B, h Harness, n int) {
	ctx := context.Background()
	dsn := h.NewDSN(b)
	s, err := h.Open(dsn, NewRunningClock().Now)
	if err != nil {
		b.Fatal(err)
	}
	FillAudit(b, s, n)
	s.Close()
	ro, err := h.OpenReadOnly(dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer ro.Close()
	b.ResetTimer()
	var size int64
	for b.Loop() {
		if size, _, _, err = audit.VerifyStore(ctx, ro, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// FillAudit seeds s and appends n decision-like entries, 1000 a
// transaction: a log to measure verification and proofs on.
func FillAudit(tb testing.TB, s daoguard.Store, n int) {
	ctx := context.Background()
	if err := Seed(ctx, s); err != nil {
		tb.Fatal(err)
	}
	for i := 0; i < n; i += 1000 {
		err := s.Update(ctx, func(tx daoguard.Tx) error {
			for j := range min(1000, n-i) {
				if err := tx.Append(ctx, &daoguard.AuditEntry{OrgID: "org_test", ActorID: "agent_1", ActorKind: "agent", ActionID: fmt.Sprintf("act_%d", i+j),
					Event: "action.queued", Detail: []byte(`{"verdict":"allow","tier":"autonomous","reasons":[{"code":"RULE_MATCHED"}]}`)}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}
