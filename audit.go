package daoguard

import (
	"encoding/json"
	"time"
)

// AuditEntry is one record of the append-only audit log. Every state change
// is committed in the same transaction as its entry, so the log can never
// miss a change that happened. Entries never hold secrets or signatures.
type AuditEntry struct {
	Seq       uint64          `json:"seq"` // dense, 0-based position in the log; assigned by the store
	Time      time.Time       `json:"time"`
	OrgID     string          `json:"org_id"`
	ActorID   string          `json:"actor_id"`   // principal id, or "system"
	ActorKind string          `json:"actor_kind"` // "agent" | "human" | "system"
	ActionID  string          `json:"action_id,omitempty"`
	Event     string          `json:"event"` // e.g. "action.queued", "org.paused"
	Detail    json.RawMessage `json:"detail,omitempty"`
}

// ActorSystem is the actor of entries written by daoguard itself (expiry,
// execution, reconciliation).
const ActorSystem = "system"

// AuditHash is one stored hash of the audit log's Merkle tree.
type AuditHash struct {
	Index int64
	Hash  [32]byte
}
