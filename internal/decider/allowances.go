package decider

import (
	"context"
	"math/big"

	"github.com/daoguard/daoguard"
)

// Allowances is an organisation's open allowances as the holdings poller
// keeps them (evm.AllowanceKeeper): listed in a read unit, each shrunk in
// a write unit of its own under the ledger lock, so that it is ordered
// with the decisions reading what is reserved.
type Allowances struct {
	Store daoguard.Store
	OrgID string
}

// Allowances lists the open allowances of executed actions, newest first.
func (a Allowances) Allowances(ctx context.Context) (out []daoguard.Reservation, err error) {
	err = a.Store.View(ctx, func(tx daoguard.Tx) error {
		out, err = tx.Allowances(ctx, a.OrgID)
		return err
	})
	return out, err
}

// ShrinkAllowance lowers one to what the spender can still take.
func (a Allowances) ShrinkAllowance(ctx context.Context, r daoguard.Reservation, amount *big.Int) error {
	return a.Store.Update(ctx, func(tx daoguard.Tx) error {
		if err := tx.LockLedger(ctx, a.OrgID); err != nil {
			return err
		}
		return tx.ShrinkAllowance(ctx, r, amount)
	})
}
