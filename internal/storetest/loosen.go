package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
)

// runLoosening: undoing a protection needs k humans and the loosening
// timelock, during which any human may veto; tightening needs one.
func runLoosening(t *testing.T, h Harness) {
	ctx := context.Background()

	t.Run("OK_ResumeWaitsForTimelockAndCanBeVetoed", func(t *testing.T) {
		f := setup(t, h)
		f.Svc.Loosening.Timelock = time.Hour
		must[*daoguard.Organisation](t)(f.Svc.Pause(ctx, f.Humans[0], "incident"))
		must2[*daoguard.Organisation](t)(f.Svc.Resume(ctx, f.Humans[1], "fixed"))
		org, req, err := f.Svc.Resume(ctx, f.Humans[2], "agreed")
		if err != nil || !org.Paused || req.State != daoguard.StateQueued || req.Decision.RequiredApprovals != 2 {
			t.Fatalf("two humans, before the timelock: %v paused %v %+v", err, org != nil && org.Paused, req)
		}
		// Before the timelock ends nothing resumes; a human vetoes.
		f.Clock.Advance(30 * time.Minute)
		must[int](t)(f.Svc.ExecuteDue(ctx))
		if _, err := f.Svc.Submit(ctx, f.Agent, "", Transfer("5", Vendor)); daoguard.ErrorCode(err) != daoguard.CodeOrgPaused {
			t.Fatalf("resumed before the timelock: %v", err)
		}
		if v := must[*daoguard.Action](t)(f.Svc.Veto(ctx, f.Humans[0], req.ID, "not yet")); v.State != daoguard.StateVetoed {
			t.Fatalf("veto: %s", v.State)
		}
		f.Clock.Advance(time.Hour)
		must[int](t)(f.Svc.ExecuteDue(ctx))
		if _, err := f.Svc.Submit(ctx, f.Agent, "", Transfer("5", Vendor)); daoguard.ErrorCode(err) != daoguard.CodeOrgPaused {
			t.Fatalf("a vetoed resume resumed: %v", err)
		}
		// A new request, approved by acting on the action itself; the
		// run loop applies it once the timelock ends, paused as it is.
		_, req2, err := f.Svc.Resume(ctx, f.Humans[0], "now")
		if err != nil || req2.ID == req.ID {
			t.Fatalf("new request: %v %+v", err, req2)
		}
		if _, err := f.Svc.Approve(ctx, f.Agent, req2.ID, "", ""); daoguard.ErrorCode(err) != daoguard.CodeNotHuman {
			t.Fatalf("an agent approved a resume: %v", err)
		}
		must[*daoguard.Action](t)(f.Svc.Approve(ctx, f.Humans[1], req2.ID, "", "agreed"))
		f.Clock.Advance(time.Hour + time.Second)
		if n := must[int](t)(f.Svc.ExecuteDue(ctx)); n < 1 {
			t.Fatalf("applied %d", n)
		}
		if a := must[*daoguard.Action](t)(f.Svc.Submit(ctx, f.Agent, "", Transfer("5", Vendor))); a.State != daoguard.StateQueued {
			t.Fatalf("after the resume: %s", a.State)
		}
		// Its timeline: asked, approved, queued, executed.
		got, _, err := f.Svc.Action(ctx, f.Humans[0], req2.ID)
		if err != nil || got.State != daoguard.StateExecuted || got.Result == nil || !got.Result.Success {
			t.Fatalf("request: %v %+v", err, got)
		}
	})

	t.Run("ErrRejectedRaiseChangesNothing", func(t *testing.T) {
		f := setup(t, h)
		must2[*daoguard.Principal](t)(f.Svc.SetAutonomy(ctx, f.Humans[0], f.Agent, daoguard.AutonomySupervised, "review"))
		p, req, err := f.Svc.SetAutonomy(ctx, f.Humans[0], f.Agent, daoguard.AutonomyAutonomous, "done")
		if err != nil || p.Autonomy != daoguard.AutonomySupervised || req.State != daoguard.StateAwaitingApproval {
			t.Fatalf("request: %v %+v", err, req)
		}
		// The asker cannot approve it a second time; another human rejects.
		if _, err := f.Svc.Approve(ctx, f.Humans[0], req.ID, "", ""); daoguard.ErrorCode(err) != daoguard.CodeForbidden {
			t.Fatalf("the asker approved again: %v", err)
		}
		if r := must[*daoguard.Action](t)(f.Svc.Reject(ctx, f.Humans[1], req.ID, "no")); r.State != daoguard.StateRejected {
			t.Fatalf("reject: %s", r.State)
		}
		if a := must[*daoguard.Action](t)(f.Svc.Submit(ctx, f.Agent, "", Transfer("5", Vendor))); a.State != daoguard.StateAwaitingApproval {
			t.Fatalf("still supervised: %s", a.State)
		}
		// Control actions are made by the controls, never submitted.
		_, err = f.Svc.Submit(ctx, f.Humans[0], "", daoguard.Intent{Kind: "control"})
		wantCode(t, err, daoguard.CodeInvalid)
	})

	t.Run("OK_OneHumanOrganisation", func(t *testing.T) {
		// An organisation with a single human is not locked out: k is at
		// most the number of humans.
		f := setup(t, h)
		if err := f.Store.Update(ctx, func(tx daoguard.Tx) error {
			if err := tx.PutOrg(ctx, &daoguard.Organisation{ID: "org_solo", Name: "Solo"}); err != nil {
				return err
			}
			return tx.PutPrincipal(ctx, &daoguard.Principal{ID: "solo", OrgID: "org_solo", Kind: daoguard.PrincipalHuman, Name: "solo"})
		}); err != nil {
			t.Fatal(err)
		}
		must[*daoguard.Organisation](t)(f.Svc.Pause(ctx, "solo", "drill"))
		org, req, err := f.Svc.Resume(ctx, "solo", "drill over")
		if err != nil || org.Paused || req.State != daoguard.StateExecuted || req.Decision.RequiredApprovals != 1 {
			t.Fatalf("solo resume: %v %+v %+v", err, org, req)
		}
	})
}

