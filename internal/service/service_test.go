package service_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/service"
	"github.com/daoguard/daoguard/internal/sqlite"
	"github.com/daoguard/daoguard/internal/storetest"
)

// fixed is a decider that returns one answer.
type fixed struct {
	d   daoguard.Decision
	err error
}

func (f fixed) Decide(context.Context, daoguard.DecisionInput) (daoguard.Decision, error) {
	return f.d, f.err
}

func newService(t *testing.T, dec daoguard.Decider) *service.Service {
	db := sqlite.NewDB(filepath.Join(t.TempDir(), "d.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := storetest.Seed(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return service.New(db, dec, nil, "node")
}

// The service never lets a decider's mistake through: errors and malformed
// decisions deny, with a reason saying why.
func TestDecisionsFailClosed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		dec    fixed
		reason string
	}{
		{"decider error", fixed{err: errors.New("cel: division by zero")}, daoguard.ReasonDeciderError},
		{"zero decision", fixed{}, daoguard.ReasonInvalidDecision},
		{"unknown verdict", fixed{d: daoguard.Decision{Verdict: 42}}, daoguard.ReasonInvalidDecision},
		{"approval by nobody", fixed{d: daoguard.Decision{Verdict: daoguard.VerdictNeedsApproval, RequiredApprovals: 0}}, daoguard.ReasonInvalidDecision},
		{"negative timelock", fixed{d: daoguard.Decision{Verdict: daoguard.VerdictAllow, Timelock: -time.Hour}}, daoguard.ReasonInvalidDecision},
		{"no policy", fixed{d: must(daoguard.DenyAll{}.Decide(context.Background(), daoguard.DecisionInput{}))}, daoguard.ReasonNoPolicy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newService(t, tc.dec)
			a, err := svc.Submit(context.Background(), "agent_1", "", storetest.Transfer("5", storetest.Vendor))
			if err != nil {
				t.Fatal(err)
			}
			last := a.Decision.Reasons[len(a.Decision.Reasons)-1]
			if a.State != daoguard.StateDenied || a.Decision.Verdict != daoguard.VerdictDeny || last.Code != tc.reason {
				t.Fatalf("state %s verdict %s reasons %+v; want denied with %s", a.State, a.Decision.Verdict, a.Decision.Reasons, tc.reason)
			}
		})
	}
}

// A supervised agent's allowed action still needs a human; a denial stays a
// denial (supervision only ever tightens).
func TestSupervisionOnlyTightens(t *testing.T) {
	ctx := context.Background()
	allow := newService(t, fixed{d: daoguard.Decision{Verdict: daoguard.VerdictAllow}})
	if _, _, err := allow.SetAutonomy(ctx, daoguard.ActorSystem, "agent_1", daoguard.AutonomySupervised, "test"); err != nil {
		t.Fatal(err)
	}
	a, err := allow.Submit(ctx, "agent_1", "", storetest.Transfer("5", storetest.Vendor))
	if err != nil || a.State != daoguard.StateAwaitingApproval || a.Decision.RequiredApprovals != 1 {
		t.Fatalf("supervised allow: %v %+v", err, a)
	}
	// Humans are not subject to agent autonomy.
	if h, err := allow.Submit(ctx, "human_1", "", storetest.Transfer("5", storetest.Vendor)); err != nil || h.State != daoguard.StateQueued {
		t.Fatalf("human allow: %v %+v", err, h)
	}
	deny := newService(t, fixed{d: daoguard.Decision{Verdict: daoguard.VerdictDeny}})
	deny.SetAutonomy(ctx, daoguard.ActorSystem, "agent_1", daoguard.AutonomySupervised, "test")
	if d, err := deny.Submit(ctx, "agent_1", "", storetest.Transfer("5", storetest.Vendor)); err != nil || d.State != daoguard.StateDenied {
		t.Fatalf("supervised deny: %v %+v", err, d)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
