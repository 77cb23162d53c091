package policytest

import (
	"testing"
)

// TestGolden runs the golden cases in testdata/policy: every rule type and
// the attack classes policy alone decides.
func TestGolden(t *testing.T) {
	rep, err := Run("../../testdata/policy")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range rep.Outcomes {
		if !o.Pass {
			t.Errorf("%s: %s: %s", o.File, o.Name, o.Why)
		}
	}
	if n := len(rep.Outcomes); n < 60 {
		t.Errorf("%d golden cases, want at least 60", n)
	}
	if rep.Deny <= rep.Allow {
		t.Errorf("%d deny and %d allow cases: want more deny than allow", rep.Deny, rep.Allow)
	}
	t.Logf("%d cases: %d allow, %d needs_approval, %d deny", len(rep.Outcomes), rep.Allow, rep.NeedsApproval, rep.Deny)
}
