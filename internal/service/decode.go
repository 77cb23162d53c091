package service

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/policy"
	"github.com/ethereum/go-ethereum/common"
)

// Input limits. Anything larger is refused before it reaches a store.
const (
	maxNameLen      = 64
	maxRationaleLen = 8 << 10
	maxCalldataLen  = 128 << 10 // bytes after hex decoding
)

// Catalog resolves account and asset names; a store's Tx is one.
type Catalog interface {
	Account(ctx context.Context, orgID, name string) (*daoguard.Account, error)
	Asset(ctx context.Context, orgID, symbol string) (*daoguard.Asset, error)
}

// Decode validates an intent and resolves it against the organisation's
// accounts and assets into the exact form that policy judges. Every check on
// submitted fields happens here, once.
func Decode(ctx context.Context, tx Catalog, orgID string, in daoguard.Intent) (daoguard.Decoded, error) {
	var d daoguard.Decoded
	kind, err := daoguard.ParseActionKind(in.Kind)
	if err != nil {
		return d, err
	}
	d.Kind = kind
	if kind == daoguard.KindControl {
		return d, daoguard.FieldError(daoguard.CodeInvalid, "kind", "control actions are made by POST /v1/controls/resume and POST /v1/principals/{id}/autonomy, not submitted")
	}
	if kind == daoguard.KindPolicy {
		return decodePolicy(ctx, tx, orgID, in)
	}
	if in.Policy != "" {
		return d, daoguard.FieldError(daoguard.CodeInvalid, "policy", "only a policy action carries a policy document")
	}
	if in.Account == "" || len(in.Account) > maxNameLen {
		return d, daoguard.FieldError(daoguard.CodeInvalid, "account", "account name is required (at most %d characters)", maxNameLen)
	}
	if len(in.Rationale) > maxRationaleLen {
		return d, daoguard.FieldError(daoguard.CodeInvalid, "rationale", "rationale is longer than %d bytes", maxRationaleLen)
	}
	to, err := parseAddress(in.To)
	if err != nil {
		return d, fieldOf(err, "to")
	}
	d.To = to

	acct, err := tx.Account(ctx, orgID, in.Account)
	if err != nil {
		return d, err
	}
	d.Account, d.AccountKind, d.ChainID, d.From = acct.Name, acct.Kind, acct.ChainID, acct.Address

	switch kind {
	case daoguard.KindTransfer:
		if in.Value != "" || in.Data != "" || in.Operation != "" {
			return d, daoguard.FieldError(daoguard.CodeInvalid, "kind", "a transfer takes asset and amount, not value, data or operation")
		}
		if in.Asset == "" || len(in.Asset) > maxNameLen {
			return d, daoguard.FieldError(daoguard.CodeInvalid, "asset", "asset symbol is required (at most %d characters)", maxNameLen)
		}
		asset, err := tx.Asset(ctx, orgID, in.Asset)
		if err != nil {
			return d, err
		}
		if asset.ChainID != acct.ChainID {
			return d, daoguard.FieldError(daoguard.CodeUnknownAsset, "asset", "asset %s is not on the chain of account %s", asset.Symbol, acct.Name)
		}
		amt, err := daoguard.ParseAmount(in.Amount, asset.Decimals)
		if err != nil {
			return d, fieldOf(err, "amount")
		}
		if amt.Sign() == 0 {
			return d, daoguard.FieldError(daoguard.CodeInvalidAmount, "amount", "amount must be greater than zero")
		}
		d.Asset, d.Token, d.Decimals, d.Amount = asset.Symbol, asset.Address, asset.Decimals, daoguard.NewBigInt(amt)
		d.Operation = daoguard.OpCall
	case daoguard.KindCall:
		// A call may state what it moves (asset and amount); policy then
		// checks that the calldata moves that, and denies a mismatch.
		if (in.Asset == "") != (in.Amount == "") {
			return d, daoguard.FieldError(daoguard.CodeInvalid, "amount", "a call states both asset and amount, or neither")
		}
		if in.Asset != "" {
			if len(in.Asset) > maxNameLen {
				return d, daoguard.FieldError(daoguard.CodeInvalid, "asset", "asset symbol is longer than %d characters", maxNameLen)
			}
			asset, err := tx.Asset(ctx, orgID, in.Asset)
			if err != nil {
				return d, err
			}
			amt, err := daoguard.ParseAmount(in.Amount, asset.Decimals)
			if err != nil {
				return d, fieldOf(err, "amount")
			}
			d.Stated = &daoguard.Stated{Asset: asset.Symbol, Amount: daoguard.NewBigInt(amt)}
		}
		value := "0"
		if in.Value != "" {
			value = in.Value
		}
		v, err := daoguard.ParseBaseUnits(value)
		if err != nil {
			return d, fieldOf(err, "value")
		}
		data, err := parseHex(in.Data)
		if err != nil {
			return d, daoguard.FieldError(daoguard.CodeInvalid, "data", "%s", daoguard.ErrorMessage(err))
		}
		op, err := daoguard.ParseOperation(in.Operation)
		if err != nil {
			return d, err
		}
		d.Value, d.Data, d.Operation = daoguard.NewBigInt(v), data, op
	}
	return d, nil
}

