package decider_test

import (
	"bufio"
	"context"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/service"
	"github.com/daoguard/daoguard/internal/sqlite"
	"github.com/daoguard/daoguard/internal/storetest"
)

// warmAgents is how many agents the warm-start store's entries come from;
// warmBurst how many decisions each start then serves.
const (
	warmAgents = 1000
	warmBurst  = 4 * warmAgents
)

// TestWarmStart: a store whose windows hold n entries from 1,000 agents
// spread over the last day. A first start reads them all, merges them
// into buckets and stores a snapshot; a second start reads the snapshot
// and the entries after it, and its first decision sees the windows as a
// cold decider would (never looser, at most 1/128 of a window stricter).
// Each start runs in a process of its own, which then serves a burst of
// decisions from every agent and reports its peak RSS. With
// DAOGUARD_WARM_N=1000000 it is the measurement in docs/PERFORMANCE.md:
//
//	DAOGUARD_WARM_N=1000000 go test ./internal/decider -run TestWarmStart -v
func TestWarmStart(t *testing.T) {
	if os.Getenv("DAOGUARD_WARM_CHILD") != "" {
		t.Skip("the child runs TestWarmStartChild")
	}
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
	if err := db.Update(ctx, func(tx daoguard.Tx) error {
		for i := 0; i < warmAgents; i++ {
			p := &daoguard.Principal{ID: fmt.Sprintf("agent_w%d", i), OrgID: "org_test", Kind: daoguard.PrincipalAgent,
				Name: fmt.Sprintf("bot %d", i), Autonomy: daoguard.AutonomyAutonomous, Roles: []string{[]string{"ops", "grants"}[i%2]}}
			if err := tx.PutPrincipal(ctx, p); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// n entries over the day before now, a thousand per transaction, to
	// 1,000 recipients; at[i] is when batch i was written.
	start := time.Now()
	const batch = 1000
	step := 24 * time.Hour / time.Duration((n+batch-1)/batch)
	clock.Advance(-24 * time.Hour)
	var at []time.Time
	for i := 0; i < n; i += batch {
		clock.Advance(step)
		at = append(at, clock.Now())
		if err := db.Update(ctx, func(tx daoguard.Tx) error {
			for j := i; j < min(n, i+batch); j++ {
				e := &daoguard.LedgerEntry{OrgID: "org_test", ActionID: fmt.Sprintf("act_%d", j), PrincipalID: fmt.Sprintf("agent_w%d", j%warmAgents), Agent: true,
					Roles: []string{[]string{"ops", "grants"}[j%warmAgents%2]},
					Flows: []daoguard.Flow{{Asset: "USDC", Amount: daoguard.NewBigInt(big.NewInt(1_000_000)), USD: 1_000_000, To: fmt.Sprintf("0x%040x", j%1000+1)}}}
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
	// Entries in the last hour, exactly, and with the grace thinning may
	// add (1/128 of the hour and a second).
	now := clock.Now()
	inside := func(d time.Duration) int {
		c := 0
		for i, t := range at {
			if t.After(now.Add(-d)) {
				c += min(n, (i+1)*batch) - i*batch
			}
		}
		return c
	}
	lo, hi := inside(time.Hour), inside(time.Hour+time.Hour/128+time.Second)

	for r, run := range []string{"from the ledger", "from the snapshot"} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestWarmStartChild$", "-test.v")
		cmd.Env = append(os.Environ(), "DAOGUARD_WARM_CHILD="+path, "DAOGUARD_WARM_NOW="+now.Format(time.RFC3339Nano))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", run, err, out)
		}
		m := regexp.MustCompile(`warm (\S+) first (\S+) count (\d+) snapshot (\w+) decisions (\d+) in (\S+) peak_rss_kb (\d+) heap_kb (\d+)`).FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("%s: no report in\n%s", run, out)
		}
		count, _ := strconv.Atoi(m[3])
		t.Logf("%d entries, %s: open + warm %s, first decision %s after, %s decisions in %s, peak RSS %s MB, heap after %s MB",
			n, run, m[1], m[2], m[5], m[6], kbToMB(m[7]), kbToMB(m[8]))
		// The first start's own decisions are in the second's windows.
		if extra := r * (1 + warmBurst); count < lo+extra || count > hi+extra {
			t.Fatalf("%s: the hour's window saw %d entries, want %d to %d", run, count, lo+extra, hi+extra)
		}
		if wantSnap := run == "from the snapshot"; (m[4] == "true") != wantSnap {
			t.Fatalf("%s: started from a snapshot: %s", run, m[4])
		}
	}
}

func kbToMB(kb string) string {
	v, _ := strconv.Atoi(kb)
	return strconv.Itoa(v >> 10)
}

// TestWarmStartChild is one start of TestWarmStart's store, in its own
// process: open, warm, decide once, then a burst of decisions from every
// agent, eight at a time; it prints what it measured.
func TestWarmStartChild(t *testing.T) {
	path := os.Getenv("DAOGUARD_WARM_CHILD")
	if path == "" {
		t.Skip("run by TestWarmStart")
	}
	now, err := time.Parse(time.RFC3339Nano, os.Getenv("DAOGUARD_WARM_NOW"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	clock := storetest.NewClock()
	clock.Advance(now.Sub(clock.Now()))
	t0 := time.Now()
	db := sqlite.NewDB(path)
	db.Now = clock.Now
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var snapped bool
	if err := db.View(ctx, func(tx daoguard.Tx) error {
		_, err := tx.LedgerSnapshot(ctx, "org_test")
		snapped = err == nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	dec := storetest.NewPolicyDecider(clock)
	if err := dec.Warm(ctx, db, "org_test"); err != nil {
		t.Fatal(err)
	}
	warm := time.Since(t0)
	svc := service.New(db, dec, nil, "n")
	t1 := time.Now()
	a, err := svc.Submit(ctx, "agent_1", "", storetest.Transfer("5", storetest.Vendor))
	if err != nil {
		t.Fatal(err)
	}
	first := time.Since(t1)
	if a.State != daoguard.StateQueued || a.Decision.Inputs == nil {
		t.Fatalf("%s %+v", a.State, a.Decision.Reasons)
	}
	count := -1
	re := regexp.MustCompile(`1h per org: (\d+) \+ 1`)
	for _, r := range a.Decision.Reasons {
		if m := re.FindStringSubmatch(r.Detail); r.Code == "RULE_MATCHED" && m != nil {
			count, _ = strconv.Atoi(m[1])
		}
	}
	// Under load: decisions from every agent.
	t2 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < warmBurst; i += 8 {
				if _, err := svc.Submit(ctx, fmt.Sprintf("agent_w%d", i%warmAgents), "", storetest.Transfer("1", storetest.Vendor)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	took := time.Since(t2)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("warm %s first %s count %d snapshot %v decisions %d in %s peak_rss_kb %d heap_kb %d\n", warm.Round(time.Millisecond), first.Round(time.Millisecond),
		count, snapped, warmBurst, took.Round(time.Millisecond), peakRSS(t), ms.HeapAlloc>>10)
}

// peakRSS reads the process's peak resident set (VmHWM) in KB.
func peakRSS(t *testing.T) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc: peak RSS unknown")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb
		}
	}
	return 0
}
