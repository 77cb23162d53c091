package service

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/anomaly"
)

// riskHistory is how many risk events RiskState returns.
const riskHistory = 100

// RiskState is what the risk controls know of one agent.
type RiskState struct {
	Agent *daoguard.Principal `json:"agent"`
	// Findings are the anomaly rules' findings on the agent's latest
	// action against its history, tripping or not (empty if the breaker
	// is off).
	Findings []anomaly.Finding `json:"findings"`
	// Recent counts the agent's latest actions (up to 1,000) and those
	// that screening or the consistency check flagged, and that policy
	// denied.
	Recent struct {
		Actions  int `json:"actions"`
		Flagged  int `json:"flagged"`   // TEXT_FLAGGED or RATIONALE_MISMATCH
		Denied   int `json:"denied"`    // verdict deny
		Escalate int `json:"escalated"` // verdict needs_approval
	} `json:"recent"`
	// LastProbe is the detail of the latest probe.run entry, if any.
	LastProbe json.RawMessage `json:"last_probe,omitempty"`
	// History is the agent's risk events, newest first: autonomy changes
	// (the breaker, probes, humans) and probe runs, each an audit entry.
	History []daoguard.AuditEntry `json:"history"`
}

// RiskState returns an agent's risk state and history, to a human of its
// organisation or to the agent itself.
//
// Errors: NOT_FOUND, INVALID_ARGUMENT (not an agent), FORBIDDEN.
func (s *Service) RiskState(ctx context.Context, actorID, agentID string) (*RiskState, error) {
	out := &RiskState{Findings: []anomaly.Finding{}, History: []daoguard.AuditEntry{}}
	err := s.Store.View(ctx, func(tx daoguard.Tx) error {
		actor, err := tx.Principal(ctx, actorID)
		if err != nil {
			return err
		}
		agent, err := tx.Principal(ctx, agentID)
		if err != nil {
			return err
		}
		if actor.OrgID != agent.OrgID { // reveal nothing about other organisations
			return daoguard.Errorf(daoguard.CodeNotFound, "principal %s not found", agentID)
		}
		if !actor.IsHuman() && actor.ID != agent.ID {
			return daoguard.Errorf(daoguard.CodeForbidden, "an agent can read only its own risk state")
		}
		if agent.Kind != daoguard.PrincipalAgent {
			return daoguard.Errorf(daoguard.CodeInvalid, "%s is not an agent", agentID)
		}
		out.Agent = agent
		recent, err := tx.FindActions(ctx, daoguard.ActionFilter{OrgID: agent.OrgID, PrincipalID: agent.ID, Newest: true, Limit: historySize + 1})
		if err != nil {
			return err
		}
		if len(recent) > historySize {
			recent = recent[:historySize]
		}
		out.Recent.Actions = len(recent)
		for _, a := range recent {
			switch a.Decision.Verdict {
			case daoguard.VerdictDeny:
				out.Recent.Denied++
			case daoguard.VerdictNeedsApproval:
				out.Recent.Escalate++
			}
			if slices.ContainsFunc(a.Decision.Reasons, func(r daoguard.Reason) bool {
				return r.Code == daoguard.ReasonTextFlagged || r.Code == daoguard.ReasonTextMismatch
			}) {
				out.Recent.Flagged++
			}
		}
		if s.Anomaly != nil && len(recent) > 0 {
			if f := anomaly.Check(historyBefore(recent, recent[0]), eventOf(recent[0]), *s.Anomaly); f != nil {
				out.Findings = f
			}
		}
		hist, err := tx.SubjectAudit(ctx, agent.ID, riskHistory)
		if err != nil {
			return err
		}
		slices.Reverse(hist)
		out.History = append(out.History, hist...)
		for _, e := range hist {
			if e.Event == "probe.run" {
				out.LastProbe = e.Detail
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
