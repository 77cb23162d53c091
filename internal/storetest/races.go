package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/service"
)

// race runs fn from n goroutines released together and returns their errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

func runRaces(t *testing.T, h Harness) {
	ctx := context.Background()
	const n = 8

	t.Run("OK_ConcurrentApprovals", func(t *testing.T) {
		f := setup(t, h)
		var humans []string
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error {
			for i := range n {
				id := fmt.Sprintf("human_r%d", i)
				humans = append(humans, id)
				if err := tx.PutPrincipal(ctx, &daoguard.Principal{ID: id, OrgID: f.Org, Kind: daoguard.PrincipalHuman, Name: id}); err != nil {
					return err
				}
			}
			return nil
		}))
		a := must[*daoguard.Action](t)(f.Svc.Submit(ctx, f.Agent, "", Transfer("5000", Vendor)))
		errs := race(n, func(i int) error { _, err := f.Svc.Approve(ctx, humans[i], a.ID, "", ""); return err })
		won := 0
		for _, err := range errs {
			switch daoguard.ErrorCode(err) {
			case "":
				won++
			case daoguard.CodeIllegalTransition:
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		_, aps, err := f.Svc.Action(ctx, f.Humans[0], a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if won != 2 || len(aps) != 2 {
			t.Fatalf("%d approvals won and %d stored; exactly 2 must (2 required)", won, len(aps))
		}
		queued := 0
		for _, e := range eventsOf(t, f.Store, a.ID) {
			if e == "action.queued" {
				queued++
			}
		}
		if queued != 1 {
			t.Fatalf("queued %d times", queued)
		}
	})

	t.Run("OK_ConcurrentExecutors", func(t *testing.T) {
		// n gateway processes (services with distinct node names) race to
		// execute the same due action: exactly one claims it.
		f := setup(t, h)
		a := must[*daoguard.Action](t)(f.Svc.Submit(ctx, f.Agent, "", Transfer("5", Vendor)))
		svcs := make([]*service.Service, n)
		for i := range svcs {
			svcs[i] = service.New(f.Store, f.Dec, f.Ledger, fmt.Sprintf("node-%d", i))
		}
		var mu sync.Mutex
		winners := 0
		errs := race(n, func(i int) error {
			done, err := svcs[i].Execute(ctx, a.ID)
			if done {
				mu.Lock()
				winners++
				mu.Unlock()
			}
			return err
		})
		for _, err := range errs {
			if err != nil {
				t.Errorf("execute: %v", err)
			}
		}
		if effects, _ := f.Ledger.Effects(a.ID); winners != 1 || effects != 1 {
			t.Fatalf("%d winners, %d effects; want exactly 1 of each", winners, effects)
		}
	})

	t.Run("OK_TwoProcesses", func(t *testing.T) {
		// Two store instances on one database, as two gateway processes
		// would have: executions and approvals race across them.
		f := setup(t, h)
		other, err := h.Open(f.DSN, f.Clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		stores := []daoguard.Store{f.Store, other}
		svcs := make([]*service.Service, n)
		for i := range svcs {
			svcs[i] = service.New(stores[i%2], f.Dec, f.Ledger, fmt.Sprintf("proc-%d", i))
		}
		for round := range 3 {
			a := must[*daoguard.Action](t)(f.Svc.Submit(ctx, f.Agent, "", Transfer("5", Vendor)))
			var won atomic.Int32
			for _, err := range race(n, func(i int) error {
				done, err := svcs[i].Execute(ctx, a.ID)
				if done {
					won.Add(1)
				}
				return err
			}) {
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if effects, _ := f.Ledger.Effects(a.ID); won.Load() != 1 || effects != 1 {
				t.Fatalf("round %d: %d winners, %d effects; want 1 and 1", round, won.Load(), effects)
			}

			b := must[*daoguard.Action](t)(f.Svc.Submit(ctx, f.Agent, "", Transfer("5000", Vendor)))
			var approved atomic.Int32
			errs := race(len(f.Humans), func(i int) error {
				_, err := svcs[i].Approve(ctx, f.Humans[i], b.ID, "", "")
				if err == nil {
					approved.Add(1)
				}
				return err
			})
			for _, err := range errs {
				if c := daoguard.ErrorCode(err); c != "" && c != daoguard.CodeIllegalTransition {
					t.Fatalf("round %d approve: %v", round, err)
				}
			}
			got, aps, err := f.Svc.Action(ctx, f.Humans[0], b.ID)
			if err != nil || approved.Load() != 2 || len(aps) != 2 || got.State != daoguard.StateQueued {
				t.Fatalf("round %d: %d approvals won, %d stored, state %s (%v); want 2, 2, queued", round, approved.Load(), len(aps), got.State, err)
			}
		}
	})

	t.Run("OK_ControlsAreNotOvertaken", func(t *testing.T) {
		// A unit that decided on the organisation or an agent (as a claim or
		// a submission does) holds its transaction open; a pause or an
		// autonomy change from another process must wait for it, and must
		// not be lost to its stale view.
		f := setup(t, h)
		other, err := h.Open(f.DSN, f.Clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		svc2 := service.New(other, f.Dec, f.Ledger, "proc-2")

		hold := func(read func(tx daoguard.Tx) error, write func(tx daoguard.Tx) error) (started, release chan struct{}, done chan error) {
			started, release, done = make(chan struct{}), make(chan struct{}), make(chan error, 1)
			var once sync.Once
			go func() {
				done <- f.Store.Update(ctx, func(tx daoguard.Tx) error {
					if err := read(tx); err != nil {
						return err
					}
					once.Do(func() {
						close(started)
						select { // bounded: a failing test must not hang
						case <-release:
						case <-time.After(10 * time.Second):
						}
					})
					return write(tx)
				})
			}()
			<-started
			return started, release, done
		}
		waitsFor := func(name string, op func() error, release chan struct{}, held chan error) {
			t.Helper()
			opDone := make(chan error, 1)
			go func() { opDone <- op() }()
			select {
			case err := <-opDone:
				close(release)
				<-held
				t.Fatalf("%s completed (%v) while another unit still held what it decides on", name, err)
			case <-time.After(300 * time.Millisecond):
			}
			close(release)
			if err := <-held; err != nil {
				t.Fatal(err)
			}
			if err := <-opDone; err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}

		// 1. Pause waits for a unit that read the organisation.
		_, release, held := hold(func(tx daoguard.Tx) error { _, err := tx.Org(ctx, f.Org); return err }, func(daoguard.Tx) error { return nil })
		waitsFor("pause", func() error { _, err := svc2.Pause(ctx, f.Humans[0], "incident"); return err }, release, held)
		if _, err := f.Svc.Submit(ctx, f.Agent, "", Transfer("5", Vendor)); daoguard.ErrorCode(err) != daoguard.CodeOrgPaused {
			t.Fatalf("submit after pause: %v", err)
		}
		resumeBy(t, f.Svc, f.Humans[0], f.Humans[1])

		// 2. A suspension is not lost to a concurrent lowering that read the
		// agent before it (the agent lowering itself to supervised).
		_, release, held = hold(func(tx daoguard.Tx) error { _, err := tx.PrincipalForUpdate(ctx, f.Agent); return err }, func(tx daoguard.Tx) error {
			p, err := tx.Principal(ctx, f.Agent)
			if err != nil {
				return err
			}
			p.Autonomy = daoguard.AutonomySupervised
			return tx.PutPrincipal(ctx, p)
		})
		waitsFor("suspension", func() error {
			_, _, err := svc2.SetAutonomy(ctx, daoguard.ActorSystem, f.Agent, daoguard.AutonomySuspended, "anomaly")
			return err
		}, release, held)
		var p *daoguard.Principal
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) { p, err = tx.Principal(ctx, f.Agent); return err }))
		if p.Autonomy != daoguard.AutonomySuspended {
			t.Fatalf("agent is %s; the suspension was lost", p.Autonomy)
		}
	})

	t.Run("OK_VetoVersusExecute", func(t *testing.T) {
		// A veto and an execution race: one wins, and the outcome is coherent.
		for round := range 5 {
			f := setup(t, h)
			a := must[*daoguard.Action](t)(f.Svc.Submit(ctx, f.Agent, "", Transfer("5", Vendor)))
			var executed bool
			errs := race(2, func(i int) error {
				if i == 0 {
					_, err := f.Svc.Veto(ctx, f.Humans[0], a.ID, "")
					return err
				}
				var err error
				executed, err = f.Svc.Execute(ctx, a.ID)
				return err
			})
			got, _, _ := f.Svc.Action(ctx, f.Humans[0], a.ID)
			effects, _ := f.Ledger.Effects(a.ID)
			switch {
			case errs[0] == nil && !executed && got.State == daoguard.StateVetoed && effects == 0:
			case daoguard.ErrorCode(errs[0]) == daoguard.CodeIllegalTransition && executed && got.State == daoguard.StateExecuted && effects == 1:
			default:
				t.Fatalf("round %d: veto err %v, executed %v, state %s, effects %d", round, errs[0], executed, got.State, effects)
			}
		}
	})

	t.Run("OK_ConcurrentIdempotentSubmits", func(t *testing.T) {
		f := setup(t, h)
		ids := make([]string, n)
		errs := race(n, func(i int) error {
			a, err := f.Svc.Submit(ctx, f.Agent, "same-key", Transfer("7", Vendor))
			if err == nil {
				ids[i] = a.ID
			}
			return err
		})
		for i, err := range errs {
			if err != nil || ids[i] != ids[0] {
				t.Fatalf("submit %d: id %s err %v; all must return %s", i, ids[i], err, ids[0])
			}
		}
		if c := countActions(t, f.Store); c != 1 {
			t.Fatalf("%d actions stored, want 1", c)
		}
	})
}
