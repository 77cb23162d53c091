package daoguard

import (
	"context"
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

	// KeyID is the credential that signed the request this entry records,
	// and RequestDigest the base64 SHA-256 of that request's RFC 9421
	// signature base (which covers its method, path, body digest, time
	// and nonce): the client can tie the entry to the exact request it
	// sent. Both empty for what daoguard does on its own. The stores fill
	// them from the context (WithRequest).
	KeyID         string `json:"key_id,omitempty"`
	RequestDigest string `json:"request_digest,omitempty"`

	// Subject is the principal the entry is about (an agent whose autonomy
	// changed, whose probes ran), for its risk history (SubjectAudit). An
	// index only: it is not part of the hashed leaf, so it is not
	// exported or served with the entry either.
	Subject string `json:"-"`
}

// Request identifies the authenticated request a context serves.
type Request struct {
	KeyID  string
	Digest string
}

type requestKey struct{}

// WithRequest returns ctx carrying r: every audit entry appended with it
// records r.
func WithRequest(ctx context.Context, r Request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}

// RequestOf returns the request ctx serves, if any.
func RequestOf(ctx context.Context) Request {
	r, _ := ctx.Value(requestKey{}).(Request)
	return r
}

// FromRequest fills e's KeyID and RequestDigest from ctx, unless set.
func (e *AuditEntry) FromRequest(ctx context.Context) {
	if e.KeyID == "" && e.RequestDigest == "" {
		r := RequestOf(ctx)
		e.KeyID, e.RequestDigest = r.KeyID, r.Digest
	}
}

// ActorSystem is the actor of entries written by daoguard itself (expiry,
// execution, reconciliation).
const ActorSystem = "system"

// AuditHash is one stored hash of the audit log's Merkle tree.
type AuditHash struct {
	Index int64
	Hash  [32]byte
}
