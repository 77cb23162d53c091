package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/auth"
	"github.com/daoguard/daoguard/internal/secrets"
)

// keyIDPattern matches anything shaped like a daoguard key id; ParseKeyID
// then checks the checksum, so random strings are not reported.
var keyIDPattern = regexp.MustCompile(`dg_(?:test|live)_[0-9a-z]{30}`)

// runKeysScan reports daoguard key ids (checksum-valid) found in files, and
// whether the file also holds a credential's secret. Exit 1 if anything
// was found, so it can gate a commit or a CI job.
func (m *Main) runKeysScan(args []string) error {
	fset := m.newFlagSet("keys scan")
	if err := fset.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fset.NArg() != 1 {
		return usagef("keys scan needs one PATH")
	}
	found := 0
	err := filepath.WalkDir(fset.Arg(0), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n == ".git" || n == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		secret := bytes.Contains(b, []byte(`"secret"`)) || bytes.Contains(b, []byte(`"private_key"`))
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for n := 1; sc.Scan(); n++ {
			for _, id := range keyIDPattern.FindAllString(sc.Text(), -1) {
				if _, err := auth.ParseKeyID(id); err != nil {
					continue
				}
				found++
				what := "key id"
				if secret {
					what = "key id in a file holding a secret or private key"
				}
				fmt.Fprintf(m.Stdout, "%s:%d: %s (%s)\n", path, n, id, what)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if found > 0 {
		return &daoguard.Error{Code: daoguard.CodeForbidden, Message: fmt.Sprintf("%d daoguard key(s) found", found),
			Hint: "revoke any key whose secret was exposed: daoguard keys revoke --key-id ID"}
	}
	fmt.Fprintln(m.Stdout, "no daoguard keys found")
	return nil
}

// runRotateMaster adds a master key version, re-seals every stored secret
// under it, and with --retire drops the older versions. Each step leaves a
// state that opens: the new version is written to the key file before any
// blob uses it, and old versions are removed only after every blob has
// moved. serve must be stopped (the directory lock is taken).
func (m *Main) runRotateMaster(ctx context.Context, args []string) error {
	fset := m.newFlagSet("keys rotate-master")
	dir := fset.String("data", "", "data directory (required)")
	retire := fset.Bool("retire", false, "after re-sealing, remove the older master key versions")
	replicasStopped := fset.Bool("replicas-stopped", false, "PostgreSQL: confirm that every gateway sharing the database is stopped")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	if *dir == "" {
		return usagef("keys rotate-master needs --data DIR")
	}
	cfg, err := loadConfig(*dir, m.Getenv)
	if err != nil {
		return err
	}
	if m.Getenv("DAOGUARD_MASTER_KEY") != "" {
		return &daoguard.Error{Code: daoguard.CodeConfig, Message: "the master key comes from DAOGUARD_MASTER_KEY, which this command cannot rewrite",
			Hint: "rotate it in the secret manager: add a line \"<next version>:<base64 of 32 random bytes>\", then run this command with the new value set"}
	}
	// On a shared PostgreSQL the directory lock covers this replica only;
	// a running replica without the new version could not open re-sealed
	// secrets.
	if cfg.Store != "sqlite" && !*replicasStopped {
		return &daoguard.Error{Code: daoguard.CodeConflict, Message: "the store is shared: stop every gateway that uses it first",
			Hint: "then run again with --replicas-stopped, and copy the new master.key to every replica's data directory before starting them"}
	}
	unlock, err := lockDir(*dir)
	if err != nil {
		return err
	}
	defer unlock()
	path := filepath.Join(*dir, cfg.MasterKeyFile)
	old, err := secrets.LoadKeyring(path, "DAOGUARD_MASTER_KEY", m.Getenv)
	if err != nil {
		return err
	}
	text, kr := old.WithNewVersion()
	if err := writeFileAtomic(path, text, 0o600); err != nil {
		return err
	}
	st, err := openStore(cfg, *dir)
	if err != nil {
		return err
	}
	defer st.Close()
	var n int
	err = st.Update(ctx, func(tx daoguard.Tx) error {
		n = 0
		cs, err := tx.Credentials(ctx, cfg.Org.ID)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if c.SealedSecret == nil {
				continue
			}
			if c.SealedSecret, err = kr.Rewrap(c.SealedSecret, daoguard.SealedSecretAD(c.KeyID)); err != nil {
				return err
			}
			if err := tx.PutCredential(ctx, c); err != nil {
				return err
			}
			n++
		}
		return tx.Append(ctx, &daoguard.AuditEntry{OrgID: cfg.Org.ID, ActorID: daoguard.ActorSystem, ActorKind: "system", Event: "master_key.rotated",
			Detail: mustJSON(map[string]any{"from_version": old.Current(), "to_version": kr.Current(), "resealed": n, "retire": *retire})})
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "master key version %d added; %d secret(s) re-sealed\n", kr.Current(), n)
	if *retire {
		if err := writeFileAtomic(path, kr.Retain().Text(), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "retired versions before %d\n", kr.Current())
	}
	return nil
}

// writeFileAtomic replaces path with b: a crash leaves the old or the new
// file, never a torn one.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	return writeFileStream(path, mode, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// writeFileStream is writeFileAtomic for contents that write streams.
func writeFileStream(path string, mode os.FileMode, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) { // name the file asked for, not the temporary one
			return fmt.Errorf("cannot write %s: %w", path, pe.Err)
		}
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename is durable only once the directory is synced.
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
