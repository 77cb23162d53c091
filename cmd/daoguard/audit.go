package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/audit"
)

// runAudit: daoguard audit verify --data DIR.
func (m *Main) runAudit(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("audit needs a subcommand: verify")
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
		// Straight from the store, without the server: every entry is
		// hashed again and the whole tree recomputed.
		size, root, err := audit.VerifyStore(ctx, st)
		var te *audit.TamperError
		if errors.As(err, &te) {
			return &daoguard.Error{Code: daoguard.CodeAuditTampered, Message: fmt.Sprintf("the audit log is tampered: first bad entry %d: %s", te.Index, te.Why),
				Hint: "restore the store from a backup you trust, and find out who had write access to the database"}
		} else if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "audit log intact: %d entries, tree root %s\n", size, base64.StdEncoding.EncodeToString(root[:]))
		return nil
	}
	return usagef("unknown audit subcommand %q (verify)", args[0])
}
