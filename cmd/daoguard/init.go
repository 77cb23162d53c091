package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
	"github.com/daoguard/daoguard/internal/auth"
	"github.com/daoguard/daoguard/internal/secrets"
	"go.yaml.in/yaml/v3"
	"golang.org/x/mod/sumdb/note"
)

// CredentialFile is the JSON file a client signs requests with (API.md).
type CredentialFile = client.CredentialFile

// runInit creates a data directory: configuration, master key, audit
// checkpoint key, the store with the organisation and its first admin, and
// the admin's credential file. Everything is built in a temporary sibling
// directory and renamed into place, so a failed init leaves nothing behind.
func (m *Main) runInit(ctx context.Context, args []string) error {
	fs := m.newFlagSet("init")
	dir := fs.String("data", "", "data directory to create (required)")
	orgName := fs.String("org-name", "My DAO", "name of the organisation")
	env := fs.String("environment", "test", "test or live: which keys this deployment accepts")
	store := fs.String("store", "sqlite", "sqlite, or a postgres:// URL")
	url := fs.String("url", "http://127.0.0.1:8787", "the API's URL, written into credential files")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usagef("init needs --data DIR")
	}
	if entries, err := os.ReadDir(*dir); err == nil && len(entries) > 0 {
		return &daoguard.Error{Code: daoguard.CodeConflict, Message: fmt.Sprintf("%s already exists and is not empty; refusing to overwrite it", *dir), Hint: "choose a new directory"}
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}

	if err := noPasswordIn(*store); err != nil {
		return err
	}
	cfg := DefaultConfig()
	cfg.Environment, cfg.Store = *env, *store
	cfg.Org = OrgConfig{ID: daoguard.NewID("org", time.Now()), Name: *orgName}
	if err := cfg.Validate(); err != nil {
		return err
	}

	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(abs), "."+filepath.Base(abs)+".init-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // after a successful rename this is a no-op
	if err := os.MkdirAll(filepath.Join(tmp, "credentials"), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, cfg.MasterKeyFile), secrets.NewKeyringFile(), 0o600); err != nil {
		return err
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, "daoguard/"+cfg.Org.ID)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, cfg.AuditKeyFile), []byte(skey+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "audit.pub"), []byte(vkey+"\n"), 0o644); err != nil {
		return err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	cred := CredentialFile{URL: *url, KeyID: auth.NewKeyID(cfg.Environment), Alg: daoguard.AlgEd25519,
		PrivateKey: base64.StdEncoding.EncodeToString(priv.Seed())}
	if err := writeJSONFile(filepath.Join(tmp, "credentials", "admin.json"), cred, 0o600); err != nil {
		return err
	}
	y, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	header := "# daoguard configuration. Secrets are never kept here: see master_key_file and audit_key_file.\n"
	if err := os.WriteFile(filepath.Join(tmp, "daoguard.yaml"), append([]byte(header), y...), 0o600); err != nil {
		return err
	}

	st, err := openStore(cfg, tmp)
	if err != nil {
		return err
	}
	err = st.Update(ctx, func(tx daoguard.Tx) error {
		org := &daoguard.Organisation{ID: cfg.Org.ID, Name: cfg.Org.Name}
		admin := &daoguard.Principal{ID: daoguard.NewID("hum", tx.Now()), OrgID: org.ID, Kind: daoguard.PrincipalHuman, Name: "admin", Roles: []string{"admin"}}
		c := &daoguard.Credential{KeyID: cred.KeyID, PrincipalID: admin.ID, Alg: daoguard.AlgEd25519, PublicKey: pub, Environment: cfg.Environment,
			Scopes: []string{daoguard.ScopeAdmin, daoguard.ScopeActionsRead, daoguard.ScopeApprovalsWrite, daoguard.ScopeControlsWrite, daoguard.ScopeAuditRead}}
		if err := errors.Join(tx.PutOrg(ctx, org), tx.PutPrincipal(ctx, admin), tx.PutCredential(ctx, c)); err != nil {
			return err
		}
		if err := tx.Append(ctx, &daoguard.AuditEntry{OrgID: org.ID, ActorID: daoguard.ActorSystem, ActorKind: "system", Event: "org.created",
			Detail: mustJSON(map[string]any{"name": org.Name, "environment": cfg.Environment, "audit_key": vkey})}); err != nil {
			return err
		}
		return tx.Append(ctx, &daoguard.AuditEntry{OrgID: org.ID, ActorID: daoguard.ActorSystem, ActorKind: "system", Event: "credential.created",
			Detail: mustJSON(map[string]any{"key_id": c.KeyID, "principal": admin.ID, "alg": c.Alg, "scopes": c.Scopes})})
	})
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, abs); err != nil {
		// The target may have appeared meanwhile, or be an empty directory.
		if rerr := os.Remove(abs); rerr != nil || os.Rename(tmp, abs) != nil {
			return fmt.Errorf("move the new data directory into place: %w", err)
		}
	}
	fmt.Fprintf(m.Stdout, "initialised %s (organisation %q, %s environment)\n  admin credential: %s\n  next: daoguard serve --data %s\n",
		*dir, cfg.Org.Name, cfg.Environment, filepath.Join(*dir, "credentials", "admin.json"), *dir)
	return nil
}

func writeJSONFile(path string, v any, mode os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), mode)
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
