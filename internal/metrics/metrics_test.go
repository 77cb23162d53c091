package metrics

import (
	"testing"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/anomaly"
	"github.com/daoguard/daoguard/internal/probe"
	"github.com/daoguard/daoguard/internal/service"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestObserver(t *testing.T) {
	m := New(nil, "")
	m.Decided(&daoguard.Action{Logged: &daoguard.AuditEntry{ActorKind: "agent"}, Decision: daoguard.Decision{Verdict: daoguard.VerdictNeedsApproval,
		Reasons: []daoguard.Reason{{Code: daoguard.ReasonTextFlagged}, {Code: daoguard.ReasonTextMismatch}}}})
	m.Decided(&daoguard.Action{Logged: &daoguard.AuditEntry{ActorKind: "agent"}, Decision: daoguard.Decision{Verdict: daoguard.VerdictDeny}})
	m.BreakerTripped("agt", []anomaly.Finding{{Rule: anomaly.RuleBurst, Trip: true}, {Rule: anomaly.RuleUnusualHour}})
	m.ProbeRan(&service.ProbeRun{Agent: "agt", Result: &probe.Result{Suite: "reference", Score: 0.5}})
	m.AutonomyChanged("agt", daoguard.AutonomyAutonomous, daoguard.AutonomySupervised, "system")
	for _, c := range []struct {
		got, want float64
		what      string
	}{
		{testutil.ToFloat64(m.decisions.WithLabelValues("needs_approval", "agent")), 1, "escalated"},
		{testutil.ToFloat64(m.decisions.WithLabelValues("deny", "agent")), 1, "denied"},
		{testutil.ToFloat64(m.screenFlags.WithLabelValues("TEXT_FLAGGED")), 1, "flagged"},
		{testutil.ToFloat64(m.screenFlags.WithLabelValues("RATIONALE_MISMATCH")), 1, "mismatch"},
		{testutil.ToFloat64(m.breakerTrips.WithLabelValues("BURST")), 1, "burst trip"},
		{testutil.ToFloat64(m.breakerTrips.WithLabelValues("UNUSUAL_HOUR")), 0, "a finding that does not trip"},
		{testutil.ToFloat64(m.probeRuns.WithLabelValues("reference", "failed")), 1, "failed run"},
		{testutil.ToFloat64(m.probeScore.WithLabelValues("agt", "reference")), 0.5, "score"},
		{testutil.ToFloat64(m.autonomy.WithLabelValues("supervised", "system")), 1, "autonomy"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	if n, err := testutil.GatherAndCount(m.Registry, "daoguard_decisions_total"); err != nil || n != 2 {
		t.Fatalf("gather: %d %v", n, err)
	}
}
