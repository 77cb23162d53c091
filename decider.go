package daoguard

import "context"

// DecisionInput is everything a decider may look at. The decider must not
// do I/O: the service gathers the snapshot and passes it in.
type DecisionInput struct {
	Org       *Organisation
	Principal *Principal
	Action    *Action // Intent and Decoded are set
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