// runLooseningReview: what an attacker's review found, held.
func runLooseningReview(t *testing.T, h Harness) {
	ctx := context.Background()

	t.Run("ErrHumanAddedAfterTheRequestDoesNotCount", func(t *testing.T) {
		f := setup(t, h)
		must[*daoguard.Organisation](t)(f.Svc.Pause(ctx, f.Humans[0], "incident"))
		_, req, err := f.Svc.Resume(ctx, f.Humans[1], "fixed")
		if err != nil {
			t.Fatal(err)
		}
		f.Clock.Advance(time.Second)
		if err := f.Store.Update(ctx, func(tx daoguard.Tx) error {
			return tx.PutPrincipal(ctx, &daoguard.Principal{ID: "sock", OrgID: f.Org, Kind: daoguard.PrincipalHuman, Name: "sock puppet"})
		}); err != nil {
			t.Fatal(err)
		}
		_, err = f.Svc.Approve(ctx, "sock", req.ID, "", "")
		wantCode(t, err, daoguard.CodeForbidden)
		if _, _, err := f.Svc.Resume(ctx, "sock", ""); daoguard.ErrorCode(err) != daoguard.CodeForbidden {
			t.Fatalf("the sock's resume: %v", err)
		}
		if _, err := f.Svc.Submit(ctx, f.Agent, "", Transfer("5", Vendor)); daoguard.ErrorCode(err) != daoguard.CodeOrgPaused {
			t.Fatalf("resumed by a human added after the request: %v", err)
		}
	})

	t.Run("ErrLoweringCancelsAnOpenRaise", func(t *testing.T) {
		f := setup(t, h)
		must2[*daoguard.Principal](t)(f.Svc.SetAutonomy(ctx, f.Humans[0], f.Agent, daoguard.AutonomySupervised, "review"))
		_, req, err := f.Svc.SetAutonomy(ctx, f.Humans[0], f.Agent, daoguard.AutonomyAutonomous, "reviewed")
		if err != nil {
			t.Fatal(err)
		}
		// An incident: another human suspends it. The old raise must not
		// take it from suspended to autonomous.
		must2[*daoguard.Principal](t)(f.Svc.SetAutonomy(ctx, f.Humans[2], f.Agent, daoguard.AutonomySuspended, "incident"))
		if _, err := f.Svc.Approve(ctx, f.Humans[1], req.ID, "", "ok"); daoguard.ErrorCode(err) != daoguard.CodeIllegalTransition {
			t.Fatalf("approving the stale raise: %v", err)
		}
		var p *daoguard.Principal
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) { p, err = tx.Principal(ctx, f.Agent); return err }))
		if p.Autonomy != daoguard.AutonomySuspended {
			t.Fatalf("autonomy %s", p.Autonomy)
		}
	})

	t.Run("OK_LoweringHoldsWhatTheAgentQueued", func(t *testing.T) {
		f := setup(t, h)
		a := must[*daoguard.Action](t)(f.Svc.Submit(ctx, f.Agent, "", Transfer("500", Vendor)))
		if a.State != daoguard.StateQueued {
			t.Fatalf("%s", a.State)
		}
		must2[*daoguard.Principal](t)(f.Svc.SetAutonomy(ctx, f.Humans[0], f.Agent, daoguard.AutonomySuspended, "incident"))
		if n := must[int](t)(f.Svc.ExecuteDue(ctx)); n != 0 {
			t.Fatalf("%d executed after the suspension", n)
		}
		got, _, err := f.Svc.Action(ctx, f.Humans[0], a.ID)
		if err != nil || got.State != daoguard.StateAwaitingApproval {
			t.Fatalf("%v %s", err, got.State)
		}
		if n, _ := f.Ledger.Effects(a.ID); n != 0 {
			t.Fatal("it ran")
		}
	})
}
