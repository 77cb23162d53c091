package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
)

func runPolicyStore(t *testing.T, h Harness) {
	ctx := context.Background()

	t.Run("OK_PolicyVersions", func(t *testing.T) {
		f := setup(t, h)
		err := f.Store.View(ctx, func(tx daoguard.Tx) error {
			if v, err := tx.CurrentPolicy(ctx, f.Org); err != nil || v != 0 {
				t.Fatalf("current = %d, %v; want 0", v, err)
			}
			_, err := tx.Policy(ctx, f.Org, 0)
			wantCode(t, err, daoguard.CodeNotFound)
			return nil
		})
		must[struct{}](t)(struct{}{}, err)
		p1 := &daoguard.PolicyVersion{OrgID: f.Org, Version: 1, Source: "version: 1\n", Digest: "d1", By: "operator"}
		p2 := &daoguard.PolicyVersion{OrgID: f.Org, Version: 2, Source: "version: 1\nname: two\n", Digest: "d2", ActionID: "act_x", By: "human_1"}
		for _, p := range []*daoguard.PolicyVersion{p1, p2} {
			must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.AddPolicy(ctx, p) }))
		}
		dup := &daoguard.PolicyVersion{OrgID: f.Org, Version: 2, Source: "x", Digest: "d3", By: "human_2"}
		wantCode(t, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.AddPolicy(ctx, dup) }), daoguard.CodeConflict)
		err = f.Store.View(ctx, func(tx daoguard.Tx) error {
			if v, err := tx.CurrentPolicy(ctx, f.Org); err != nil || v != 2 {
				t.Fatalf("current = %d, %v; want 2", v, err)
			}
			for _, want := range []*daoguard.PolicyVersion{p1, p2} {
				got, err := tx.Policy(ctx, f.Org, want.Version)
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("version %d: got %+v, %v; want %+v", want.Version, got, err, want)
				}
			}
			if got, err := tx.Policy(ctx, f.Org, 0); err != nil || got.Version != 2 || got.Digest != "d2" {
				t.Fatalf("latest = %+v, %v", got, err)
			}
			return nil
		})
		must[struct{}](t)(struct{}{}, err)
	})

	t.Run("OK_Assets", func(t *testing.T) {
		f := setup(t, h)
		var got []*daoguard.Asset
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) { got, err = tx.Assets(ctx, f.Org); return err }))
		if len(got) != 2 || got[0].Symbol != "ETH" || got[1].Symbol != "USDC" || got[1].Decimals != 6 || got[1].ChainID != 1337 {
			t.Fatalf("assets = %+v", got)
		}
	})

	t.Run("OK_Accounts", func(t *testing.T) {
		f := setup(t, h)
		var got []*daoguard.Account
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) { got, err = tx.Accounts(ctx, f.Org); return err }))
		if len(got) != 2 || got[0].Name != "ops" || got[1].Name != "treasury" || got[1].Kind != daoguard.AccountSafe || got[0].ChainID != 1337 ||
			got[0].Address != "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
			t.Fatalf("accounts = %+v", got)
		}
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) { got, err = tx.Accounts(ctx, "org_none"); return err }))
		if len(got) != 0 {
			t.Fatalf("another organisation's accounts: %+v", got)
		}
	})

	t.Run("OK_LedgerTail", func(t *testing.T) {
		f := setup(t, h)
		add := func(action string, flows []daoguard.Flow) *daoguard.LedgerEntry {
			e := &daoguard.LedgerEntry{OrgID: f.Org, ActionID: action, PrincipalID: f.Agent, Flows: flows}
			must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error {
				if _, err := tx.LedgerTail(ctx, f.Org, 0, time.Time{}, 1); err != nil {
					return err
				}
				return tx.AddLedgerEntry(ctx, e)
			}))
			f.Clock.Advance(time.Minute)
			return e
		}
		e1 := add("act_1", []daoguard.Flow{{Asset: "USDC", Token: "0xcc", Amount: daoguard.NewBigInt(big.NewInt(5_000000)), USD: 5_000000, To: Vendor}})
		e2 := add("act_2", nil)
		e3 := add("act_3", []daoguard.Flow{{Asset: "ETH", Amount: daoguard.NewBigInt(new(big.Int).Lsh(big.NewInt(1), 200)), USD: -1, To: Attacker}})
		if !(e1.Seq < e2.Seq && e2.Seq < e3.Seq) || !e2.At.Equal(e1.At.Add(time.Minute)) {
			t.Fatalf("seqs %d %d %d, times %v %v", e1.Seq, e2.Seq, e3.Seq, e1.At, e2.At)
		}
		var all, after, since, limited []daoguard.LedgerEntry
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) {
			all, err = tx.LedgerTail(ctx, f.Org, 0, time.Time{}, 10)
			if err == nil {
				after, err = tx.LedgerTail(ctx, f.Org, e1.Seq, time.Time{}, 10)
			}
			if err == nil {
				since, err = tx.LedgerTail(ctx, f.Org, 0, e2.At, 10)
			}
			if err == nil {
				limited, err = tx.LedgerTail(ctx, f.Org, 0, time.Time{}, 2)
			}
			return err
		}))
		e2.Flows = []daoguard.Flow{} // stored as an empty list
		want := []daoguard.LedgerEntry{*e1, *e2, *e3}
		if !reflect.DeepEqual(all, want) {
			t.Fatalf("tail:\n got %+v\nwant %+v", all, want)
		}
		if len(after) != 2 || after[0].Seq != e2.Seq || len(since) != 1 || since[0].Seq != e3.Seq || len(limited) != 2 {
			t.Fatalf("after %+v since %+v limited %d", after, since, len(limited))
		}
	})

	t.Run("OK_AfterCommit", func(t *testing.T) {
		f := setup(t, h)
		var ran []string
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error {
			tx.AfterCommit(func() { ran = append(ran, "committed") })
			return nil
		}))
		failed := errors.New("refused")
		if err := f.Store.Update(ctx, func(tx daoguard.Tx) error {
			tx.AfterCommit(func() { ran = append(ran, "rolled back") })
			return failed
		}); !errors.Is(err, failed) {
			t.Fatalf("err = %v", err)
		}
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) error {
			tx.AfterCommit(func() { ran = append(ran, "view") })
			return nil
		}))
		if !slices.Equal(ran, []string{"committed"}) {
			t.Fatalf("ran %v", ran)
		}
	})

	// OnUndo runs for every unit whose writes are undone, also when it
	// shares a batch with units that commit; AfterCommit for exactly the
	// units that commit. A unit may be undone and run again (PostgreSQL
	// reruns a batch with savepoints when one of its units fails): then its
	// last run is the one that counts.
	t.Run("OK_OnUndo", func(t *testing.T) {
		f := setup(t, h)
		viewFailed := errors.New("view refused")
		if err := f.Store.View(ctx, func(tx daoguard.Tx) error {
			tx.OnUndo(func() { t.Error("OnUndo ran in a View") })
			return viewFailed
		}); !errors.Is(err, viewFailed) {
			t.Fatalf("view: %v", err)
		}
		const n = 24
		var mu sync.Mutex
		events := make([][]string, n)
		note := func(i int, ev string) { mu.Lock(); events[i] = append(events[i], ev); mu.Unlock() }
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.Store.Update(ctx, func(tx daoguard.Tx) error {
					// A write, so that there is something to undo.
					if err := tx.Append(ctx, &daoguard.AuditEntry{OrgID: f.Org, ActorID: "test", ActorKind: "system", Event: fmt.Sprintf("unit.%d", i)}); err != nil {
						return err
					}
					note(i, "ran")
					tx.OnUndo(func() { note(i, "undone") })
					tx.AfterCommit(func() { note(i, "committed") })
					if i%3 == 0 {
						return errors.New("refused")
					}
					return nil
				})
			}()
		}
		wg.Wait()
		for i, ev := range events {
			// Every run ends undone, except a committing unit's last.
			want := "undone"
			if i%3 != 0 {
				want = "committed"
			}
			runs := 0
			for j, e := range ev {
				switch e {
				case "ran":
					runs++
					if j > 0 && ev[j-1] != "undone" {
						t.Fatalf("unit %d: a run followed %q: %v", i, ev[j-1], ev)
					}
				case "undone":
					if j == 0 || ev[j-1] != "ran" || j+1 < len(ev) && ev[j+1] != "ran" {
						t.Fatalf("unit %d: undone out of turn (only a run is undone, and only a rerun follows): %v", i, ev)
					}
				case "committed":
					if i%3 == 0 {
						t.Fatalf("unit %d failed but committed: %v", i, ev)
					}
				}
			}
			if runs == 0 || ev[len(ev)-1] != want || slices.Index(ev, "committed") >= 0 && slices.Index(ev, "committed") != len(ev)-1 {
				t.Fatalf("unit %d: events %v, want the last %q", i, ev, want)
			}
		}
	})

	// Concurrent units each read the whole tail and add one entry: if they
	// are serialised, the n-th to commit saw exactly n-1 entries. Two
	// gateways spending one budget at once would show as a repeated count.
	t.Run("OK_LedgerSerialised", func(t *testing.T) {
		f := setup(t, h)
		// A second store on the same database stands for a second gateway.
		s2, err := h.Open(f.DSN, f.Clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s2.Close() })
		stores := []daoguard.Store{f.Store, s2}
		const n = 40
		seen := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st := stores[i%len(stores)]
				err := st.Update(ctx, func(tx daoguard.Tx) error {
					tail, err := tx.LedgerTail(ctx, f.Org, 0, time.Time{}, 1000)
					if err != nil {
						return err
					}
					seen[i] = len(tail)
					return tx.AddLedgerEntry(ctx, &daoguard.LedgerEntry{OrgID: f.Org, ActionID: "act", PrincipalID: f.Agent})
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		slices.Sort(seen)
		for i, s := range seen {
			if s != i {
				t.Fatalf("counts seen %v: units were not serialised", seen)
			}
		}
	})
}
