package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
	"github.com/daoguard/daoguard/internal/audit"
	"github.com/daoguard/daoguard/internal/auth"
	"github.com/daoguard/daoguard/internal/service"
	"golang.org/x/mod/sumdb/note"
)

// runAudit: daoguard audit verify|checkpoint|export|show.
func (m *Main) runAudit(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("audit needs a subcommand: verify, checkpoint, export, show, proof or pseudonym")
	}
	fs := m.newFlagSet("audit " + args[0])
	dir := fs.String("data", "", "data directory")
	switch args[0] {
	case "verify":
		entries := fs.String("entries", "", "an exported log (daoguard audit export) to verify instead of the store")
		checkpoint := fs.String("checkpoint", "", "the signed checkpoint to verify the exported log against")
		key := fs.String("key", "", "the log's public key (DIR/audit.pub); default: DIR/audit.pub of --data")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *entries != "" || *checkpoint != "" {
			return m.verifyExport(*dir, *key, *entries, *checkpoint)
		}
		if *dir == "" {
			return usagef("audit verify needs --data DIR, or --entries FILE and --checkpoint FILE")
		}
		cfg, err := loadConfig(*dir, m.Getenv)
		if err != nil {
			return err
		}
		// Read-only: what is verified is left as it was found (nothing
		// migrated, nothing backfilled, nothing signed).
		st, err := openStoreMode(cfg, *dir, true)
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
		if err != nil {
			return audit.Tampered(err, hintStore)
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
		svc, closeStore, err := m.auditService(*dir)
		if err != nil {
			return err
		}
		defer closeStore()
		// Signed only over a log that extends the latest checkpoint, and
		// published like serve's.
		_, msg, err := svc.SignCheckpoint(ctx)
		if err != nil {
			return err
		}
		if msg == nil {
			return &daoguard.Error{Code: daoguard.CodeInvalid, Message: "the audit log is empty: there is nothing to sign yet"}
		}
		_, err = m.Stdout.Write(msg)
		return err
	case "export":
		entries := fs.String("entries", "", "file to write the exported log to (required)")
		checkpoint := fs.String("checkpoint", "", "file to write the signed checkpoint of the export to (required)")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *dir == "" || *entries == "" || *checkpoint == "" {
			return usagef("audit export needs --data DIR, --entries FILE and --checkpoint FILE")
		}
		svc, closeStore, err := m.auditService(*dir)
		if err != nil {
			return err
		}
		defer closeStore()
		// A checkpoint of the log as it is now, then exactly the entries
		// it covers: the export verifies against it whole.
		cp, msg, err := svc.SignCheckpoint(ctx)
		if err != nil {
			return err
		}
		if msg == nil {
			return &daoguard.Error{Code: daoguard.CodeInvalid, Message: "the audit log is empty: there is nothing to export yet"}
		}
		var n int64
		// Every organisation's entries: owner-only, like the store.
		err = writeFileStream(*entries, 0o600, func(w io.Writer) (err error) {
			n, err = audit.ExportStore(ctx, svc.Store, svc.AuditVerifier, cp.Size, w)
			return err
		})
		if err != nil {
			return audit.Tampered(err, hintStore)
		}
		if err := writeFileAtomic(*checkpoint, msg, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "exported %d entries to %s, signed checkpoint in %s\nverify: daoguard audit verify --entries %s --checkpoint %s --key audit.pub\n", n, *entries, *checkpoint, *entries, *checkpoint)
		return nil
	case "proof":
		cred := m.credentialFlag(fs)
		index := fs.Int64("index", -1, "the entry's log index (an action's log_index) (required)")
		key := fs.String("key", "", "the log's public key, a copy of DIR/audit.pub (required)")
		trust := fs.String("trust", "", "a file keeping the checkpoint trusted so far: the new one must extend it, and replaces it")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *index < 0 || *key == "" {
			return usagef("audit proof needs --credential FILE, --index N and --key FILE")
		}
		return m.auditProof(ctx, *cred, *index, *key, *trust)
	case "pseudonym":
		if err := fs.Parse(args[1:]); err != nil {
			return usagef("%v", err)
		}
		if *dir == "" || fs.NArg() != 1 {
			return usagef("audit pseudonym needs --data DIR and one value (a source address)")
		}
		cfg, err := loadConfig(*dir, m.Getenv)
		if err != nil {
			return err
		}
		_, ps, err := auditSigner(*dir, cfg)
		if err != nil {
			return err
		}
		// What the log records in place of this address: grep for it.
		fmt.Fprintln(m.Stdout, ps.Of("source", auth.CanonicalAddr(fs.Arg(0))))
		return nil
	case "show":
		entries := fs.String("entries", "", "an exported log (required)")
		from := fs.Int64("from", 0, "first entry to print")
		limit := fs.Int64("limit", 0, "most entries to print (0: all)")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *entries == "" || *from < 0 || *limit < 0 {
			return usagef("audit show needs --entries FILE, and --from and --limit at least 0")
		}
		return m.showExport(*entries, *from, *limit)
	}
	return usagef("unknown audit subcommand %q (verify, checkpoint, export, show, proof or pseudonym)", args[0])
}