// parseAddress accepts a 0x-prefixed 20-byte hex address, checks its EIP-55
// checksum if it has one, and returns it in lower case.
func parseAddress(s string) (string, error) {
	if len(s) != 42 || !strings.HasPrefix(s, "0x") {
		return "", daoguard.Errorf(daoguard.CodeInvalid, "address %q is not 0x followed by 40 hex digits", truncate(s, 64))
	}
	if _, err := hex.DecodeString(s[2:]); err != nil {
		return "", daoguard.Errorf(daoguard.CodeInvalid, "address %q is not 0x followed by 40 hex digits", truncate(s, 64))
	}
	// EIP-55: the case of the letters is a checksum. Mixed case must match
	// it: a single mistyped or altered character then fails here instead
	// of sending funds elsewhere. One case throughout carries no checksum.
	if lower, upper := strings.ToLower(s[2:]), strings.ToUpper(s[2:]); s[2:] != lower && s[2:] != upper {
		if want := common.HexToAddress(s).Hex(); s != want {
			return "", &daoguard.Error{Code: daoguard.CodeAddressChecksum, Message: fmt.Sprintf("address %s fails its EIP-55 checksum", s),
				Hint: "copy the address again from its source; a checksum failure means a character differs"}
		}
	}
	return strings.ToLower(s), nil
}

func parseHex(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	if !strings.HasPrefix(s, "0x") {
		return nil, daoguard.Errorf(daoguard.CodeInvalid, "calldata must start with 0x")
	}
	if len(s)-2 > 2*maxCalldataLen {
		return nil, daoguard.Errorf(daoguard.CodeInvalid, "calldata is longer than %d bytes", maxCalldataLen)
	}
	b, err := hex.DecodeString(s[2:])
	if err != nil {
		return nil, daoguard.Errorf(daoguard.CodeInvalid, "calldata is not valid hex")
	}
	return b, nil
}

// fieldOf names the input field on a daoguard error that lacks one.
func fieldOf(err error, field string) error {
	if e, ok := err.(*daoguard.Error); ok && e.Field == "" {
		c := *e
		c.Field = field
		return &c
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// policySource reads policy versions; a store's Tx is one.
type policySource interface {
	CurrentPolicy(ctx context.Context, orgID string) (int, error)
	Policy(ctx context.Context, orgID string, version int) (*daoguard.PolicyVersion, error)
}

// decodePolicy validates a policy action: the document must compile (every
// problem is reported, with its line), and the diff from the version in
// force is what the approvers will read.
func decodePolicy(ctx context.Context, tx Catalog, orgID string, in daoguard.Intent) (daoguard.Decoded, error) {
	d := daoguard.Decoded{Kind: daoguard.KindPolicy}
	if in.Account != "" || in.Asset != "" || in.To != "" || in.Amount != "" || in.Value != "" || in.Data != "" || in.Operation != "" {
		return d, daoguard.FieldError(daoguard.CodeInvalid, "kind", "a policy action takes policy (and rationale) only")
	}
	if len(in.Rationale) > maxRationaleLen {
		return d, daoguard.FieldError(daoguard.CodeInvalid, "rationale", "rationale is longer than %d bytes", maxRationaleLen)
	}
	if in.Policy == "" {
		return d, daoguard.FieldError(daoguard.CodeInvalid, "policy", "the policy document is required")
	}
	if _, err := policy.Parse([]byte(in.Policy)); err != nil {
		return d, PolicyError(err)
	}
	src, ok := tx.(policySource)
	if !ok {
		return d, daoguard.Errorf(daoguard.CodeInternal, "policy versions are not readable here")
	}
	base, err := src.CurrentPolicy(ctx, orgID)
	if err != nil {
		return d, err
	}
	old := ""
	if base > 0 {
		pv, err := src.Policy(ctx, orgID, base)
		if err != nil {
			return d, err
		}
		old = pv.Source
	}
	if old == in.Policy {
		return d, daoguard.FieldError(daoguard.CodeInvalid, "policy", "the document is the policy in force (version %d): nothing would change", base)
	}
	d.Policy = &daoguard.PolicyChange{Base: base, Digest: policy.Digest([]byte(in.Policy)), Diff: policy.Diff(old, in.Policy)}
	return d, nil
}

// PolicyError turns a policy parse failure into INVALID_POLICY listing every
// problem with its line and field.
func PolicyError(err error) error {
	var pe *policy.ParseError
	if !errors.As(err, &pe) {
		return err
	}
	e := &daoguard.Error{Code: daoguard.CodeInvalidPolicy, Field: "policy",
		Message: fmt.Sprintf("the policy document has %d problem(s); the policy in force is unchanged", len(pe.Problems))}
	for _, p := range pe.Problems {
		e.Details = append(e.Details, p.String())
	}
	return e
}
