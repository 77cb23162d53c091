package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/audit"
	"github.com/daoguard/daoguard/internal/service"
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
		// Signed only over a log that extends the latest checkpoint, and
		// published like serve's.
		svc := service.New(st, daoguard.DenyAll{}, nil, "cli")
		svc.AuditSigner, svc.AuditVerifier = s, v
		svc.Published = publisher(*dir, cfg, slog.New(slog.NewTextHandler(m.Stderr, nil)))
		_, msg, err := svc.SignCheckpoint(ctx)
		if err != nil {
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
func checkpoints(ctx context.Context, log *slog.Logger, svc *service.Service, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cp, _, err := svc.SignCheckpoint(ctx)
		switch {
		case daoguard.ErrorCode(err) == daoguard.CodeAuditTampered:
			log.Error("audit log tampered: no checkpoint signed", "code", daoguard.CodeAuditTampered, "err", err)
		case err != nil && ctx.Err() == nil:
			log.Warn("audit checkpoint failed", "err", err)
		case err == nil:
			log.Debug("audit checkpoint", "size", cp.Size)
		}
	}
}

// publisher returns what publishes each new checkpoint outside the
// database, as configured (nil if nothing is): a database rewritten
// together with its checkpoints still disagrees with the copies others
// kept. Failures are logged, never fatal: the checkpoint is stored, and
// the next one is published in its turn.
func publisher(dataDir string, cfg Config, log *slog.Logger) func(context.Context, []byte) {
	dir, hook := cfg.Audit.PublishDir, cfg.Audit.PublishURL
	if dir == "" && hook == "" {
		return nil
	}
	if dir != "" && !filepath.IsAbs(dir) {
		dir = filepath.Join(dataDir, dir)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	return func(ctx context.Context, msg []byte) {
		size := checkpointSize(msg)
		if dir != "" {
			if err := publishFile(dir, size, msg); err != nil {
				log.Warn("audit checkpoint not published to the directory", "dir", dir, "size", size, "err", err)
			}
		}
		if hook != "" {
			if err := postCheckpoint(ctx, hc, hook, msg); err != nil {
				// The URL may hold a token in its path: log the host only.
				log.Warn("audit checkpoint not published to the webhook", "host", hostOf(hook), "size", size, "err", err)
			}
		}
	}
}

// publishFile writes checkpoint.<size> and replaces checkpoint, each
// through a temporary file and a rename, so a reader never sees half of
// one.
func publishFile(dir, size string, msg []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"checkpoint." + size, "checkpoint"} {
		tmp, err := os.CreateTemp(dir, ".checkpoint-*")
		if err != nil {
			return err
		}
		_, err = tmp.Write(msg)
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(tmp.Name(), 0o644)
		}
		if err == nil {
			err = os.Rename(tmp.Name(), filepath.Join(dir, name))
		}
		if err != nil {
			os.Remove(tmp.Name())
			return err
		}
	}
	return nil
}

func postCheckpoint(ctx context.Context, hc *http.Client, hook string, msg []byte) error {
	req, err := http.NewRequestWithContext(ctx, "POST", hook, bytes.NewReader(msg))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	res, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a token
		}
		return err
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode >= 300 {
		return fmt.Errorf("answered %s", res.Status)
	}
	return nil
}

// checkpointSize is the size line of a checkpoint this process signed.
func checkpointSize(msg []byte) string {
	lines := strings.SplitN(string(msg), "\n", 3)
	if len(lines) < 3 {
		return "unknown"
	}
	return lines[1]
}

func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return ""
}
