package daoguard_test

import (
	"testing"

	"github.com/daoguard/daoguard"
)

// The state machine of DESIGN.md, written out independently of the table in
// state.go: every pair of states is checked against it.
var legal = map[[2]daoguard.State]bool{
	{daoguard.StatePending, daoguard.StateDenied}:             true,
	{daoguard.StatePending, daoguard.StateAwaitingApproval}:   true,
	{daoguard.StatePending, daoguard.StateQueued}:             true,
	{daoguard.StateAwaitingApproval, daoguard.StateRejected}:  true,
	{daoguard.StateAwaitingApproval, daoguard.StateExpired}:   true,
	{daoguard.StateAwaitingApproval, daoguard.StateCancelled}: true,
	{daoguard.StateAwaitingApproval, daoguard.StateQueued}:    true,
	{daoguard.StateQueued, daoguard.StateVetoed}:              true,
	{daoguard.StateQueued, daoguard.StateCancelled}:           true,
	{daoguard.StateQueued, daoguard.StateExpired}:             true,
	{daoguard.StateQueued, daoguard.StateExecuting}:           true,
	{daoguard.StateQueued, daoguard.StateAwaitingApproval}:    true,
	{daoguard.StateExecuting, daoguard.StateExecuted}:         true,
	{daoguard.StateExecuting, daoguard.StateFailed}:           true,
}

func TestTransitions(t *testing.T) {
	states := append(daoguard.AllStates(), 0, daoguard.State(200)) // include invalid values
	nLegal, nIllegal := 0, 0
	for _, from := range states {
		for _, to := range states {
			err := daoguard.CheckTransition(from, to)
			if legal[[2]daoguard.State{from, to}] {
				nLegal++
				if err != nil {
					t.Errorf("%s → %s: %v, want allowed", from, to, err)
				}
				continue
			}
			nIllegal++
			if daoguard.ErrorCode(err) != daoguard.CodeIllegalTransition {
				t.Errorf("%s → %s: %v, want ILLEGAL_TRANSITION", from, to, err)
			}
		}
	}
	if nLegal != len(legal) || nIllegal != len(states)*len(states)-len(legal) {
		t.Fatalf("checked %d legal and %d illegal pairs", nLegal, nIllegal)
	}
}

func TestTerminal(t *testing.T) {
	for _, s := range daoguard.AllStates() {
		want := true
		for pair := range legal {
			if pair[0] == s {
				want = false
			}
		}
		if s.Terminal() != want {
			t.Errorf("%s.Terminal() = %v", s, s.Terminal())
		}
	}
}

func TestStateText(t *testing.T) {
	for _, s := range daoguard.AllStates() {
		b, err := s.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back daoguard.State
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Fatalf("%s round trip: %v %v", s, back, err)
		}
	}
	if _, err := daoguard.State(0).MarshalText(); err == nil {
		t.Error("the zero state must not encode")
	}
	for _, bad := range []string{"", "Queued", "executed ", "unknown"} {
		var s daoguard.State
		if err := s.UnmarshalText([]byte(bad)); daoguard.ErrorCode(err) != daoguard.CodeInvalid {
			t.Errorf("%q: %v, want INVALID_ARGUMENT", bad, err)
		}
	}
}

func TestZeroValuesDeny(t *testing.T) {
	var d daoguard.Decision
	if d.Verdict == daoguard.VerdictAllow || d.Verdict == daoguard.VerdictNeedsApproval {
		t.Fatal("the zero decision must not allow")
	}
	var a daoguard.Autonomy
	if a.Valid() {
		t.Fatal("the zero autonomy must be invalid")
	}
}
