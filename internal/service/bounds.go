package service

import (
	"context"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/decider"
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

func (s *Service) world(ctx context.Context, tx daoguard.Tx, orgID string, pol *policy.Policy) (*policy.World, error) {
	d, _ := s.Decider.(*decider.Policy)
	return decider.World(ctx, tx, orgID, pol, d)
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
