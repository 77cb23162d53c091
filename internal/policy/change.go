package policy

import (
	"strconv"

	"github.com/daoguard/daoguard"
)

// ReasonPolicyChange marks a change of the policy itself.
const ReasonPolicyChange = "POLICY_CHANGE"

// ChangeDecision is the decision on replacing this policy. Changing the
// rules is the one action that can undo every other protection, so no
// policy can make it easier: agents are always denied, and humans need the
// council with the longest timelock this policy knows, so that nobody can
// slip a change in faster than the slowest action it governs.
func (p *Policy) ChangeDecision(agent bool) daoguard.Decision {
	if agent {
		return daoguard.Decision{Verdict: daoguard.VerdictDeny, Tier: TierDeny.String(), PolicyVersion: p.Version,
			Reasons: []daoguard.Reason{{Code: ReasonPolicyChange, Detail: "agents cannot change the policy"}}}
	}
	c := p.council
	timelock := c.timelock
	for _, r := range p.rules {
		timelock = max(timelock, r.approval.timelock)
	}
	return daoguard.Decision{
		Verdict: daoguard.VerdictNeedsApproval, Tier: TierVote.String(), PolicyVersion: p.Version,
		RequiredApprovals: c.approvals, ApproverRole: c.role, Timelock: timelock,
		Reasons: []daoguard.Reason{{Code: ReasonPolicyChange, Detail: "a policy change needs " + strconv.Itoa(c.approvals) + " of group " + c.group +
			" and waits " + fmtPeriod(timelock) + " (the longest timelock in the policy in force)"}},
	}
}
