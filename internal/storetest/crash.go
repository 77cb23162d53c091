package storetest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/service"
)

// Environment of the crash test's child process.
const (
	envChild  = "DAOGUARD_STORETEST_CHILD" // "before", "after" or "recover"
	envDSN    = "DAOGUARD_STORETEST_DSN"
	envLedger = "DAOGUARD_STORETEST_LEDGER"
	envAction = "DAOGUARD_STORETEST_ACTION"
	crashNode = "node-crash" // the same node before and after the restart
	parked    = "PARKED"
)

// MaybeChild must be called first in TestMain of every store's test
// package. In the crash test's child process it plays its part and exits;
// otherwise it returns at once.
func MaybeChild(h Harness) {
	mode := os.Getenv(envChild)
	if mode == "" {
		return
	}
	err := child(h, mode)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func child(h Harness, mode string) error {
	ctx := context.Background()
	s, err := h.Open(os.Getenv(envDSN), time.Now)
	if err != nil {
		return err
	}
	defer s.Close()
	park := func() {
		fmt.Println(parked) // the parent kills us with SIGKILL now
		select {}
	}
	ledger := &Ledger{Path: os.Getenv(envLedger)}
	switch mode {
	case "before":
		ledger.BeforeEffect = park
	case "after":
		ledger.AfterEffect = park
	}
	svc := service.New(s, NewDecider(), ledger, crashNode)
	if mode == "recover" {
		n, err := svc.Reconcile(ctx, true)
		fmt.Println("RECOVERED", n)
		return err
	}
	_, err = svc.Execute(ctx, os.Getenv(envAction))
	return fmt.Errorf("execute returned (%v) instead of parking", err)
}

// RunCrash kills a gateway process with SIGKILL in the middle of an
// execution — before the side effect, and after it but before the result
// is recorded — restarts it, and checks that the action is neither lost nor
// executed twice.
func RunCrash(t *testing.T, h Harness) {
	if testing.Short() {
		t.Skip("crash test spawns processes")
	}
	for _, point := range []string{"before", "after"} {
		t.Run("KilledExecuting_"+point+"_effect", func(t *testing.T) {
			ctx := context.Background()
			dsn := h.NewDSN(t)
			ledger := &Ledger{Path: t.TempDir() + "/ledger.jsonl"}
			s, err := h.Open(dsn, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			if err := Seed(ctx, s); err != nil {
				t.Fatal(err)
			}
			a, err := service.New(s, NewDecider(), nil, crashNode).Submit(ctx, "agent_1", "", Transfer("5", Vendor))
			if err != nil || a.State != daoguard.StateQueued {
				t.Fatalf("submit: %v %v", a, err)
			}
			s.Close()

			env := append(os.Environ(), envDSN+"="+dsn, envLedger+"="+ledger.Path, envAction+"="+a.ID)
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(env, envChild+"="+point)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(out).ReadString('\n')
			if strings.TrimSpace(line) != parked {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("child did not park: %q %v", line, err)
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()

			want := map[string]int{"before": 0, "after": 1}[point]
			if got := view(t, h, dsn, a.ID); got.State != daoguard.StateExecuting {
				t.Fatalf("after the kill: state %s, want executing", got.State)
			}
			if n, _ := ledger.Effects(a.ID); n != want {
				t.Fatalf("after the kill: %d effects, want %d", n, want)
			}

			rec := exec.Command(os.Args[0], "-test.run=^$")
			rec.Env = append(env, envChild+"=recover")
			outb, err := rec.Output()
			if err != nil {
				t.Fatalf("recover: %v: %s", err, outb)
			}
			if !strings.Contains(string(outb), "RECOVERED 1") {
				t.Fatalf("recover printed %q", outb)
			}
			got := view(t, h, dsn, a.ID)
			if got.State != daoguard.StateExecuted {
				t.Fatalf("after restart: state %s, want executed", got.State)
			}
			if n, _ := ledger.Effects(a.ID); n != 1 {
				t.Fatalf("after restart: %d effects, want exactly 1", n)
			}
		})
	}
}

func view(t *testing.T, h Harness, dsn, id string) *daoguard.Action {
	t.Helper()
	s, err := h.Open(dsn, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var a *daoguard.Action
	if err := s.View(context.Background(), func(tx daoguard.Tx) (err error) { a, err = tx.Action(context.Background(), id); return err }); err != nil {
		t.Fatal(err)
	}
	return a
}
