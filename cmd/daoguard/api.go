package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/daoguard/daoguard/internal/evm"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
)

// API subcommands: thin wrappers over the client package, reading a
// credential file (--credential, or DAOGUARD_CREDENTIAL) and printing the
// answer as JSON on stdout.

func (m *Main) credentialFlag(fs *flag.FlagSet) *string {
	return fs.String("credential", "", "credential file (default $DAOGUARD_CREDENTIAL)")
}

func (m *Main) loadClient(path string) (*client.Client, error) {
	if path == "" {
		path = m.Getenv("DAOGUARD_CREDENTIAL")
	}
	if path == "" {
		return nil, usagef("give --credential FILE or set DAOGUARD_CREDENTIAL")
	}
	return client.Load(path)
}

// do loads the credential, runs one client call and prints its answer.
func (m *Main) do(cred string, call func(*client.Client) (any, error)) error {
	c, err := m.loadClient(cred)
	if err != nil {
		return err
	}
	v, err := call(c)
	if err != nil {
		return err
	}
	return m.print(v)
}

func (m *Main) print(v any) error {
	enc := json.NewEncoder(m.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// runAction: daoguard action submit|get|list.
func (m *Main) runAction(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("action needs a subcommand: submit, get or list")
	}
	fs := m.newFlagSet("action " + args[0])
	cred := m.credentialFlag(fs)
	switch args[0] {
	case "submit":
		in := intentFlags(fs)
		idem := fs.String("idempotency-key", "", "makes a retry return the first answer")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if in.Account == "" || in.To == "" {
			return usagef("action submit needs --account and --to")
		}
		return m.do(*cred, func(c *client.Client) (any, error) {
			a, err := c.Submit(ctx, *in, *idem)
			return a, err
		})
	case "get":
		id := fs.String("id", "", "action id (required)")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *id == "" {
			return usagef("action get needs --id")
		}
		return m.do(*cred, func(c *client.Client) (any, error) {
			a, err := c.Action(ctx, *id)
			return a, err
		})
	case "list":
		state := fs.String("state", "", "comma-separated states, e.g. awaiting_approval,queued")
		after := fs.String("after", "", "list after this action id")
		limit := fs.Int("limit", 0, "at most this many (1..1000)")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		c, err := m.loadClient(*cred)
		if err != nil {
			return err
		}
		var states []string
		if *state != "" {
			states = strings.Split(*state, ",")
		}
		as, err := c.Actions(ctx, states, *after, *limit)
		if err != nil {
			return err
		}
		return m.print(map[string]any{"actions": as})
	}
	return usagef("unknown action subcommand %q (want submit, get or list)", args[0])
}

// runVote: daoguard approve|reject|veto --id ID.
func (m *Main) runVote(ctx context.Context, verb string, args []string) error {
	fs := m.newFlagSet(verb)
	cred := m.credentialFlag(fs)
	id := fs.String("id", "", "action id (required)")
	comment := fs.String("comment", "", "a note for the record")
	sig := fs.String("signature", "", "approve: your EIP-712 signature (hex) of the action's Safe transaction (decoded.safe_tx.hash)")
	ownerKey := fs.String("owner-key", "", "approve: sign the action's Safe transaction with the owner key in FILE (hex secp256k1 key)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *id == "" {
		return usagef("%s needs --id", verb)
	}
	if *ownerKey != "" && (*sig != "" || verb != "approve") {
		return usagef("--owner-key signs an approval; give it or --signature, not both")
	}
	c, err := m.loadClient(*cred)
	if err != nil {
		return err
	}
	if *ownerKey != "" {
		if *sig, err = signSafeTx(ctx, c, *id, *ownerKey); err != nil {
			return err
		}
	}
	var a *client.Action
	switch verb {
	case "approve":
		a, err = c.Approve(ctx, *id, *sig, *comment)
	case "reject":
		a, err = c.Reject(ctx, *id, *comment)
	case "veto":
		a, err = c.Veto(ctx, *id, *comment)
	}
	if err != nil {
		return err
	}
	return m.print(a)
}

// runControl: daoguard pause|resume.
func (m *Main) runControl(ctx context.Context, verb string, args []string) error {
	fs := m.newFlagSet(verb)
	cred := m.credentialFlag(fs)
	reason := fs.String("reason", "", "why, for the record")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := m.loadClient(*cred)
	if err != nil {
		return err
	}
	if verb == "pause" {
		org, err := c.Pause(ctx, *reason)
		if err != nil {
			return err
		}
		return m.print(org)
	}
	// Resuming loosens: the answer says whether more humans must agree.
	res, err := c.Resume(ctx, *reason)
	if err != nil {
		return err
	}
	if a := res.Action; a != nil && res.Paused {
		fmt.Fprintf(m.Stderr, "resume requested (action %s, %s): another human must agree ('daoguard resume' with their credential, or 'daoguard approve %s')\n", a.ID, a.State, a.ID)
	}
	return m.print(res)
}

// runKeys: daoguard keys create|list|rotate|revoke|scan|rotate-master.
func (m *Main) runKeys(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("keys needs a subcommand: create, list, rotate, revoke, scan or rotate-master")
	}
	switch args[0] {
	case "scan":
		return m.runKeysScan(args[1:])
	case "rotate-master":
		return m.runRotateMaster(ctx, args[1:])
	}
	fs := m.newFlagSet("keys " + args[0])
	cred := m.credentialFlag(fs)
	switch args[0] {
	case "create":
		principal := fs.String("principal", "", "principal id (required; see 'daoguard principals list')")
		alg := fs.String("alg", daoguard.AlgEd25519, "ed25519 or hmac-sha256")
		scopes := fs.String("scopes", "", "comma-separated scopes (agents default to actions:read,actions:write)")
		expires := fs.Duration("expires-in", 0, "the key expires after this long (e.g. 2160h); 0: never")
		out := fs.String("out", "", "write the new credential file here (mode 0600) instead of printing the secret")
		pub := fs.String("public-key", "", "ed25519: base64 of your own 32-byte public key; the private key then never leaves you")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *principal == "" {
			return usagef("keys create needs --principal")
		}
		if *pub != "" && *out != "" {
			return usagef("with --public-key the private key is yours: there is no secret to write with --out")
		}
		c, err := m.loadClient(*cred)
		if err != nil {
			return err
		}
		req := client.KeyRequest{Principal: *principal, Alg: *alg, PublicKey: *pub}
		if *scopes != "" {
			req.Scopes = strings.Split(*scopes, ",")
		}
		if *expires > 0 {
			req.ExpiresAt = time.Now().Add(*expires).UTC()
		}
		nk, err := c.CreateKey(ctx, req)
		if err != nil {
			return err
		}
		return m.deliverKey(c, nk, *out)
	case "list":
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		return m.do(*cred, func(c *client.Client) (any, error) {
			ks, err := c.Keys(ctx)
			return map[string]any{"keys": ks}, err
		})
	case "rotate":
		id := fs.String("key-id", "", "the key to rotate (required)")
		overlap := fs.Duration("overlap", 24*time.Hour, "how long the old key keeps working")
		out := fs.String("out", "", "write the new credential file here (mode 0600)")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *id == "" {
			return usagef("keys rotate needs --key-id")
		}
		c, err := m.loadClient(*cred)
		if err != nil {
			return err
		}
		nk, err := c.RotateKey(ctx, *id, client.RotateRequest{Overlap: overlap.String()})
		if err != nil {
			return err
		}
		return m.deliverKey(c, nk, *out)
	case "revoke":
		id := fs.String("key-id", "", "the key to revoke (required)")
		reason := fs.String("reason", "", "why, for the record")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *id == "" {
			return usagef("keys revoke needs --key-id")
		}
		return m.do(*cred, func(c *client.Client) (any, error) {
			k, err := c.RevokeKey(ctx, *id, *reason)
			return k, err
		})
	}
	return usagef("unknown keys subcommand %q", args[0])
}

