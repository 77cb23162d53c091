package client

import (
	"encoding/json"
	"time"

	"github.com/daoguard/daoguard"
)

// The wire types of the API: the server encodes them, this client decodes
// them, so both sides share one definition.

// Action is an action as the API shows it (API.md).
type Action struct {
	ID          string               `json:"id"`
	State       string               `json:"state"`
	PrincipalID string               `json:"principal_id"`
	Intent      daoguard.Intent      `json:"intent"`
	Decoded     Decoded              `json:"decoded"`
	Decision    Decision             `json:"decision"`
	ExpiresAt   *time.Time           `json:"expires_at"`
	Result      *daoguard.ExecResult `json:"result,omitempty"`
	Approvals   []daoguard.Approval  `json:"approvals,omitempty"`
	Timeline    []TimelineEntry      `json:"timeline,omitempty"`
	// LogIndex is the position in the audit log of the entry that
	// recorded the action's latest change: the index of
	// GET /v1/audit/proof/{index}.
	LogIndex *uint64   `json:"log_index,omitempty"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// Decoded is the decoded action with calldata in hex.
type Decoded struct {
	daoguard.Decoded
	Data string `json:"data,omitempty"`
}

// Decision is the decision with the timelock as a time.
type Decision struct {
	Verdict           string            `json:"verdict"`
	Tier              string            `json:"tier,omitempty"`
	Reasons           []daoguard.Reason `json:"reasons"`
	RequiredApprovals int               `json:"required_approvals"`
	ApproverRole      string            `json:"approver_role,omitempty"`
	TimelockSeconds   int64             `json:"timelock_seconds"`
	TimelockUntil     *time.Time        `json:"timelock_until"`
	PolicyVersion     string            `json:"policy_version,omitempty"`
	// Inputs are the figures the decision saw: flows valued, prices used,
	// holdings.
	Inputs *daoguard.DecisionInputs `json:"inputs,omitempty"`
}

// PolicyRequest proposes a new policy document (POST /v1/policy): it
// becomes an action of kind policy that the council approves.
type PolicyRequest struct {
	Policy    string `json:"policy"`
	Rationale string `json:"rationale,omitempty"`
}

// Policy is a policy version (GET /v1/policy).
type Policy struct {
	Version  int       `json:"version"`
	Digest   string    `json:"digest"`
	Source   string    `json:"source"`
	ActionID string    `json:"action_id,omitempty"`
	By       string    `json:"by"`
	Created  time.Time `json:"created"`
}

// TimelineEntry is one audit entry of an action.
type TimelineEntry struct {
	Seq       uint64          `json:"seq"`
	Time      time.Time       `json:"time"`
	Event     string          `json:"event"`
	ActorID   string          `json:"actor_id"`
	ActorKind string          `json:"actor_kind"`
	Detail    json.RawMessage `json:"detail,omitempty"`
}

// VoteRequest is the body of approve, reject and veto.
type VoteRequest struct {
	Signature string `json:"signature,omitempty"` // approve: an EIP-712 signature over the bound transaction
	Comment   string `json:"comment,omitempty"`
}

// ControlRequest is the body of pause and resume.
type ControlRequest struct {
	Reason string `json:"reason,omitempty"`
}

// Bounds answers GET /v1/policy/bounds.
type Bounds struct {
	Bounds []daoguard.Bound `json:"bounds"`
}

// ControlResponse answers resume: the organisation as it now is and,
// unless it was not paused, the control action that resumes it (awaiting
// the approvals of more humans, queued behind the loosening timelock, or
// executed).
type ControlResponse struct {
	daoguard.Organisation
	Action *Action `json:"action,omitempty"`
}

// AutonomyResponse answers an autonomy change: the agent as it now is and,
// for a raise, the control action that raises it once k humans approved.
type AutonomyResponse struct {
	daoguard.Principal
	Action *Action `json:"action,omitempty"`
}

// AutonomyRequest sets an agent's autonomy.
type AutonomyRequest struct {
	Level  daoguard.Autonomy `json:"level"`
	Reason string            `json:"reason,omitempty"`
}

// PrincipalRequest creates a principal.
type PrincipalRequest struct {
	Kind  daoguard.PrincipalKind `json:"kind"`
	Name  string                 `json:"name"`
	Roles []string               `json:"roles,omitempty"`
}

// Key is a credential's public part.
type Key struct {
	KeyID       string     `json:"key_id"`
	PrincipalID string     `json:"principal_id"`
	Alg         string     `json:"alg"`
	Scopes      []string   `json:"scopes"`
	Environment string     `json:"environment"`
	PublicKey   string     `json:"public_key,omitempty"` // ed25519, base64
	Created     time.Time  `json:"created"`
	ExpiresAt   *time.Time `json:"expires_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	ReplacedBy  string     `json:"replaced_by,omitempty"`
	LastUsed    *time.Time `json:"last_used"`
}

// KeyRequest creates a key.
type KeyRequest struct {
	Principal string    `json:"principal"`
	Alg       string    `json:"alg"`
	Scopes    []string  `json:"scopes,omitempty"`
	PublicKey string    `json:"public_key,omitempty"` // ed25519, base64: generate the key pair yourself
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// NewKey holds the key and, once and only here, its secret.
type NewKey struct {
	Key        Key    `json:"key"`
	Secret     string `json:"secret,omitempty"`      // hmac-sha256, base64
	PrivateKey string `json:"private_key,omitempty"` // ed25519 seed, base64, when the server generated it
}

// RotateRequest rotates a key.
type RotateRequest struct {
	Overlap   string `json:"overlap,omitempty"` // how long the old key keeps working, e.g. "24h"; default 0
	PublicKey string `json:"public_key,omitempty"`
}

// RevokeRequest revokes a key.
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"`
}

// ScreenRequest is the body of POST /v1/screen.
type ScreenRequest struct {
	Text string `json:"text"`
}

// ScreenResult is what screening found in a text (POST /v1/screen,
// daoguard screen): spans are byte offsets into the text sent.
type ScreenResult struct {
	Flagged bool         `json:"flagged"`
	Score   float64      `json:"score"`
	Labels  []string     `json:"labels"`
	Spans   []ScreenSpan `json:"spans"`
}

// ScreenSpan is a flagged stretch of a screened text.
type ScreenSpan struct {
	Start int    `json:"start"`
	End   int    `json:"end"`
	Label string `json:"label"`
}
