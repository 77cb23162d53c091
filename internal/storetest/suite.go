package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
)

// Run runs the whole conformance suite against the store h makes.
func Run(t *testing.T, h Harness) {
	t.Run("Store", func(t *testing.T) { runStore(t, h) })
	t.Run("PolicyStore", func(t *testing.T) { runPolicyStore(t, h) })
	t.Run("PolicyPipeline", func(t *testing.T) { runPolicyPipeline(t, h) })
	t.Run("Exposure", func(t *testing.T) { runExposure(t, h) })
	t.Run("Pull", func(t *testing.T) { runPull(t, h) })
	t.Run("Loosening", func(t *testing.T) { runLoosening(t, h) })
	t.Run("LooseningReview", func(t *testing.T) { runLooseningReview(t, h) })
	t.Run("ChainStore", func(t *testing.T) { runChainStore(t, h) })
	t.Run("AuditTree", func(t *testing.T) { runAuditTree(t, h) })
	t.Run("ReadOnly", func(t *testing.T) { runReadOnly(t, h) })
	t.Run("Service", func(t *testing.T) { runService(t, h) })
	t.Run("Races", func(t *testing.T) { runRaces(t, h) })
	t.Run("Crash", func(t *testing.T) { RunCrash(t, h) })
}

func auditSize(t *testing.T, s daoguard.Store) uint64 {
	t.Helper()
	var n uint64
	if err := s.View(context.Background(), func(tx daoguard.Tx) (err error) { n, err = tx.AuditSize(context.Background()); return err }); err != nil {
		t.Fatal(err)
	}
	return n
}

