package service

import (
	"bytes"
	"context"
	"time"

	"github.com/daoguard/daoguard"
)

// Simulator runs an action on the chain as its account would, before it is
// decided and again before it is broadcast (evm.Simulator). For a Safe
// account it also returns the Safe transaction the owners sign.
type Simulator interface {
	Simulate(ctx context.Context, d *daoguard.Decoded, assets []*daoguard.Asset) (*daoguard.Simulation, *daoguard.SafeTxRef, error)
}

// DefaultSimulateTimeout bounds one simulation before a decision.
const DefaultSimulateTimeout = 10 * time.Second

// presim is a simulation run before the unit that decides: the node is
// never called inside a store transaction, which would hold the batch (and
// in PostgreSQL the organisation's ledger lock) for a network round trip.
type presim struct {
	dec daoguard.Decoded // what was simulated
	sim *daoguard.Simulation
	ref *daoguard.SafeTxRef
}

// simulates reports whether an action of this kind runs on the chain.
func simulates(k daoguard.ActionKind) bool {
	return k == daoguard.KindTransfer || k == daoguard.KindCall
}

// presimulate decodes the intent on a snapshot and simulates it. It
// returns nil when there is nothing to simulate; the unit then decodes
// again and reports any input error itself.
func (s *Service) presimulate(ctx context.Context, principalID string, in daoguard.Intent) *presim {
	if s.Simulator == nil || in.Kind == daoguard.KindPolicy.String() {
		return nil
	}
	var dec daoguard.Decoded
	var assets []*daoguard.Asset
	err := s.Store.View(ctx, func(tx daoguard.Tx) error {
		p, err := tx.Principal(ctx, principalID)
		if err != nil {
			return err
		}
		if dec, err = Decode(ctx, tx, p.OrgID, in); err != nil {
			return err
		}
		assets, err = tx.Assets(ctx, p.OrgID)
		return err
	})
	if err != nil || !simulates(dec.Kind) {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, s.SimulateTimeout)
	defer cancel()
	sim, ref, err := s.Simulator.Simulate(sctx, &dec, assets)
	if err != nil {
		s.Logger.Warn("simulation failed; the decision fails closed to approval", "err", err)
		sim, ref = &daoguard.Simulation{Error: err.Error()}, nil
	}
	return &presim{dec: dec, sim: sim, ref: ref}
}

// attach gives the unit's decoded action its simulation: the one run
// before the unit if it simulated exactly this call from this account,
// otherwise an unavailable one (the catalogue changed in between), so
// that policy fails closed.
func (s *Service) attach(dec *daoguard.Decoded, pre *presim) {
	if s.Simulator == nil || !simulates(dec.Kind) {
		return
	}
	if pre != nil && sameCall(&pre.dec, dec) {
		dec.Simulation, dec.SafeTx = pre.sim, pre.ref
		return
	}
	dec.Simulation = &daoguard.Simulation{Error: "the account or asset changed while the action was simulated"}
}

// sameCall: both decode to the same call from the same account.
func sameCall(a, b *daoguard.Decoded) bool {
	eq := func(x, y *daoguard.BigInt) bool {
		return x == nil && y == nil || x != nil && y != nil && x.Int().Cmp(y.Int()) == 0
	}
	return a.Kind == b.Kind && a.ChainID == b.ChainID && a.AccountKind == b.AccountKind && a.From == b.From &&
		a.To == b.To && a.Token == b.Token && eq(a.Amount, b.Amount) && eq(a.Value, b.Value) &&
		bytes.Equal(a.Data, b.Data) && a.Operation == b.Operation
}

// OwnerSignatures checks the EIP-712 signature that a human gives with an
// approval of a Safe action (evm.SafeApprovals): the Safe's owners sign
// exactly the transaction that will run.
type OwnerSignatures interface {
	// Owner recovers who signed the action's Safe transaction (pure).
	Owner(a *daoguard.Action, sig string) (string, error)
	// IsOwner checks that owner is one of the Safe's owners now.
	IsOwner(ctx context.Context, a *daoguard.Action, owner string) error
}

// checkOwnerSignature checks, before the unit that records an approval,
// that an approval of a Safe action carries a current owner's signature of
// its Safe transaction. It returns the owner ("" if the action is not a
// Safe transaction).
func (s *Service) checkOwnerSignature(ctx context.Context, principalID, actionID, sig string) (string, error) {
	if s.Signatures == nil {
		return "", nil
	}
	var a *daoguard.Action
	err := s.Store.View(ctx, func(tx daoguard.Tx) error {
		p, err := tx.Principal(ctx, principalID)
		if err != nil {
			return err
		}
		a, err = actionOf(ctx, tx, p, actionID)
		return err
	})
	if err != nil || a.Decoded.SafeTx == nil {
		return "", err // the unit reports a missing action itself
	}
	if sig == "" {
		return "", &daoguard.Error{Code: daoguard.CodeOwnerSignature, Field: "signature",
			Message: "approving a Safe action needs your EIP-712 signature of its Safe transaction (decoded.safe_tx.hash " + a.Decoded.SafeTx.Hash + ")",
			Hint:    "sign the SafeTx typed data with your owner key and pass it as signature"}
	}
	owner, err := s.Signatures.Owner(a, sig)
	if err != nil {
		return "", err
	}
	return owner, s.Signatures.IsOwner(ctx, a, owner)
}
