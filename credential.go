package daoguard

import (
	"context"
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
}

// CredentialStore keeps credentials.
type CredentialStore interface {
	// Credential returns the credential. Errors: NOT_FOUND.
	Credential(ctx context.Context, keyID string) (*Credential, error)
	// PutCredential inserts or replaces the credential.
	PutCredential(ctx context.Context, c *Credential) error
}