func entries(t *testing.T, s daoguard.Store) []daoguard.AuditEntry {
	t.Helper()
	var es []daoguard.AuditEntry
	err := s.View(context.Background(), func(tx daoguard.Tx) error {
		for from := uint64(0); ; {
			page, err := tx.AuditEntries(context.Background(), from, daoguard.MaxFindLimit)
			if err != nil {
				return err
			}
			es = append(es, page...)
			if len(page) < daoguard.MaxFindLimit {
				return nil
			}
			from = page[len(page)-1].Seq + 1
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func countActions(t *testing.T, s daoguard.Store) int {
	t.Helper()
	var n int
	err := s.View(context.Background(), func(tx daoguard.Tx) error {
		as, err := tx.FindActions(context.Background(), daoguard.ActionFilter{Limit: daoguard.MaxFindLimit})
		n = len(as)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func runStore(t *testing.T, h Harness) {
	ctx := context.Background()

	t.Run("OK_RoundTrip", func(t *testing.T) {
		f := setup(t, h)
		a := &daoguard.Action{ID: "act_1", OrgID: f.Org, PrincipalID: f.Agent, IdempotencyKey: "k1", RequestHash: "h",
			Intent: Transfer("1.5", Vendor), State: daoguard.StatePending,
			Decoded: daoguard.Decoded{Kind: daoguard.KindTransfer, ChainID: 1337, Account: "ops", AccountKind: daoguard.AccountWallet,
				To: Vendor, Asset: "USDC", Decimals: 6, Amount: daoguard.NewBigInt(mustAmount(t, "1.5", 6)), Operation: daoguard.OpCall, Data: []byte{1, 2}},
			Decision:   daoguard.Decision{Verdict: daoguard.VerdictNeedsApproval, Tier: "approval", RequiredApprovals: 2, Timelock: time.Hour, Reasons: []daoguard.Reason{{Code: "X", Rule: "r", Detail: "d"}}},
			RunnableAt: f.Clock.Now().Add(time.Hour), ExpiresAt: f.Clock.Now().Add(2 * time.Hour),
			Result: &daoguard.ExecResult{Success: true, TxHash: "0xabc", Block: 7}}
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.CreateAction(ctx, a) }))
		var got *daoguard.Action
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) { got, err = tx.Action(ctx, "act_1"); return err }))
		if !reflect.DeepEqual(got, a) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, a)
		}
		var p *daoguard.Principal
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) { p, err = tx.Principal(ctx, "human_3"); return err }))
		if p.Kind != daoguard.PrincipalHuman || !reflect.DeepEqual(p.Roles, []string{"council", "steward"}) || p.Created != f.Clock.Now() {
			t.Fatalf("principal = %+v", p)
		}
	})

	t.Run("OK_Credential", func(t *testing.T) {
		f := setup(t, h)
		c := &daoguard.Credential{KeyID: "dg_test_abc", PrincipalID: "human_1", Alg: daoguard.AlgEd25519, PublicKey: []byte{1, 2, 3},
			Scopes: []string{daoguard.ScopeActionsRead, daoguard.ScopeAdmin}, Environment: "test", ExpiresAt: f.Clock.Now().Add(time.Hour)}
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.PutCredential(ctx, c) }))
		var got *daoguard.Credential
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) { got, err = tx.Credential(ctx, c.KeyID); return err }))
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("credential round trip:\n got %+v\nwant %+v", got, c)
		}
		bad := &daoguard.Credential{KeyID: "dg_test_bad", PrincipalID: "human_1", Alg: "rsa", Environment: "test"}
		if err := f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.PutCredential(ctx, bad) }); err == nil {
			t.Fatal("the store accepted an unknown algorithm")
		}
		err := f.Store.View(ctx, func(tx daoguard.Tx) error { _, err := tx.Credential(ctx, "dg_test_missing"); return err })
		wantCode(t, err, daoguard.CodeNotFound)
	})

	t.Run("OK_CredentialLifecycle", func(t *testing.T) {
		f := setup(t, h)
		now := f.Clock.Now()
		c1 := &daoguard.Credential{KeyID: "dg_test_k1", PrincipalID: "agent_1", Alg: daoguard.AlgHMACSHA256, SealedSecret: []byte("sealed"),
			Scopes: daoguard.AgentScopes, Environment: "test"}
		c2 := &daoguard.Credential{KeyID: "dg_test_k2", PrincipalID: "human_1", Alg: daoguard.AlgEd25519, PublicKey: []byte{9}, Scopes: []string{daoguard.ScopeAdmin}, Environment: "test"}
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error { return errors.Join(tx.PutCredential(ctx, c1), tx.PutCredential(ctx, c2)) }))
		// Rotation and revocation update the mutable fields in place.
		c1.ReplacedBy, c1.ExpiresAt, c1.SealedSecret = "dg_test_k3", now.Add(time.Hour), []byte("rewrapped")
		c2.RevokedAt = now
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error { return errors.Join(tx.PutCredential(ctx, c1), tx.PutCredential(ctx, c2)) }))
		// Last use only moves forward.
		used := now.Add(time.Minute)
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error {
			return errors.Join(tx.TouchCredentials(ctx, map[string]time.Time{"dg_test_k1": used}),
				tx.TouchCredentials(ctx, map[string]time.Time{"dg_test_k1": now, "dg_test_missing": now}))
		}))
		c1.LastUsed = used
		var list []*daoguard.Credential
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) { list, err = tx.Credentials(ctx, f.Org); return err }))
		if len(list) != 2 || !reflect.DeepEqual(list[0], c1) || !reflect.DeepEqual(list[1], c2) {
			t.Fatalf("credentials:\n got %+v\nwant %+v %+v", list, c1, c2)
		}
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) { list, err = tx.Credentials(ctx, "org_other"); return err }))
		if len(list) != 0 {
			t.Fatalf("another organisation sees %d credentials", len(list))
		}
	})

	t.Run("OK_Nonces", func(t *testing.T) {
		f := setup(t, h)
		now := f.Clock.Now()
		use := func(key, nonce string, exp time.Time) error {
			return f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.UseNonce(ctx, key, nonce, now, exp) })
		}
		if err := use("k1", "n1", now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		wantCode(t, use("k1", "n1", now.Add(time.Minute)), daoguard.CodeNonceReused)
		// A nonce is per key: another key may use the same value.
		if err := use("k2", "n1", now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := use("k1", "n2", now.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		var n int64
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) (err error) { n, err = tx.PurgeNonces(ctx, now.Add(90*time.Second)); return err }))
		if n != 2 {
			t.Fatalf("purged %d nonces, want the 2 that expired", n)
		}
		wantCode(t, use("k1", "n2", now.Add(2*time.Minute)), daoguard.CodeNonceReused)
		if err := use("k1", "n1", now.Add(3*time.Minute)); err != nil {
			t.Fatalf("a purged nonce: %v", err)
		}
	})

	t.Run("OK_NonceOnceUnderConcurrency", func(t *testing.T) {
		f := setup(t, h)
		var wg sync.WaitGroup
		var ok, reused atomic.Int32
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := f.Store.Update(ctx, func(tx daoguard.Tx) error {
					return tx.UseNonce(ctx, "k", "same", f.Clock.Now(), f.Clock.Now().Add(time.Minute))
				})
				switch daoguard.ErrorCode(err) {
				case "":
					ok.Add(1)
				case daoguard.CodeNonceReused:
					reused.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 || reused.Load() != 15 {
			t.Fatalf("16 concurrent uses of one nonce: %d accepted, %d refused", ok.Load(), reused.Load())
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		f := setup(t, h)
		err := f.Store.View(ctx, func(tx daoguard.Tx) error {
			_, e1 := tx.Action(ctx, "act_missing")
			_, e2 := tx.Principal(ctx, "nobody")
			_, e3 := tx.Org(ctx, "org_missing")
			_, e4 := tx.ActionByIdempotencyKey(ctx, f.Agent, "nope")
			_, e5 := tx.Account(ctx, f.Org, "nope")
			_, e6 := tx.Asset(ctx, f.Org, "NOPE")
			for i, e := range []error{e1, e2, e3, e4} {
				if daoguard.ErrorCode(e) != daoguard.CodeNotFound {
					return fmt.Errorf("lookup %d: %v, want NOT_FOUND", i, e)
				}
			}
			if daoguard.ErrorCode(e5) != daoguard.CodeUnknownAccount || daoguard.ErrorCode(e6) != daoguard.CodeUnknownAsset {
				return fmt.Errorf("catalog: %v, %v", e5, e6)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ErrRollback", func(t *testing.T) {
		f := setup(t, h)
		before := auditSize(t, f.Store)
		boom := errors.New("boom")
		err := f.Store.Update(ctx, func(tx daoguard.Tx) error {
			if err := tx.CreateAction(ctx, newAction(f, "act_rb")); err != nil {
				return err
			}
			if err := tx.Append(ctx, &daoguard.AuditEntry{OrgID: f.Org, ActorID: "x", ActorKind: "system", Event: "e"}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		if countActions(t, f.Store) != 0 || auditSize(t, f.Store) != before {
			t.Fatal("a failed unit of work left rows behind")
		}
		// The next entry takes the position the rolled-back one would have had.
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error {
			return tx.Append(ctx, &daoguard.AuditEntry{OrgID: f.Org, ActorID: "x", ActorKind: "system", Event: "after"})
		}))
		es := entries(t, f.Store)
		if last := es[len(es)-1]; last.Seq != before || last.Event != "after" {
			t.Fatalf("last entry = %+v, want seq %d", last, before)
		}
	})

	t.Run("ErrPanic", func(t *testing.T) {
		f := setup(t, h)
		err := f.Store.Update(ctx, func(tx daoguard.Tx) error { panic("bug") })
		if err == nil {
			t.Fatal("panic in Update was not reported")
		}
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.CreateAction(ctx, newAction(f, "act_after")) }))
	})

	t.Run("ErrIdempotencyKeyUsed", func(t *testing.T) {
		f := setup(t, h)
		a, b := newAction(f, "act_a"), newAction(f, "act_b")
		a.IdempotencyKey, b.IdempotencyKey = "same", "same"
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.CreateAction(ctx, a) }))
		err := f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.CreateAction(ctx, b) })
		if !daoguard.IsIdempotencyKeyUsed(err) {
			t.Fatalf("err = %v, want ErrIdempotencyKeyUsed", err)
		}
		// Empty keys never collide.
		c, d := newAction(f, "act_c"), newAction(f, "act_d")
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error {
			return errors.Join(tx.CreateAction(ctx, c), tx.CreateAction(ctx, d))
		}))
	})

	t.Run("ErrVersionConflict", func(t *testing.T) {
		f := setup(t, h)
		a := newAction(f, "act_v")
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.CreateAction(ctx, a) }))
		stale := *a
		a.State = daoguard.StateDenied
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.UpdateAction(ctx, a) }))
		if a.Version != 2 {
			t.Fatalf("version = %d, want 2", a.Version)
		}
		stale.State = daoguard.StateQueued
		wantCode(t, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.UpdateAction(ctx, &stale) }), daoguard.CodeConflict)
		missing := newAction(f, "act_nope")
		wantCode(t, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.UpdateAction(ctx, missing) }), daoguard.CodeNotFound)
	})

	t.Run("OK_IntentAndDecodedImmutable", func(t *testing.T) {
		f := setup(t, h)
		a := newAction(f, "act_imm")
		a.Decoded.To = Vendor
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.CreateAction(ctx, a) }))
		a.Decoded.To, a.Intent.To, a.Intent.Amount = Attacker, Attacker, "1000000"
		a.State = daoguard.StateDenied
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.UpdateAction(ctx, a) }))
		var got *daoguard.Action
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) { got, err = tx.Action(ctx, a.ID); return err }))
		if got.State != daoguard.StateDenied || got.Decoded.To != Vendor || got.Intent.To != Vendor || got.Intent.Amount != "1" {
			t.Fatalf("update rewrote what was submitted: %+v", got)
		}
	})

	t.Run("OK_FailedUnitLeavesCallerObjects", func(t *testing.T) {
		// A unit that wrote an action and then failed leaves the caller's
		// object as it was: a retry with it is not mistaken for stale.
		f := setup(t, h)
		a := newAction(f, "act_undo")
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.CreateAction(ctx, a) }))
		before := *a
		a.State = daoguard.StateDenied
		err := f.Store.Update(ctx, func(tx daoguard.Tx) error {
			if err := tx.UpdateAction(ctx, a); err != nil {
				return err
			}
			return errors.New("later step failed")
		})
		if err == nil || a.Version != before.Version || !a.Updated.Equal(before.Updated) {
			t.Fatalf("after a failed unit: err %v, version %d (want %d)", err, a.Version, before.Version)
		}
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.UpdateAction(ctx, a) }))
		b := newAction(f, "act_undo2")
		if err := f.Store.Update(ctx, func(tx daoguard.Tx) error {
			if err := tx.CreateAction(ctx, b); err != nil {
				return err
			}
			return errors.New("later step failed")
		}); err == nil || b.Version != 0 || !b.Created.IsZero() {
			t.Fatalf("after a failed create: err %v, version %d created %v", err, b.Version, b.Created)
		}
	})

	t.Run("ErrDuplicateApproval", func(t *testing.T) {
		f := setup(t, h)
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.CreateAction(ctx, newAction(f, "act_ap")) }))
		ap := &daoguard.Approval{ActionID: "act_ap", PrincipalID: "human_1", Approve: true}
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.AddApproval(ctx, ap) }))
		again := &daoguard.Approval{ActionID: "act_ap", PrincipalID: "human_1", Approve: false}
		wantCode(t, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.AddApproval(ctx, again) }), daoguard.CodeDuplicateApproval)
	})

	t.Run("OK_FindActions", func(t *testing.T) {
		f := setup(t, h)
		now := f.Clock.Now()
		mk := func(id string, st daoguard.State, runnable, expires time.Time) *daoguard.Action {
			a := newAction(f, id)
			a.State, a.RunnableAt, a.ExpiresAt = st, runnable, expires
			return a
		}
		as := []*daoguard.Action{
			mk("act_1", daoguard.StateQueued, now.Add(-time.Minute), now.Add(time.Hour)),
			mk("act_2", daoguard.StateQueued, now.Add(time.Minute), now.Add(time.Hour)),
			mk("act_3", daoguard.StateAwaitingApproval, time.Time{}, now.Add(-time.Second)),
			mk("act_4", daoguard.StateDenied, time.Time{}, time.Time{}),
		}
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error {
			for _, a := range as {
				if err := tx.CreateAction(ctx, a); err != nil {
					return err
				}
			}
			return nil
		}))
		ids := func(flt daoguard.ActionFilter) []string {
			var out []string
			must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) error {
				got, err := tx.FindActions(ctx, flt)
				for _, a := range got {
					out = append(out, a.ID)
				}
				return err
			}))
			return out
		}
		for _, tc := range []struct {
			name string
			f    daoguard.ActionFilter
			want []string
		}{
			{"all", daoguard.ActionFilter{}, []string{"act_1", "act_2", "act_3", "act_4"}},
			{"queued", daoguard.ActionFilter{States: []daoguard.State{daoguard.StateQueued}}, []string{"act_1", "act_2"}},
			{"runnable", daoguard.ActionFilter{States: []daoguard.State{daoguard.StateQueued}, RunnableBy: now}, []string{"act_1"}},
			{"expiring", daoguard.ActionFilter{States: []daoguard.State{daoguard.StateAwaitingApproval, daoguard.StateQueued}, ExpiresBy: now}, []string{"act_3"}},
			{"paged", daoguard.ActionFilter{AfterID: "act_2", Limit: 1}, []string{"act_3"}},
			{"org", daoguard.ActionFilter{OrgID: "org_other"}, nil},
		} {
			if got := ids(tc.f); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
			}
		}
	})

	t.Run("ErrAuditAppendOnly", func(t *testing.T) {
		clock := NewClock()
		dsn := h.NewDSN(t)
		s, err := h.Open(dsn, clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := Seed(ctx, s); err != nil {
			t.Fatal(err)
		}
		must[struct{}](t)(struct{}{}, s.Update(ctx, func(tx daoguard.Tx) error {
			return tx.Append(ctx, &daoguard.AuditEntry{OrgID: "org_test", ActorID: "x", ActorKind: "system", Event: "e"})
		}))
		for _, q := range []string{`UPDATE audit SET event = 'forged'`, `DELETE FROM audit`} {
			if err := h.Exec(dsn, q); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s: %v; want the append-only refusal", q, err)
			}
		}
		if es := entries(t, s); len(es) != 1 || es[0].Event != "e" {
			t.Fatalf("audit changed: %+v", es)
		}
	})

	t.Run("OK_AuditDenseUnderConcurrency", func(t *testing.T) {
		f := setup(t, h)
		const workers, each = 8, 40
		var wg sync.WaitGroup
		var failed atomic.Int32
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					err := f.Store.Update(ctx, func(tx daoguard.Tx) error {
						if i%5 == 4 { // some units fail after appending: their entries must vanish
							tx.Append(ctx, &daoguard.AuditEntry{OrgID: f.Org, ActorID: "w", ActorKind: "system", Event: "doomed"})
							return errors.New("fail")
						}
						return tx.Append(ctx, &daoguard.AuditEntry{OrgID: f.Org, ActorID: fmt.Sprint(w), ActorKind: "system", Event: "ok"})
					})
					if (err != nil) != (i%5 == 4) {
						failed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if failed.Load() != 0 {
			t.Fatalf("%d updates had the wrong outcome", failed.Load())
		}
		es := entries(t, f.Store)
		if want := workers * each * 4 / 5; len(es) != want {
			t.Fatalf("%d entries, want %d", len(es), want)
		}
		for i, e := range es {
			if e.Seq != uint64(i) || e.Event != "ok" {
				t.Fatalf("entry %d = seq %d event %q; the log must be dense and hold only committed entries", i, e.Seq, e.Event)
			}
		}
	})

	t.Run("ErrIncompatibleDataVersion", func(t *testing.T) {
		dsn := h.NewDSN(t)
		s, err := h.Open(dsn, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := h.Exec(dsn, fmt.Sprintf(`UPDATE meta SET value = '%d' WHERE key = 'data_version'`, daoguard.DataVersion+1)); err != nil {
			t.Fatal(err)
		}
		s, err = h.Open(dsn, time.Now)
		if err == nil {
			s.Close()
		}
		wantCode(t, err, daoguard.CodeIncompatibleStore)
	})
}

func newAction(f *Fixture, id string) *daoguard.Action {
	return &daoguard.Action{ID: id, OrgID: f.Org, PrincipalID: f.Agent, RequestHash: "h", Intent: Transfer("1", Vendor), State: daoguard.StatePending,
		Decoded: daoguard.Decoded{Kind: daoguard.KindTransfer, Operation: daoguard.OpCall}, Decision: daoguard.Decision{Reasons: []daoguard.Reason{}}}
}

func mustAmount(t *testing.T, s string, d int) *big.Int {
	t.Helper()
	v, err := daoguard.ParseAmount(s, d)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// eventsOf returns the audit events recorded for an action, in order.
func eventsOf(t *testing.T, s daoguard.Store, actionID string) []string {
	var out []string
	for _, e := range entries(t, s) {
		if e.ActionID == actionID {
			out = append(out, e.Event)
		}
	}
	return out
}
