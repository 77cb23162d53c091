package service

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"slices"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/auth"
)

// SecretSize is the size of a generated hmac-sha256 secret (RFC 2104
// recommends at least the hash output length).
const SecretSize = 32

// KeyRequest asks for a new credential.
type KeyRequest struct {
	PrincipalID string
	Alg         string   // ed25519 | hmac-sha256
	Scopes      []string // empty: the principal kind's default
	PublicKey   []byte   // ed25519 only: a client-generated key; the server then never sees the private key
	ExpiresAt   time.Time
}

// NewKey is a created credential and the private material shown once: the
// hmac secret, or the ed25519 seed when the server generated the key pair.
// daoguard keeps neither in plaintext.
type NewKey struct {
	Credential *daoguard.Credential
	Secret     []byte // hmac-sha256
	Seed       []byte // ed25519, server-generated
}

// CreatePrincipal adds an agent or a human to the actor's organisation.
// New agents start supervised: a human raises them to autonomous.
//
// Errors: NOT_HUMAN, INVALID_ARGUMENT.
func (s *Service) CreatePrincipal(ctx context.Context, actorID string, kind daoguard.PrincipalKind, name string, roles []string) (*daoguard.Principal, error) {
	if name == "" || len(name) > 100 {
		return nil, daoguard.FieldError(daoguard.CodeInvalid, "name", "a name of 1 to 100 characters is required")
	}
	var out *daoguard.Principal
	err := s.Store.Update(ctx, func(tx daoguard.Tx) error {
		actor, err := humanActor(ctx, tx, actorID)
		if err != nil {
			return err
		}
		p := &daoguard.Principal{OrgID: actor.OrgID, Kind: kind, Name: name, Roles: roles}
		switch kind {
		case daoguard.PrincipalAgent:
			p.ID, p.Autonomy = daoguard.NewID("agt", tx.Now()), daoguard.AutonomySupervised
		case daoguard.PrincipalHuman:
			p.ID = daoguard.NewID("hum", tx.Now())
		default:
			return daoguard.FieldError(daoguard.CodeInvalid, "kind", "kind must be agent or human")
		}
		if err := tx.PutPrincipal(ctx, p); err != nil {
			return err
		}
		out = p
		return tx.Append(ctx, &daoguard.AuditEntry{OrgID: p.OrgID, ActorID: actor.ID, ActorKind: "human", Event: "principal.created",
			Detail: mustJSON(map[string]any{"principal": p.ID, "kind": p.Kind, "name": p.Name, "roles": p.Roles, "autonomy": p.Autonomy})})
	})
	return out, err
}

// Principals lists the actor's organisation's principals.
func (s *Service) Principals(ctx context.Context, actorID string) ([]*daoguard.Principal, error) {
	var out []*daoguard.Principal
	err := s.Store.View(ctx, func(tx daoguard.Tx) error {
		actor, err := tx.Principal(ctx, actorID)
		if err != nil {
			return err
		}
		out, err = tx.Principals(ctx, actor.OrgID)
		return err
	})
	return out, err
}

// CreateKey issues a credential to a principal of the actor's organisation.
// Agents can hold at most daoguard.AgentMaxScopes; a credential with a
// scope that moves money or control must be ed25519.
//
// Errors: NOT_HUMAN, NOT_FOUND (principal), INVALID_ARGUMENT, FORBIDDEN.
func (s *Service) CreateKey(ctx context.Context, actorID string, req KeyRequest) (*NewKey, error) {
	var out *NewKey
	err := s.Store.Update(ctx, func(tx daoguard.Tx) error {
		actor, err := humanActor(ctx, tx, actorID)
		if err != nil {
			return err
		}
		p, err := tx.Principal(ctx, req.PrincipalID)
		if err != nil || p.OrgID != actor.OrgID {
			return daoguard.FieldError(daoguard.CodeNotFound, "principal", "no such principal")
		}
		nk, err := s.newKey(tx.Now(), p, req)
		if err != nil {
			return err
		}
		if err := tx.PutCredential(ctx, nk.Credential); err != nil {
			return err
		}
		out = nk
		return keyEntry(ctx, tx, actor, "credential.created", nk.Credential, nil)
	})
	return out, err
}

