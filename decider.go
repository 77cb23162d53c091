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

// LedgerKeeper is a decider that keeps the window ledger in memory. For
// every action that goes ahead and whose decision Counts (only those: the
// LedgerSeq of any other means nothing), the service adds the action's
// ledger entry
// in the unit that writes the action, then tells the keeper, with the
// LedgerSeq of the decision: the keeper may then count the entry at once
// (if it is undone, the keeper takes it back; see Tx.OnUndo) instead of
// reading it back from the store.
type LedgerKeeper interface {
	Added(tx Tx, e LedgerEntry, seen uint64)
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
