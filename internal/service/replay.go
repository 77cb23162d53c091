package service

import (
	"context"
	"math/big"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/policy"
)

// ReplayChange is one past decision that a candidate policy would change.
type ReplayChange struct {
	Action *daoguard.Action
	Was    daoguard.Decision // as recorded
	Would  daoguard.Decision // under the candidate
}

// ReplayReport summarises a replay.
type ReplayReport struct {
	Actions  int // decisions replayed
	Changes  []ReplayChange
	Looser   int // changes towards allow
	Stricter int
}

// Replay re-evaluates the organisation's stored decisions, oldest first,
// under a candidate policy (shadow mode): each at the time it was made,
// with the prices and holdings it was made on, and with rolling windows
// built from what the candidate itself would have let through. Nothing is
// written. Principals are judged with their current roles.
func (s *Service) Replay(ctx context.Context, orgID string, cand *policy.Policy) (*ReplayReport, error) {
	rep := &ReplayReport{}
	ledger := cand.NewLedger()
	principals := map[string]*daoguard.Principal{}
	err := s.Store.View(ctx, func(tx daoguard.Tx) error {
		assets, err := tx.Assets(ctx, orgID)
		if err != nil {
			return err
		}
		cat := policy.NewCatalog(assets)
		for after := ""; ; {
			page, err := tx.FindActions(ctx, daoguard.ActionFilter{OrgID: orgID, AfterID: after, Limit: daoguard.MaxFindLimit})
			if err != nil {
				return err
			}
			for _, a := range page {
				if a.Decoded.Kind == daoguard.KindPolicy {
					continue
				}
				p := principals[a.PrincipalID]
				if p == nil {
					if p, err = tx.Principal(ctx, a.PrincipalID); err != nil {
						return err
					}
					principals[p.ID] = p
				}
				in := &policy.Input{Now: a.Created, Principal: p, Action: &a.Decoded, Catalog: cat, History: ledger, Contracts: s.Contracts}
				if r := a.Decision.Inputs; r != nil {
					in.Trusted, in.Holdings = map[string]*big.Int{}, map[string]*big.Int{}
					for sym, text := range r.Prices {
						if v, ok := new(big.Int).SetString(scaled(text), 10); ok {
							in.Trusted[sym] = v
						}
					}
					for sym, v := range r.Holdings {
						in.Holdings[sym] = v.Int()
					}
					in.Reserved = bigs(r.Reserved)
					for addr, o := range r.Owners {
						if in.Owners == nil {
							in.Owners = map[string]*policy.Owner{}
						}
						in.Owners[addr] = &policy.Owner{Name: o.Account, Safe: o.Safe, Holdings: bigs(o.Holdings), Reserved: bigs(o.Reserved)}
					}
				}
				res := cand.Evaluate(in)
				would := res.Decision
				if would.Verdict == daoguard.VerdictAllow && p.Kind == daoguard.PrincipalAgent && hasCode(a.Decision, daoguard.ReasonAgentSupervised) {
					would.Verdict = daoguard.VerdictNeedsApproval // the agent was supervised then
				}
				if would.Verdict != daoguard.VerdictDeny {
					ledger.RecordFor(a.Created, policy.Who{ID: p.ID, Agent: p.Kind == daoguard.PrincipalAgent, Roles: p.Roles}, res.Flows)
				}
				rep.Actions++
				if would.Verdict != a.Decision.Verdict {
					rep.Changes = append(rep.Changes, ReplayChange{Action: a, Was: a.Decision, Would: would})
					if would.Verdict > a.Decision.Verdict {
						rep.Looser++
					} else {
						rep.Stricter++
					}
				}
			}
			if len(page) < daoguard.MaxFindLimit {
				return nil
			}
			after = page[len(page)-1].ID
		}
	})
	return rep, err
}

// bigs turns recorded balances back into numbers (nil if none).
func bigs(m map[string]*daoguard.BigInt) map[string]*big.Int {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]*big.Int, len(m))
	for sym, v := range m {
		out[sym] = v.Int()
	}
	return out
}

// scaled turns a recorded decimal price back into 1e18 fixed point.
func scaled(text string) string {
	v, err := daoguard.ParseAmount(text, 18)
	if err != nil {
		return ""
	}
	return v.String()
}

func hasCode(d daoguard.Decision, code string) bool {
	for _, r := range d.Reasons {
		if r.Code == code {
			return true
		}
	}
	return false
}
