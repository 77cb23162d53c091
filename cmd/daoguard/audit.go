package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/audit"
	"golang.org/x/mod/sumdb/note"
)

// runAudit: daoguard audit verify|checkpoint --data DIR.
func (m *Main) runAudit(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("audit needs a subcommand: verify or checkpoint")
	}
	fs := m.newFlagSet("audit " + args[0])
	dir := fs.String("data", "", "data directory (required)")
	switch args[0] {
	case "verify":
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		_, st, err := m.openData(*dir)
		if err != nil {
			return err
		}
		defer st.Close()
		v, err := auditVerifier(*dir)
		if err != nil {
			return err
		}
		// Straight from the store, without the server: every entry is
		// hashed again, the whole tree recomputed, and the latest signed
		// checkpoint checked against it.
		size, root, cp, err := audit.VerifyStore(ctx, st, v)
		var te *audit.TamperError
		if errors.As(err, &te) {
			where := ""
			if te.Index >= 0 {
				where = fmt.Sprintf("first bad entry %d: ", te.Index)
			}
			return &daoguard.Error{Code: daoguard.CodeAuditTampered, Message: "the audit log is tampered: " + where + te.Why,
				Hint: "restore the store from a backup you trust, and find out who had write access to the database"}
		} else if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "audit log intact: %d entries, tree root %s\n", size, base64.StdEncoding.EncodeToString(root[:]))
		if cp != nil {
			fmt.Fprintf(m.Stdout, "latest checkpoint: %d entries, signed by %s, consistent with the log\n", cp.Size, v.Name())
		} else {
			fmt.Fprintln(m.Stdout, "no checkpoint signed yet: a tail cut off together with its hashes would not show (daoguard audit checkpoint)")
		}
		return nil
	case "checkpoint":
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		cfg, st, err := m.openData(*dir)
		if err != nil {
			return err
		}
		defer st.Close()
		v, err := auditVerifier(*dir)
		if err != nil {
			return err
		}
		s, err := auditSigner(*dir, cfg)
		if err != nil {
			return err
		}
		// Signed only over a log that extends the latest checkpoint.
		_, msg, err := audit.IssueCheckpoint(ctx, st, s, v)
		var te *audit.TamperError
		if errors.As(err, &te) {
			return &daoguard.Error{Code: daoguard.CodeAuditTampered, Message: "no checkpoint signed: " + te.Error()}
		} else if err != nil {
			return err
		}
		if msg == nil {
			return &daoguard.Error{Code: daoguard.CodeInvalid, Message: "the audit log is empty: there is nothing to sign yet"}
		}
		_, err = m.Stdout.Write(msg)
		return err
	}
	return usagef("unknown audit subcommand %q (verify or checkpoint)", args[0])
}

// auditVerifier reads the log's public key, DIR/audit.pub (written by
// init).
func auditVerifier(dir string) (note.Verifier, error) {
	b, err := os.ReadFile(filepath.Join(dir, "audit.pub"))
	if err != nil {
		return nil, &daoguard.Error{Code: daoguard.CodeConfig, Message: "audit public key: " + err.Error(), Hint: "daoguard init writes DIR/audit.pub"}
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, &daoguard.Error{Code: daoguard.CodeConfig, Message: "audit.pub is not a note verifier key"}
	}
	return v, nil
}

// auditSigner reads the log's signing key (audit_key_file, mode 0600).
func auditSigner(dir string, cfg Config) (note.Signer, error) {
	skey, err := os.ReadFile(filepath.Join(dir, cfg.AuditKeyFile))
	if err != nil {
		return nil, &daoguard.Error{Code: daoguard.CodeConfig, Message: "audit key: " + err.Error()}
	}
	s, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, &daoguard.Error{Code: daoguard.CodeConfig, Message: cfg.AuditKeyFile + " is not a note signing key"}
	}
	return s, nil
}

// checkpoints signs a checkpoint of the log every period while it grows,
// until ctx ends. A log that no longer extends the latest checkpoint is
// logged as an error and never signed over.
func checkpoints(ctx context.Context, log *slog.Logger, st daoguard.Store, s note.Signer, v note.Verifier, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cp, _, err := audit.IssueCheckpoint(ctx, st, s, v)
		switch {
		case errors.As(err, new(*audit.TamperError)):
			log.Error("audit log tampered: no checkpoint signed", "code", daoguard.CodeAuditTampered, "err", err)
		case err != nil && ctx.Err() == nil:
			log.Warn("audit checkpoint failed", "err", err)
		case err == nil:
			log.Debug("audit checkpoint", "size", cp.Size)
		}
	}
}