func (s *Service) newKey(now time.Time, p *daoguard.Principal, req KeyRequest) (*NewKey, error) {
	scopes := req.Scopes
	if len(scopes) == 0 {
		if p.Kind != daoguard.PrincipalAgent {
			return nil, daoguard.FieldError(daoguard.CodeInvalid, "scopes", "a human's credential needs explicit scopes")
		}
		scopes = daoguard.AgentScopes
	}
	scopes = slices.Clone(scopes)
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	for _, sc := range scopes {
		if !slices.Contains(daoguard.Scopes, sc) {
			return nil, daoguard.FieldError(daoguard.CodeInvalid, "scopes", "unknown scope %q", sc)
		}
		if p.Kind == daoguard.PrincipalAgent && !slices.Contains(daoguard.AgentMaxScopes, sc) {
			return nil, daoguard.FieldError(daoguard.CodeForbidden, "scopes", "an agent cannot hold the %s scope", sc)
		}
		if req.Alg != daoguard.AlgEd25519 && slices.Contains(daoguard.HumanReservedScopes, sc) {
			return nil, daoguard.FieldError(daoguard.CodeInvalid, "alg", "the %s scope needs an ed25519 key: money never moves on a shared secret alone", sc)
		}
	}
	if !req.ExpiresAt.IsZero() && !req.ExpiresAt.After(now) {
		return nil, daoguard.FieldError(daoguard.CodeInvalid, "expires_at", "the expiry must be in the future")
	}
	c := &daoguard.Credential{KeyID: auth.NewKeyID(s.Environment), PrincipalID: p.ID, Alg: req.Alg, Scopes: scopes,
		Environment: s.Environment, Created: now, ExpiresAt: req.ExpiresAt}
	nk := &NewKey{Credential: c}
	switch req.Alg {
	case daoguard.AlgEd25519:
		if req.PublicKey != nil {
			if len(req.PublicKey) != ed25519.PublicKeySize {
				return nil, daoguard.FieldError(daoguard.CodeInvalid, "public_key", "an ed25519 public key is 32 bytes")
			}
			c.PublicKey = slices.Clone(req.PublicKey)
		} else {
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return nil, err
			}
			c.PublicKey, nk.Seed = pub, priv.Seed()
		}
	case daoguard.AlgHMACSHA256:
		if req.PublicKey != nil {
			return nil, daoguard.FieldError(daoguard.CodeInvalid, "public_key", "an hmac-sha256 key has no public key")
		}
		nk.Secret = make([]byte, SecretSize)
		rand.Read(nk.Secret) // never fails (Go 1.24+)
		sealed, err := s.Keyring.Seal(nk.Secret, daoguard.SealedSecretAD(c.KeyID))
		if err != nil {
			return nil, err
		}
		c.SealedSecret = sealed
	default:
		return nil, daoguard.FieldError(daoguard.CodeInvalid, "alg", "alg must be ed25519 or hmac-sha256")
	}
	return nk, nil
}

// RotateKey issues a successor to a key, with the same principal, alg and
// scopes; the old key keeps working until overlap has passed (zero: it
// ends now). publicKey is the successor's client-generated ed25519 key, if
// any.
//
// Errors: NOT_HUMAN, NOT_FOUND, CONFLICT (revoked or already rotated),
// INVALID_ARGUMENT.
func (s *Service) RotateKey(ctx context.Context, actorID, keyID string, overlap time.Duration, publicKey []byte) (*NewKey, error) {
	if overlap < 0 || overlap > 30*24*time.Hour {
		return nil, daoguard.FieldError(daoguard.CodeInvalid, "overlap", "the overlap must be between 0 and 30 days")
	}
	var out *NewKey
	err := s.Store.Update(ctx, func(tx daoguard.Tx) error {
		now := tx.Now()
		actor, old, p, err := s.keyOf(ctx, tx, actorID, keyID)
		if err != nil {
			return err
		}
		if !old.RevokedAt.IsZero() || old.ReplacedBy != "" || (!old.ExpiresAt.IsZero() && !now.Before(old.ExpiresAt)) {
			return daoguard.Errorf(daoguard.CodeConflict, "key %s is revoked, expired or already rotated", keyID)
		}
		// The successor keeps the old key's expiry, if it had one, so that
		// rotation can never extend a credential's life.
		nk, err := s.newKey(now, p, KeyRequest{PrincipalID: p.ID, Alg: old.Alg, Scopes: old.Scopes, PublicKey: publicKey, ExpiresAt: old.ExpiresAt})
		if err != nil {
			return err
		}
		end := now.Add(overlap)
		if old.ExpiresAt.IsZero() || end.Before(old.ExpiresAt) {
			old.ExpiresAt = end
		}
		old.ReplacedBy = nk.Credential.KeyID
		if err := tx.PutCredential(ctx, nk.Credential); err != nil {
			return err
		}
		if err := tx.PutCredential(ctx, old); err != nil {
			return err
		}
		out = nk
		return keyEntry(ctx, tx, actor, "credential.rotated", old, map[string]any{"replaced_by": nk.Credential.KeyID, "old_key_ends": old.ExpiresAt})
	})
	return out, err
}

