package daoguard

import (
	"context"
	"slices"
	"time"
)

// Credential algorithms (API.md).
const (
	AlgEd25519    = "ed25519"
	AlgHMACSHA256 = "hmac-sha256"
)

// Scopes (API.md).
const (
	ScopeActionsRead    = "actions:read"
	ScopeActionsWrite   = "actions:write"
	ScopeApprovalsWrite = "approvals:write"
	ScopeControlsWrite  = "controls:write"
	ScopeAuditRead      = "audit:read"
	ScopeAdmin          = "admin"
)

// Scopes lists every scope.
var Scopes = []string{ScopeActionsRead, ScopeActionsWrite, ScopeApprovalsWrite, ScopeControlsWrite, ScopeAuditRead, ScopeAdmin}

// AgentScopes is what an agent credential gets when none are asked for, and
// AgentMaxScopes all an agent may ever hold: agents never approve, control,
// or administer (they cannot loosen their own constraints).
var (
	AgentScopes    = []string{ScopeActionsRead, ScopeActionsWrite}
	AgentMaxScopes = []string{ScopeActionsRead, ScopeActionsWrite, ScopeAuditRead}
)

// HumanReservedScopes move money or control; a credential holding one must
// be ed25519, so that they are never exercised on a shared secret alone.
var HumanReservedScopes = []string{ScopeApprovalsWrite, ScopeControlsWrite, ScopeAdmin}

// Credential is a principal's API key as the server keeps it: the public key
// for ed25519, and for hmac-sha256 only the envelope-encrypted secret. The
// plaintext secret or private key is never stored.
type Credential struct {
	KeyID        string    `json:"key_id"`
	PrincipalID  string    `json:"principal_id"`
	Alg          string    `json:"alg"`
	PublicKey    []byte    `json:"public_key,omitempty"`
	SealedSecret []byte    `json:"-"`
	Scopes       []string  `json:"scopes"`
	Environment  string    `json:"environment"` // "test" | "live"
	Created      time.Time `json:"created"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
	RevokedAt    time.Time `json:"revoked_at,omitzero"`
	ReplacedBy   string    `json:"replaced_by,omitempty"` // the key that rotation created; this one ends at ExpiresAt
	LastUsed     time.Time `json:"last_used,omitzero"`    // coarse: written at most every flush interval
}

// HasScope reports whether c carries scope.
func (c *Credential) HasScope(scope string) bool { return slices.Contains(c.Scopes, scope) }

// SealedSecretAD is the associated data an hmac credential's secret is
// sealed with: its row and column, so a blob cannot be moved to another row.
func SealedSecretAD(keyID string) []byte { return []byte("credentials.sealed_secret:" + keyID) }

// CredentialStore keeps credentials.
type CredentialStore interface {
	// Credential returns the credential. Errors: NOT_FOUND.
	Credential(ctx context.Context, keyID string) (*Credential, error)
	// Credentials lists the credentials of an organisation's principals,
	// oldest first.
	Credentials(ctx context.Context, orgID string) ([]*Credential, error)
	// PutCredential inserts the credential or updates its mutable fields
	// (scopes, sealed secret, expiry, revocation, replacement).
	PutCredential(ctx context.Context, c *Credential) error
	// TouchCredentials moves last-used times forward (never back).
	TouchCredentials(ctx context.Context, used map[string]time.Time) error
}

// Nonce is a signed request's nonce, as data: the service uses it as the
// first step of the transaction that acts on the request (see
// NonceStore.UseNonce), so that the request's effect and the use of its
// nonce commit together or not at all.
type Nonce struct {
	KeyID   string
	Value   string
	Created time.Time // the signature's creation time (signed)
	Expires time.Time // when the record may be dropped
}

// Use records n in tx. Errors: ErrNonceReused.
func (n *Nonce) Use(ctx context.Context, tx NonceStore) error {
	return tx.UseNonce(ctx, n.KeyID, n.Value, n.Created, n.Expires)
}

// ErrNonceReused is returned by UseNonce for a nonce already used.
var ErrNonceReused = &Error{Code: CodeNonceReused, Message: "this signature nonce was already used: the request is a replay"}

// NonceStore remembers the nonces of signed requests, so that a request is
// accepted once, on any gateway sharing the store.
type NonceStore interface {
	// UseNonce records nonce for keyID, atomically, unless it is already
	// recorded for the same signature creation time. created is part of
	// the key because it is signed: a replay repeats it exactly, and stores
	// keep the records in created order, so inserts land together instead
	// of on random pages. expires is when the record may be dropped: after
	// it, created is outside the window anyway. Errors: ErrNonceReused.
	UseNonce(ctx context.Context, keyID, nonce string, created, expires time.Time) error
	// PurgeNonces drops nonces that expired before t and returns how many.
	PurgeNonces(ctx context.Context, before time.Time) (int64, error)
}