// deliverKey writes a new key's credential file (if out is set) or prints
// it: the secret is shown this once and never again.
func (m *Main) deliverKey(c *client.Client, nk *client.NewKey, out string) error {
	cf := client.CredentialFile{URL: c.URL, KeyID: nk.Key.KeyID, Alg: nk.Key.Alg, PrivateKey: nk.PrivateKey, Secret: nk.Secret}
	if out == "" {
		return m.print(map[string]any{"key": nk.Key, "credential_file": cf})
	}
	if _, err := os.Stat(out); err == nil {
		return &daoguard.Error{Code: daoguard.CodeConflict, Message: out + " exists; refusing to overwrite a credential file"}
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
		return err
	}
	if err := writeJSONFile(out, cf, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(m.Stderr, "wrote %s (mode 0600); the secret is not shown anywhere else\n", out)
	return m.print(nk.Key)
}

// runPrincipals: daoguard principals create|list.
func (m *Main) runPrincipals(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("principals needs a subcommand: create, list or autonomy")
	}
	fs := m.newFlagSet("principals " + args[0])
	cred := m.credentialFlag(fs)
	switch args[0] {
	case "create":
		kind := fs.String("kind", "agent", "agent or human")
		name := fs.String("name", "", "a name (required)")
		roles := fs.String("roles", "", "comma-separated roles, e.g. council")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *name == "" {
			return usagef("principals create needs --name")
		}
		k, err := daoguard.ParsePrincipalKind(*kind)
		if err != nil {
			return usagef("%s", daoguard.ErrorMessage(err))
		}
		c, err := m.loadClient(*cred)
		if err != nil {
			return err
		}
		req := client.PrincipalRequest{Kind: k, Name: *name}
		if *roles != "" {
			req.Roles = strings.Split(*roles, ",")
		}
		p, err := c.CreatePrincipal(ctx, req)
		if err != nil {
			return err
		}
		return m.print(p)
	case "list":
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		return m.do(*cred, func(c *client.Client) (any, error) {
			ps, err := c.Principals(ctx)
			return map[string]any{"principals": ps}, err
		})
	case "autonomy":
		id := fs.String("id", "", "the agent's principal id (required)")
		level := fs.String("level", "", "autonomous, supervised or suspended (required)")
		reason := fs.String("reason", "", "why (audited)")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		l, err := daoguard.ParseAutonomy(*level)
		if err != nil || *id == "" {
			return usagef("principals autonomy needs --id and --level autonomous|supervised|suspended")
		}
		return m.do(*cred, func(c *client.Client) (any, error) {
			res, err := c.SetAutonomy(ctx, *id, l, *reason)
			if err == nil && res.Action != nil && res.Autonomy < l {
				fmt.Fprintf(m.Stderr, "raise requested (action %s, %s): another human must agree (the same command with their credential, or 'daoguard approve %s')\n", res.Action.ID, res.Action.State, res.Action.ID)
			}
			return res, err
		})
	}
	return usagef("unknown principals subcommand %q", args[0])
}