// auditService is a service over DIR's store with the log's keys, to
// sign checkpoints (published as configured) from the command line.
func (m *Main) auditService(dir string) (*service.Service, func(), error) {
	if dir == "" {
		return nil, nil, usagef("--data DIR is required")
	}
	cfg, st, err := m.openData(dir)
	if err != nil {
		return nil, nil, err
	}
	v, err := auditVerifier(dir)
	if err == nil {
		var s note.Signer
		if s, _, err = auditSigner(dir, cfg); err == nil {
			svc := service.New(st, daoguard.DenyAll{}, nil, "cli")
			svc.AuditSigner, svc.AuditVerifier = s, v
			if p := newPublisher(dir, cfg, slog.New(slog.NewTextHandler(m.Stderr, nil)), svc); p != nil {
				svc.Published = func(ctx context.Context, msg []byte) { p.publish(ctx, msg) }
			}
			return svc, func() { st.Close() }, nil
		}
	}
	st.Close()
	return nil, nil, err
}

// auditProof asks the server for entry index and proves, with the log's
// public key alone, that it is in the signed log, and, with a trust file,
// that the log only grew since the checkpoint kept there (which the new
// one then replaces).
func (m *Main) auditProof(ctx context.Context, cred string, index int64, keyFile, trustFile string) error {
	if _, err := readVerifier(keyFile); err != nil { // checked before anything is asked of the server
		return err
	}
	pub, _ := os.ReadFile(keyFile)
	var trusted *client.Checkpoint
	if trustFile != "" {
		b, err := os.ReadFile(trustFile)
		switch {
		case err == nil:
			if trusted, err = client.OpenCheckpoint(b, string(pub)); err != nil {
				return &daoguard.Error{Code: daoguard.CodeInvalid, Message: trustFile + ": " + err.Error()}
			}
		case !errors.Is(err, os.ErrNotExist):
			return &daoguard.Error{Code: daoguard.CodeInvalid, Message: err.Error()}
		}
	}
	c, err := m.loadClient(cred)
	if err != nil {
		return err
	}
	e, cp, err := c.VerifyEntry(ctx, index, string(pub), trusted)
	if errors.Is(err, client.ErrAuditProof) {
		return &daoguard.Error{Code: daoguard.CodeAuditTampered, Message: err.Error(), Hint: "the server showed a log that does not match its signed checkpoints: keep this output and tell the operators"}
	} else if err != nil {
		return err
	}
	if trustFile != "" {
		if err := writeFileAtomic(trustFile, cp.Note, 0o644); err != nil {
			return err
		}
	}
	if err := m.print(e); err != nil {
		return err
	}
	how := ""
	if trusted != nil {
		how = fmt.Sprintf(", which extends the trusted checkpoint of %d entries", trusted.Size)
	}
	fmt.Fprintf(m.Stderr, "entry %d is in the log: proved against the checkpoint of %d entries signed by %s%s\n", index, cp.Size, cp.Origin, how)
	return nil
}

