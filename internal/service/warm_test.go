package service_test

import (
	"context"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/service"
	"github.com/daoguard/daoguard/internal/sqlite"
	"github.com/daoguard/daoguard/internal/storetest"
)

// TestWarmStart: a decider warmed before serving answers its first
// decision without rebuilding the windows, and decides as a cold one
// would. With DAOGUARD_WARM_N=1000000 it measures the load on a store of
// that many window entries from 1,000 agents (docs/PERFORMANCE.md):
//
//	DAOGUARD_WARM_N=1000000 go test ./internal/service -run TestWarmStart -v
func TestWarmStart(t *testing.T) {
	n := 2_000
	if v, err := strconv.Atoi(os.Getenv("DAOGUARD_WARM_N")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	clock := storetest.NewClock()
	path := filepath.Join(t.TempDir(), "d.db")
	db := sqlite.NewDB(path)
	db.Now = clock.Now
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	if err := storetest.Seed(ctx, db); err != nil {
		t.Fatal(err)
	}
	svc := service.New(db, storetest.NewPolicyDecider(clock), nil, "n")
	if _, err := svc.LoadFirstPolicy(ctx, "org_test", storetest.BenchPolicy); err != nil {
		t.Fatal(err)
	}
	// n entries, now, from 1,000 agents, a thousand per transaction.
	start := time.Now()
	for i := 0; i < n; i += 1000 {
		if err := db.Update(ctx, func(tx daoguard.Tx) error {
			for j := i; j < min(n, i+1000); j++ {
				e := &daoguard.LedgerEntry{OrgID: "org_test", ActionID: fmt.Sprintf("act_%d", j), PrincipalID: fmt.Sprintf("agent_%d", j%1000), Agent: true,
					Flows: []daoguard.Flow{{Asset: "USDC", Amount: daoguard.NewBigInt(big.NewInt(1_000_000)), USD: 1_000_000, To: storetest.Vendor}}}
				if err := tx.AddLedgerEntry(ctx, e); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("filled %d entries in %s", n, time.Since(start).Round(time.Millisecond))
	db.Close()

	// A new process: open, warm, decide.
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	t0 := time.Now()
	db2 := sqlite.NewDB(path)
	db2.Now = clock.Now
	if err := db2.Open(); err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	dec := storetest.NewPolicyDecider(clock)
	if err := dec.Warm(ctx, db2, "org_test"); err != nil {
		t.Fatal(err)
	}
	warm := time.Since(t0)
	svc2 := service.New(db2, dec, nil, "n")
	t1 := time.Now()
	a, err := svc2.Submit(ctx, "agent_1", "", storetest.Transfer("5", storetest.Vendor))
	if err != nil {
		t.Fatal(err)
	}
	first := time.Since(t1)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("%d entries: open + warm %s, first decision %s after, heap %d MB", n, warm.Round(time.Millisecond), first.Round(time.Millisecond), (after.HeapAlloc-min(after.HeapAlloc, before.HeapAlloc))>>20)
	if a.State != daoguard.StateQueued || a.Decision.Inputs == nil {
		t.Fatalf("%s %+v", a.State, a.Decision.Reasons)
	}
	// The warmed window holds the entries: the per-org count saw them.
	want := fmt.Sprintf("1h per org: %d + 1", n)
	found := false
	for _, r := range a.Decision.Reasons {
		found = found || r.Code == "RULE_MATCHED" && contains(r.Detail, want)
	}
	if !found {
		t.Fatalf("no %q in %+v", want, a.Decision.Reasons)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