// intentFlags declares the flags of an intent.
func intentFlags(fs *flag.FlagSet) *daoguard.Intent {
	in := &daoguard.Intent{}
	fs.StringVar(&in.Account, "account", "", "account name, e.g. ops (required)")
	fs.StringVar(&in.Kind, "kind", "transfer", "transfer or call")
	fs.StringVar(&in.Asset, "asset", "", "asset symbol or token address (transfer; a call may state what it moves)")
	fs.StringVar(&in.To, "to", "", "recipient or call target (required)")
	fs.StringVar(&in.Amount, "amount", "", "decimal amount in display units")
	fs.StringVar(&in.Value, "value", "", "wei, decimal (call)")
	fs.StringVar(&in.Data, "data", "", "0x calldata (call)")
	fs.StringVar(&in.Operation, "operation", "", "call or delegatecall (call)")
	fs.StringVar(&in.Rationale, "rationale", "", "why (untrusted text; can only raise risk)")
	return in
}

// signSafeTx signs the Safe transaction of action id with the owner key in
// file. The hash signed is the one daoguard shows; the key never leaves
// this process.
func signSafeTx(ctx context.Context, c *client.Client, id, file string) (string, error) {
	a, err := c.Action(ctx, id)
	if err != nil {
		return "", err
	}
	if a.Decoded.SafeTx == nil {
		return "", &daoguard.Error{Code: daoguard.CodeInvalid, Message: "action " + id + " is not a Safe transaction: there is nothing for an owner to sign"}
	}
	key, err := crypto.LoadECDSA(file)
	if err != nil {
		return "", &daoguard.Error{Code: daoguard.CodeInvalid, Message: "owner key " + file + ": " + err.Error()}
	}
	sig, err := evm.SignSafeTx(common.HexToHash(a.Decoded.SafeTx.Hash), key)
	if err != nil {
		return "", err
	}
	return hexutil.Encode(sig), nil
}
