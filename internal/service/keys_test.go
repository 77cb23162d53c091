package service_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/secrets"
	"github.com/daoguard/daoguard/internal/service"
)

func keyService(t *testing.T) *service.Service {
	s := newService(t, daoguard.DenyAll{})
	kr, err := secrets.ParseKeyring(secrets.NewKeyringFile())
	if err != nil {
		t.Fatal(err)
	}
	s.Keyring, s.Environment = kr, "live"
	return s
}

// TestCreateKeyRules: who may hold which scope with which algorithm. More
// refusals than successes, as for every authorization rule.
func TestCreateKeyRules(t *testing.T) {
	ctx := context.Background()
	s := keyService(t)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name  string
		actor string
		req   service.KeyRequest
		code  daoguard.Code
	}{
		{"OK_AgentDefaults", "human_1", service.KeyRequest{PrincipalID: "agent_1", Alg: daoguard.AlgHMACSHA256}, ""},
		{"OK_HumanClientGeneratedEd25519", "human_1", service.KeyRequest{PrincipalID: "human_2", Alg: daoguard.AlgEd25519, PublicKey: pub, Scopes: []string{"approvals:write"}}, ""},
		{"ErrAgentActor", "agent_1", service.KeyRequest{PrincipalID: "agent_1", Alg: daoguard.AlgHMACSHA256}, daoguard.CodeNotHuman},
		{"ErrAgentApprovalsScope", "human_1", service.KeyRequest{PrincipalID: "agent_1", Alg: daoguard.AlgEd25519, Scopes: []string{"approvals:write"}}, daoguard.CodeForbidden},
		{"ErrAgentAdminScope", "human_1", service.KeyRequest{PrincipalID: "agent_1", Alg: daoguard.AlgEd25519, Scopes: []string{"admin"}}, daoguard.CodeForbidden},
		{"ErrHMACWithControls", "human_1", service.KeyRequest{PrincipalID: "human_2", Alg: daoguard.AlgHMACSHA256, Scopes: []string{"controls:write"}}, daoguard.CodeInvalid},
		{"ErrHumanWithoutScopes", "human_1", service.KeyRequest{PrincipalID: "human_2", Alg: daoguard.AlgEd25519}, daoguard.CodeInvalid},
		{"ErrUnknownScope", "human_1", service.KeyRequest{PrincipalID: "human_2", Alg: daoguard.AlgEd25519, Scopes: []string{"root"}}, daoguard.CodeInvalid},
		{"ErrUnknownAlg", "human_1", service.KeyRequest{PrincipalID: "human_2", Alg: "rsa", Scopes: []string{"actions:read"}}, daoguard.CodeInvalid},
		{"ErrShortPublicKey", "human_1", service.KeyRequest{PrincipalID: "human_2", Alg: daoguard.AlgEd25519, PublicKey: pub[:31], Scopes: []string{"actions:read"}}, daoguard.CodeInvalid},
		{"ErrHMACWithPublicKey", "human_1", service.KeyRequest{PrincipalID: "agent_1", Alg: daoguard.AlgHMACSHA256, PublicKey: pub}, daoguard.CodeInvalid},
		{"ErrExpiryInThePast", "human_1", service.KeyRequest{PrincipalID: "agent_1", Alg: daoguard.AlgHMACSHA256, ExpiresAt: time.Now().Add(-time.Hour)}, daoguard.CodeInvalid},
		{"ErrUnknownPrincipal", "human_1", service.KeyRequest{PrincipalID: "nobody", Alg: daoguard.AlgHMACSHA256}, daoguard.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nk, err := s.CreateKey(ctx, tc.actor, tc.req)
			if daoguard.ErrorCode(err) != tc.code {
				t.Fatalf("err = %v, want %q", err, tc.code)
			}
			if err != nil {
				return
			}
			c := nk.Credential
			if c.Environment != "live" || c.KeyID[:8] != "dg_live_" {
				t.Fatalf("key %s in environment %s", c.KeyID, c.Environment)
			}
			switch c.Alg {
			case daoguard.AlgHMACSHA256:
				if len(nk.Secret) < 32 || c.SealedSecret == nil || c.PublicKey != nil {
					t.Fatalf("hmac key: secret %d bytes, sealed %v", len(nk.Secret), c.SealedSecret != nil)
				}
				opened, err := s.Keyring.Open(c.SealedSecret, daoguard.SealedSecretAD(c.KeyID))
				if err != nil || string(opened) != string(nk.Secret) {
					t.Fatal("the sealed secret does not open to the secret shown")
				}
				if len(c.Scopes) != 2 || !c.HasScope("actions:write") {
					t.Fatalf("agent default scopes %v", c.Scopes)
				}
			case daoguard.AlgEd25519:
				if nk.Seed != nil || string(c.PublicKey) != string(pub) {
					t.Fatal("a client-generated key must keep the client's public key and have no server seed")
				}
			}
		})
	}
}

func TestRotateAndRevoke(t *testing.T) {
	ctx := context.Background()
	s := keyService(t)
	expiry := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Microsecond)
	nk, err := s.CreateKey(ctx, "human_1", service.KeyRequest{PrincipalID: "agent_1", Alg: daoguard.AlgHMACSHA256, ExpiresAt: expiry})
	if err != nil {
		t.Fatal(err)
	}
	old := nk.Credential.KeyID
	next, err := s.RotateKey(ctx, "human_1", old, 24*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !next.Credential.ExpiresAt.Equal(expiry) {
		t.Fatalf("the successor expires %v, want the old key's %v: rotation must never extend a key's life", next.Credential.ExpiresAt, expiry)
	}
	ks, _ := s.Keys(ctx, "human_1")
	var oldKey *daoguard.Credential
	for _, k := range ks {
		if k.KeyID == old {
			oldKey = k
		}
	}
	if oldKey == nil || oldKey.ReplacedBy != next.Credential.KeyID || !oldKey.ExpiresAt.Before(expiry) {
		t.Fatalf("old key after rotation: %+v", oldKey)
	}
	for _, tc := range []struct {
		name string
		run  func() error
		code daoguard.Code
	}{
		{"ErrRotateTwice", func() error { _, err := s.RotateKey(ctx, "human_1", old, 0, nil); return err }, daoguard.CodeConflict},
		{"ErrOverlapTooLong", func() error {
			_, err := s.RotateKey(ctx, "human_1", next.Credential.KeyID, 31*24*time.Hour, nil)
			return err
		}, daoguard.CodeInvalid},
		{"ErrAgentRotates", func() error { _, err := s.RotateKey(ctx, "agent_1", next.Credential.KeyID, 0, nil); return err }, daoguard.CodeNotHuman},
		{"ErrUnknownKey", func() error { _, err := s.RevokeKey(ctx, "human_1", "dg_live_nope", ""); return err }, daoguard.CodeNotFound},
		{"OK_Revoke", func() error { _, err := s.RevokeKey(ctx, "human_1", next.Credential.KeyID, "compromised"); return err }, ""},
		{"ErrRevokeTwice", func() error { _, err := s.RevokeKey(ctx, "human_1", next.Credential.KeyID, ""); return err }, daoguard.CodeConflict},
		{"ErrRotateRevoked", func() error { _, err := s.RotateKey(ctx, "human_1", next.Credential.KeyID, 0, nil); return err }, daoguard.CodeConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); daoguard.ErrorCode(err) != tc.code {
				t.Fatalf("err = %v, want %q", err, tc.code)
			}
		})
	}
}
