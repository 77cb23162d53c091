package service

import (
	"context"
	"math/big"
	"strings"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/policy"
)

// PolicyBounds returns what each agent (and all agents together) can move
// without a human under the policy in force: rules ∧ ceilings ∧ holdings
// (less what open actions hold), at the prices now. Humans see every
// agent's; an agent sees its own.
//
// Errors: NOT_FOUND (principal, or no policy in force).
func (s *Service) PolicyBounds(ctx context.Context, principalID string) ([]policy.Bound, error) {
	var out []policy.Bound
	err := s.Store.View(ctx, func(tx daoguard.Tx) error {
		p, err := tx.Principal(ctx, principalID)
		if err != nil {
			return err
		}
		pv, err := tx.Policy(ctx, p.OrgID, 0)
		if err != nil {
			return err
		}
		pol, err := policy.Parse([]byte(pv.Source))
		if err != nil {
			return daoguard.Errorf(daoguard.CodeInternal, "policy version %d does not compile: %v", pv.Version, err)
		}
		w, err := s.world(ctx, tx, p.OrgID, pol)
		if err != nil {
			return err
		}
		for _, b := range pol.Bounds(w) {
			if p.IsHuman() || b.Principal == p.ID {
				out = append(out, b)
			}
		}
		return nil
	})
	return out, err
}

// world gathers what bounds are computed in: the organisation's
// principals, catalogue, accounts' holdings less their reservations, and
// the trusted prices now.
func (s *Service) world(ctx context.Context, tx daoguard.Tx, orgID string, pol *policy.Policy) (*policy.World, error) {
	ps, err := tx.Principals(ctx, orgID)
	if err != nil {
		return nil, err
	}
	assets, err := tx.Assets(ctx, orgID)
	if err != nil {
		return nil, err
	}
	accounts, err := tx.Accounts(ctx, orgID)
	if err != nil {
		return nil, err
	}
	w := &policy.World{Principals: ps, Catalog: policy.NewCatalog(assets), Holdings: map[string]map[string]*big.Int{}}
	d, _ := s.Decider.(*PolicyDecider)
	for _, a := range accounts {
		w.Accounts = append(w.Accounts, a.Name)
		if d == nil || d.Holdings == nil {
			continue
		}
		bal, at := d.Holdings.Holdings(a.ChainID, a.Address)
		if bal == nil {
			continue // unknown: it bounds nothing
		}
		reserved, err := tx.Reserved(ctx, orgID, strings.ToLower(a.Address), at.Add(-settleMargin))
		if err != nil {
			return nil, err
		}
		avail := map[string]*big.Int{}
		for sym, v := range bal {
			x := new(big.Int).Set(v)
			if r := reserved[sym]; r != nil {
				x.Sub(x, r)
			}
			if x.Sign() < 0 {
				x.SetInt64(0)
			}
			avail[sym] = x
		}
		w.Holdings[a.Name] = avail
	}
	if d != nil && d.Prices != nil {
		w.Prices = pol.TrustedPrices(d.Prices.Quotes(), tx.Now())
	}
	return w, nil
}

// boundChanges is how a policy change moves the bounds, for its approvers.
func (s *Service) boundChanges(ctx context.Context, tx daoguard.Tx, orgID string, base int, next string) ([]string, error) {
	np, err := policy.Parse([]byte(next))
	if err != nil {
		return nil, nil // refused elsewhere, with its problems
	}
	var op *policy.Policy
	if base > 0 {
		pv, err := tx.Policy(ctx, orgID, base)
		if err != nil {
			return nil, err
		}
		if op, err = policy.Parse([]byte(pv.Source)); err != nil {
			op = nil // an old document this binary no longer reads: every bound is new
		}
	}
	w, err := s.world(ctx, tx, orgID, np)
	if err != nil {
		return nil, err
	}
	return policy.BoundChanges(op, np, w), nil
}
