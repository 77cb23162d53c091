package daoguard

import "context"

// DecisionInput is everything a decider may look at. The decider must not
// do I/O: the service gathers the snapshot and passes it in.
type DecisionInput struct {
	Org       *Organisation
	Principal *Principal
	Action    *Action // Intent and Decoded are set
	// Tx is the unit the action is written in. A decider reads the
	// snapshot it judges on from it (the policy in force, the window
	// ledger's newest entries) and adds what it lets through to the
	// ledger; the evaluation itself does no I/O.
	Tx Tx
	// DryRun asks for the decision only: Tx may be read-only, and the
	// decider must record nothing.
	DryRun bool
}

// Decider judges one decoded action. The policy engine implements it. Any
// error is treated by the caller as a denial (fail closed).
type Decider interface {
	Decide(ctx context.Context, in DecisionInput) (Decision, error)
}

// DenyAll is the decider in force when no policy is loaded: every action is
// denied. It is the zero-configuration default, never a test shortcut.
type DenyAll struct{}

// Decide denies.
func (DenyAll) Decide(context.Context, DecisionInput) (Decision, error) {
	return Decision{
		Verdict: VerdictDeny,
		Tier:    "deny",
		Reasons: []Reason{{Code: ReasonNoPolicy, Detail: "no policy is loaded; every action is denied"}},
	}, nil
}