// RevokeKey ends a key for the next request on every gateway. An admin may
// revoke any key of the organisation, and any principal its own (checked
// by the caller, which knows the scopes): a compromised agent's operator
// can always pull its key.
//
// Errors: NOT_FOUND, CONFLICT (already revoked).
func (s *Service) RevokeKey(ctx context.Context, actorID, keyID, reason string) (*daoguard.Credential, error) {
	var out *daoguard.Credential
	err := s.Store.Update(ctx, func(tx daoguard.Tx) error {
		actor, err := tx.Principal(ctx, actorID)
		if err != nil {
			return err
		}
		c, err := tx.Credential(ctx, keyID)
		if err != nil {
			return daoguard.Errorf(daoguard.CodeNotFound, "no such key")
		}
		owner, err := tx.Principal(ctx, c.PrincipalID)
		if err != nil || owner.OrgID != actor.OrgID {
			return daoguard.Errorf(daoguard.CodeNotFound, "no such key")
		}
		if !c.RevokedAt.IsZero() {
			return daoguard.Errorf(daoguard.CodeConflict, "key %s is already revoked", keyID)
		}
		c.RevokedAt = tx.Now()
		if err := tx.PutCredential(ctx, c); err != nil {
			return err
		}
		out = c
		return keyEntry(ctx, tx, actor, "credential.revoked", c, map[string]any{"reason": reason})
	})
	return out, err
}

// Keys lists the credentials of the actor's organisation (public parts).
func (s *Service) Keys(ctx context.Context, actorID string) ([]*daoguard.Credential, error) {
	var out []*daoguard.Credential
	err := s.Store.View(ctx, func(tx daoguard.Tx) error {
		actor, err := tx.Principal(ctx, actorID)
		if err != nil {
			return err
		}
		out, err = tx.Credentials(ctx, actor.OrgID)
		return err
	})
	return out, err
}

func (s *Service) keyOf(ctx context.Context, tx daoguard.Tx, actorID, keyID string) (actor *daoguard.Principal, c *daoguard.Credential, owner *daoguard.Principal, err error) {
	if actor, err = humanActor(ctx, tx, actorID); err != nil {
		return nil, nil, nil, err
	}
	if c, err = tx.Credential(ctx, keyID); err != nil {
		return nil, nil, nil, daoguard.Errorf(daoguard.CodeNotFound, "no such key")
	}
	if owner, err = tx.Principal(ctx, c.PrincipalID); err != nil || owner.OrgID != actor.OrgID {
		return nil, nil, nil, daoguard.Errorf(daoguard.CodeNotFound, "no such key")
	}
	return actor, c, owner, nil
}

func humanActor(ctx context.Context, tx daoguard.Tx, id string) (*daoguard.Principal, error) {
	p, err := tx.Principal(ctx, id)
	if err != nil {
		return nil, err
	}
	if !p.IsHuman() {
		return nil, daoguard.Errorf(daoguard.CodeNotHuman, "only a human administers principals and keys")
	}
	return p, nil
}

// keyEntry records a lifecycle event: ids, alg, scopes and times, never
// key material.
func keyEntry(ctx context.Context, tx daoguard.Tx, actor *daoguard.Principal, event string, c *daoguard.Credential, extra map[string]any) error {
	d := map[string]any{"key_id": c.KeyID, "principal": c.PrincipalID, "alg": c.Alg, "scopes": c.Scopes, "environment": c.Environment}
	if !c.ExpiresAt.IsZero() {
		d["expires_at"] = c.ExpiresAt
	}
	for k, v := range extra {
		d[k] = v
	}
	return tx.Append(ctx, &daoguard.AuditEntry{OrgID: actor.OrgID, ActorID: actor.ID, ActorKind: actor.Kind.String(), Event: event, Detail: mustJSON(d)})
}
