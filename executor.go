package daoguard

import "context"

// Executor carries out a queued action's effect (an on-chain transaction).
//
// The service calls it under a crash-safe protocol: the action is committed
// as executing with a fresh attempt ID before Execute is called, and the
// result is committed afterwards. After a crash the service never calls
// Execute blindly: it first asks Lookup what the attempt did.
type Executor interface {
	// Execute performs the action's effect for attempt. It must be idempotent
	// per attempt: a second call with the same attempt must not produce a
	// second effect (an EVM executor re-broadcasts the same signed
	// transaction; a ledger checks the attempt ID). A returned error means the
	// outcome is unknown, and the action stays executing for Lookup.
	Execute(ctx context.Context, a *Action, attempt string) (ExecResult, error)

	// Lookup reports what attempt did. found is false only if the attempt has
	// had no effect; the service may then call Execute with the same attempt.
	Lookup(ctx context.Context, a *Action, attempt string) (res ExecResult, found bool, err error)
}