// verifyExport: audit verify --entries FILE --checkpoint FILE.
func (m *Main) verifyExport(dir, key, entries, checkpoint string) error {
	if entries == "" || checkpoint == "" {
		return usagef("an exported log is verified with both --entries FILE and --checkpoint FILE")
	}
	if key == "" {
		if dir == "" {
			return usagef("audit verify --entries needs the log's public key: --key FILE (a copy of DIR/audit.pub) or --data DIR")
		}
		key = filepath.Join(dir, "audit.pub")
	}
	v, err := readVerifier(key)
	if err != nil {
		return err
	}
	msg, err := os.ReadFile(checkpoint)
	if err != nil {
		return &daoguard.Error{Code: daoguard.CodeInvalid, Message: "checkpoint: " + err.Error()}
	}
	if !bytes.Contains(msg, []byte("\n\n\u2014 ")) { // no signature line at all: the wrong file, not a forgery
		return &daoguard.Error{Code: daoguard.CodeInvalid, Message: checkpoint + " is not a signed checkpoint (a C2SP note: origin, size, root, a blank line, signatures)",
			Hint: "daoguard audit export --checkpoint writes one; so do audit checkpoint and GET /v1/audit/checkpoint"}
	}
	f, err := os.Open(entries)
	if err != nil {
		return &daoguard.Error{Code: daoguard.CodeInvalid, Message: "entries: " + err.Error()}
	}
	defer f.Close()
	n, cp, err := audit.VerifyExport(f, msg, v)
	if errors.Is(err, audit.ErrNotExport) {
		return &daoguard.Error{Code: daoguard.CodeInvalid, Message: entries + ": " + err.Error(), Hint: "daoguard audit export writes one"}
	} else if err != nil {
		return audit.Tampered(err, hintExport)
	}
	fmt.Fprintf(m.Stdout, "exported audit log intact: %d entries, checkpoint %d signed by %s, tree root %s\n", n, cp.Size, v.Name(), base64.StdEncoding.EncodeToString(cp.Root[:]))
	if n > cp.Size {
		fmt.Fprintf(m.Stdout, "entries %d to %d are well formed but not covered by this checkpoint\n", cp.Size, n-1)
	}
	return nil
}

// showExport prints the entries of an exported log as JSON lines.
func (m *Main) showExport(entries string, from, limit int64) error {
	f, err := os.Open(entries)
	if err != nil {
		return &daoguard.Error{Code: daoguard.CodeInvalid, Message: "entries: " + err.Error()}
	}
	defer f.Close()
	w := bufio.NewWriter(m.Stdout)
	enc := json.NewEncoder(w)
	errStop := errors.New("stop")
	err = audit.ReadExport(f, func(i int64, leaf []byte) error {
		if i < from {
			return nil
		}
		if limit > 0 && i-from >= limit {
			return errStop
		}
		e, err := audit.ParseLeaf(leaf)
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		if e.Seq != uint64(i) {
			return fmt.Errorf("the entry at position %d says it is entry %d: entries are missing or moved (daoguard audit verify --entries says more)", i, e.Seq)
		}
		return enc.Encode(e)
	})
	if ferr := w.Flush(); err == nil || err == errStop {
		err = ferr
	}
	if err != nil {
		return &daoguard.Error{Code: daoguard.CodeInvalid, Message: entries + ": " + err.Error()}
	}
	return nil
}

// Hints for a log that does not verify.
const (
	hintStore  = "restore the store from a backup you trust, and find out who had write access to the database"
	hintExport = "the export or its checkpoint was changed, or they are of another log: get them again from the operator, and compare the checkpoint with a published copy"
)

// auditVerifier reads the log's public key, DIR/audit.pub (written by
// init).
func auditVerifier(dir string) (note.Verifier, error) {
	return readVerifier(filepath.Join(dir, "audit.pub"))
}

func readVerifier(path string) (note.Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &daoguard.Error{Code: daoguard.CodeConfig, Message: "audit public key: " + err.Error(), Hint: "daoguard init writes DIR/audit.pub"}
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, &daoguard.Error{Code: daoguard.CodeConfig, Message: path + " is not a note verifier key (DIR/audit.pub holds one)"}
	}
	return v, nil
}

