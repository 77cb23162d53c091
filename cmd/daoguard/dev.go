package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/auth"
	"github.com/daoguard/daoguard/internal/secrets"
)

// devPrincipals are the dev environment's callers (API.md): one agent with
// an hmac key, two human approvers with ed25519 keys.
var devPrincipals = []struct {
	name  string
	kind  daoguard.PrincipalKind
	alg   string
	roles []string
}{
	{"agent", daoguard.PrincipalAgent, daoguard.AlgHMACSHA256, nil},
	{"human1", daoguard.PrincipalHuman, daoguard.AlgEd25519, []string{"council"}},
	{"human2", daoguard.PrincipalHuman, daoguard.AlgEd25519, []string{"council"}},
}

var humanDevScopes = []string{daoguard.ScopeActionsRead, daoguard.ScopeApprovalsWrite, daoguard.ScopeControlsWrite, daoguard.ScopeAuditRead}

// writeDevCredentials makes sure the dev principals exist and that
// DIR/credentials/<name>.json holds a working key for each: a file whose key
// is still valid is kept, so that restarting serve --dev does not break
// scripts that read them.
func writeDevCredentials(ctx context.Context, st daoguard.Store, keyring *secrets.Keyring, cfg Config, dir, url string) error {
	// Files are written only once the keys they hold have committed.
	files := map[string]CredentialFile{}
	err := st.Update(ctx, func(tx daoguard.Tx) error {
		clear(files)
		now := tx.Now()
		ps, err := tx.Principals(ctx, cfg.Org.ID)
		if err != nil {
			return err
		}
		for _, d := range devPrincipals {
			path := filepath.Join(dir, "credentials", d.name+".json")
			var p *daoguard.Principal
			for _, q := range ps {
				if q.Name == d.name && q.Kind == d.kind {
					p = q
				}
			}
			if p == nil {
				prefix := "hum"
				if d.kind == daoguard.PrincipalAgent {
					prefix = "agt"
				}
				p = &daoguard.Principal{ID: daoguard.NewID(prefix, now), OrgID: cfg.Org.ID, Kind: d.kind, Name: d.name, Roles: d.roles}
				if d.kind == daoguard.PrincipalAgent {
					p.Autonomy = daoguard.AutonomyAutonomous
				}
				if err := tx.PutPrincipal(ctx, p); err != nil {
					return err
				}
			} else if cf, ok := usable(ctx, tx, path, p.ID); ok {
				if cf.URL != url { // same key, served elsewhere now
					cf.URL = url
					files[path] = cf
				}
				continue
			}
			cf := CredentialFile{URL: url, KeyID: auth.NewKeyID(cfg.Environment), Alg: d.alg}
			c := &daoguard.Credential{KeyID: cf.KeyID, PrincipalID: p.ID, Alg: d.alg, Environment: cfg.Environment, Scopes: humanDevScopes}
			if d.alg == daoguard.AlgHMACSHA256 {
				secret := make([]byte, 32)
				rand.Read(secret)
				if c.SealedSecret, err = keyring.Seal(secret, daoguard.SealedSecretAD(c.KeyID)); err != nil {
					return err
				}
				cf.Secret, c.Scopes = base64.StdEncoding.EncodeToString(secret), daoguard.AgentScopes
			} else {
				pub, priv, err := ed25519.GenerateKey(rand.Reader)
				if err != nil {
					return err
				}
				c.PublicKey, cf.PrivateKey = pub, base64.StdEncoding.EncodeToString(priv.Seed())
			}
			if err := tx.PutCredential(ctx, c); err != nil {
				return err
			}
			if err := tx.Append(ctx, &daoguard.AuditEntry{OrgID: cfg.Org.ID, ActorID: daoguard.ActorSystem, ActorKind: "system", Event: "credential.created",
				Detail: mustJSON(map[string]any{"key_id": c.KeyID, "principal": p.ID, "alg": c.Alg, "scopes": c.Scopes, "dev": true})}); err != nil {
				return err
			}
			files[path] = cf
		}
		return nil
	})
	if err != nil {
		return err
	}
	for path, cf := range files {
		if err := writeJSONFile(path, cf, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// usable returns the credential file at path if it names a live key of
// principal id.
func usable(ctx context.Context, tx daoguard.Tx, path, id string) (CredentialFile, bool) {
	var cf CredentialFile
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &cf) != nil {
		return cf, false
	}
	c, err := tx.Credential(ctx, cf.KeyID)
	return cf, err == nil && c.PrincipalID == id && c.RevokedAt.IsZero() && (c.ExpiresAt.IsZero() || tx.Now().Before(c.ExpiresAt))
}