// auditSigner reads the log's signing key (audit_key_file, mode 0600),
// and derives from it the key of the log's pseudonyms.
func auditSigner(dir string, cfg Config) (note.Signer, *audit.Pseudonyms, error) {
	skey, err := os.ReadFile(filepath.Join(dir, cfg.AuditKeyFile))
	if err != nil {
		return nil, nil, &daoguard.Error{Code: daoguard.CodeConfig, Message: "audit key: " + err.Error()}
	}
	text := strings.TrimSpace(string(skey))
	s, err := note.NewSigner(text)
	if err != nil {
		return nil, nil, &daoguard.Error{Code: daoguard.CodeConfig, Message: cfg.AuditKeyFile + " is not a note signing key"}
	}
	ps, err := audit.NewPseudonyms([]byte(text))
	if err != nil {
		return nil, nil, err
	}
	return s, ps, nil
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

// publisher publishes checkpoints outside the database, as configured: a
// database rewritten together with its checkpoints still disagrees with
// the copies others kept. Failures are logged, never fatal: the
// checkpoint is stored either way.
type publisher struct {
	dir, hook string
	hc        *http.Client
	log       *slog.Logger
	// extends checks that a checkpoint extends an older one, with a
	// consistency proof from the store (Service.Extends).
	extends func(ctx context.Context, older, newer []byte) error
	next    chan []byte   // serve: the newest checkpoint not yet published
	retry   time.Duration // the first wait before a retry
}

// newPublisher returns the configured publisher, nil if none is.
func newPublisher(dataDir string, cfg Config, log *slog.Logger, svc *service.Service) *publisher {
	dir, hook := cfg.Audit.PublishDir, cfg.Audit.PublishURL
	if dir == "" && hook == "" {
		return nil
	}
	if dir != "" && !filepath.IsAbs(dir) {
		dir = filepath.Join(dataDir, dir)
	}
	return &publisher{dir: dir, hook: hook, log: log, extends: svc.Extends, next: make(chan []byte, 1), retry: 5 * time.Second, hc: &http.Client{
		Timeout: 10 * time.Second,
		// A redirect would send the token-bearing URL on as a Referer and
		// turn the POST into a GET: a hook that redirects has failed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// publish publishes msg to every target now; it reports whether all took
// it. The command line uses it directly.
func (p *publisher) publish(ctx context.Context, msg []byte) bool {
	ok := true
	size := checkpointSize(msg)
	if p.dir != "" {
		err := p.publishFile(ctx, size, msg)
		var de *daoguard.Error
		switch {
		case errors.As(err, &de) && de.Code == daoguard.CodeAuditTampered:
			// Not retried: the published history disagrees with this one.
			p.log.Error("audit checkpoint not published: it contradicts the published ones", "code", de.Code, "dir", p.dir, "size", size, "err", err)
		case err != nil:
			ok = false
			p.log.Warn("audit checkpoint not published to the directory", "dir", p.dir, "size", size, "err", err)
		}
	}
	if p.hook != "" {
		if err := postCheckpoint(ctx, p.hc, p.hook, msg); err != nil {
			ok = false
			// The URL may hold a token in its path: log the host only.
			p.log.Warn("audit checkpoint not published to the webhook", "host", hostOf(p.hook), "size", size, "err", err)
		}
	}
	return ok
}

// offer hands msg to run without waiting (signing must never wait for a
// slow webhook), replacing an older checkpoint not yet published: the
// newest one covers it.
func (p *publisher) offer(_ context.Context, msg []byte) {
	for {
		select {
		case p.next <- msg:
			return
		default:
		}
		select {
		case <-p.next:
		default:
		}
	}
}

// run publishes what offer hands it until ctx ends, retrying a failed
// publication (every 5 s, then less often, up to every minute) until it
// succeeds or a newer checkpoint replaces it. When ctx ends it makes one
// last attempt at what is still unpublished, for at most 5 s.
func (p *publisher) run(ctx context.Context) {
	var pending []byte
	wait := p.retry
	for {
		var retry <-chan time.Time
		if pending != nil {
			retry = time.After(wait)
		}
		select {
		case <-ctx.Done():
			select {
			case pending = <-p.next:
			default:
			}
			if pending != nil {
				last, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				p.publish(last, pending)
				cancel()
			}
			return
		case msg := <-p.next:
			pending, wait = msg, p.retry
		case <-retry:
			wait = min(2*wait, time.Minute)
		}
		if p.publish(ctx, pending) {
			pending = nil
		}
	}
}

// publishFile keeps the published history as evidence: checkpoint.<size>
// is written once and never replaced (a different one of the same size
// is AUDIT_TAMPERED), and checkpoint, the latest, is replaced only by a
// larger checkpoint proved to extend it. Several processes may publish to
// one directory: a lock serialises them.
func (p *publisher) publishFile(ctx context.Context, size string, msg []byte) error {
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(p.dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	name := filepath.Join(p.dir, "checkpoint."+size)
	if old, err := os.ReadFile(name); err == nil {
		if !bytes.Equal(old, msg) {
			return &daoguard.Error{Code: daoguard.CodeAuditTampered, Message: fmt.Sprintf("%s holds another checkpoint of %s entries: the log was rewritten", name, size)}
		}
	} else if err := writeFileAtomic(name, msg, 0o644); err != nil {
		return err
	}
	latest := filepath.Join(p.dir, "checkpoint")
	if old, err := os.ReadFile(latest); err == nil {
		n, err1 := strconv.ParseInt(checkpointSize(old), 10, 64)
		m, err2 := strconv.ParseInt(size, 10, 64)
		if err1 == nil && err2 == nil && n >= m {
			return nil // as large already (checkpoint.<size> compared it if equal)
		}
		if err := p.extends(ctx, old, msg); err != nil {
			return &daoguard.Error{Code: daoguard.CodeAuditTampered, Message: "the new checkpoint does not extend the published one: " + err.Error()}
		}
	}
	return writeFileAtomic(latest, msg, 0o644)
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
