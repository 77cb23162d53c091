package service

import (
	"context"
	"regexp"
	"strconv"
	"strings"

	"github.com/daoguard/daoguard"
	"github.com/ethereum/go-ethereum/common"
)

// The organisation's accounts (what it acts from) and assets (the tokens
// policy names by symbol) are the operator's to set, from the data
// directory (daoguard accounts add, daoguard assets add), like the first
// policy: each change is audited, and changing an existing one must be
// asked for, since a treasury or token address that quietly changes
// redirects everything that names it.

var (
	accountName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)
	assetSymbol = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.]{0,15}$`)
)

// maxDecimals bounds an asset's decimals: 10^77 is already beyond uint256.
const maxDecimals = 77

// AddAccount records an account of the organisation as the operator. An
// existing name is changed only with replace. Errors: INVALID_ARGUMENT,
// ADDRESS_CHECKSUM, CONFLICT (the name exists, or another account has the
// address).
func (s *Service) AddAccount(ctx context.Context, a *daoguard.Account, replace bool) error {
	if a.Address == "" {
		return daoguard.FieldError(daoguard.CodeInvalid, "address", "an account needs an address")
	}
	if err := validAccount(a); err != nil {
		return err
	}
	return s.Store.Update(ctx, func(tx daoguard.Tx) error {
		old, err := existingAccount(ctx, tx, a, replace)
		if err != nil {
			return err
		}
		event := "account.added"
		if old != nil {
			event = "account.replaced"
		}
		if err := tx.PutAccount(ctx, a); err != nil {
			return err
		}
		return tx.Append(ctx, &daoguard.AuditEntry{Time: tx.Now(), OrgID: a.OrgID, ActorID: ActorOperator, ActorKind: "operator", Event: event,
			Detail: mustJSON(map[string]any{"account": a, "was": old})})
	})
}

// CheckAccount tells whether AddAccount would take a, without writing:
// before a wallet's key is generated, so that a refused account leaves no
// key behind. An empty address is not checked (the key does not exist yet).
func (s *Service) CheckAccount(ctx context.Context, a *daoguard.Account, replace bool) error {
	if err := validAccount(a); err != nil {
		return err
	}
	return s.Store.View(ctx, func(tx daoguard.Tx) error {
		_, err := existingAccount(ctx, tx, a, replace)
		return err
	})
}

// validAccount checks an account's fields, and normalises its address to
// EIP-55.
func validAccount(a *daoguard.Account) error {
	if !accountName.MatchString(a.Name) {
		return daoguard.FieldError(daoguard.CodeInvalid, "name", "an account name is 1 to 64 lower-case letters, digits, - or _, starting with a letter, not %q", truncate(a.Name, 64))
	}
	if a.Kind != daoguard.AccountWallet && a.Kind != daoguard.AccountSafe {
		return daoguard.FieldError(daoguard.CodeInvalid, "kind", "an account is a wallet or a safe")
	}
	if a.ChainID == 0 {
		return daoguard.FieldError(daoguard.CodeInvalid, "chain_id", "a chain id is required")
	}
	if a.Address != "" {
		addr, err := parseAddress(a.Address)
		if err != nil {
			return fieldOf(err, "address")
		}
		a.Address = common.HexToAddress(addr).Hex()
	}
	return nil
}

// existingAccount returns the account a replaces (nil: none), or why a
// may not be written.
func existingAccount(ctx context.Context, tx daoguard.Tx, a *daoguard.Account, replace bool) (*daoguard.Account, error) {
	if err := oneChain(ctx, tx, a.OrgID, a.ChainID); err != nil {
		return nil, err
	}
	accounts, err := tx.Accounts(ctx, a.OrgID)
	if err != nil {
		return nil, err
	}
	var old *daoguard.Account
	for _, o := range accounts {
		switch {
		case o.Name == a.Name:
			old = o
		case a.Address != "" && strings.EqualFold(o.Address, a.Address) && o.ChainID == a.ChainID:
			return nil, daoguard.FieldError(daoguard.CodeConflict, "address", "account %q already has address %s", o.Name, a.Address)
		}
	}
	if old != nil && !replace {
		return nil, &daoguard.Error{Code: daoguard.CodeConflict, Field: "name",
			Message: "account " + a.Name + " exists (" + old.Kind.String() + " " + old.Address + ")", Hint: "--replace changes it"}
	}
	return old, nil
}

// AddAsset records an asset of the organisation's catalogue as the
// operator: a token by address, or the chain's native coin without one
// (one per chain). An existing symbol is changed only with replace.
// Policies see the catalogue of the moment they are loaded: a change
// applies to the next policy version, or after a restart. Errors:
// INVALID_ARGUMENT, ADDRESS_CHECKSUM, CONFLICT.
func (s *Service) AddAsset(ctx context.Context, a *daoguard.Asset, replace bool) error {
	if !assetSymbol.MatchString(a.Symbol) {
		return daoguard.FieldError(daoguard.CodeInvalid, "symbol", "a symbol is 1 to 16 letters, digits or dots, starting with a letter, not %q", truncate(a.Symbol, 64))
	}
	if a.Decimals < 0 || a.Decimals > maxDecimals {
		return daoguard.FieldError(daoguard.CodeInvalid, "decimals", "decimals must be between 0 and %d", maxDecimals)
	}
	if a.ChainID == 0 {
		return daoguard.FieldError(daoguard.CodeInvalid, "chain_id", "a chain id is required")
	}
	if a.Address != "" {
		addr, err := parseAddress(a.Address)
		if err != nil {
			return fieldOf(err, "address")
		}
		a.Address = addr // lower case, as the catalogue keeps token addresses
	}
	return s.Store.Update(ctx, func(tx daoguard.Tx) error {
		if err := oneChain(ctx, tx, a.OrgID, a.ChainID); err != nil {
			return err
		}
		assets, err := tx.Assets(ctx, a.OrgID)
		if err != nil {
			return err
		}
		var old *daoguard.Asset
		for _, o := range assets {
			switch {
			case o.Symbol == a.Symbol:
				old = o
			case o.ChainID == a.ChainID && o.Native() && a.Native():
				return daoguard.FieldError(daoguard.CodeConflict, "address", "%s is already the native coin of chain %d", o.Symbol, a.ChainID)
			case o.ChainID == a.ChainID && !a.Native() && strings.EqualFold(o.Address, a.Address):
				return daoguard.FieldError(daoguard.CodeConflict, "address", "%s already has address %s", o.Symbol, a.Address)
			}
		}
		event := "asset.added"
		if old != nil {
			if !replace {
				return &daoguard.Error{Code: daoguard.CodeConflict, Field: "symbol",
					Message: "asset " + a.Symbol + " exists (" + nativeOr(old.Address) + ", " + strconv.Itoa(old.Decimals) + " decimals)", Hint: "--replace changes it"}
			}
			event = "asset.replaced"
		}
		if err := tx.PutAsset(ctx, a); err != nil {
			return err
		}
		return tx.Append(ctx, &daoguard.AuditEntry{Time: tx.Now(), OrgID: a.OrgID, ActorID: ActorOperator, ActorKind: "operator", Event: event,
			Detail: mustJSON(map[string]any{"asset": a, "was": old})})
	})
}

func nativeOr(addr string) string {
	if addr == "" {
		return "native"
	}
	return addr
}

// oneChain refuses a chain other than the one the organisation's accounts
// and assets are on: the catalogue is one per organisation, keyed by
// symbol, with one native coin, so a second chain's ETH or token would be
// valued and limited as the first chain's.
func oneChain(ctx context.Context, tx daoguard.Tx, orgID string, chainID uint64) error {
	accounts, err := tx.Accounts(ctx, orgID)
	if err != nil {
		return err
	}
	assets, err := tx.Assets(ctx, orgID)
	if err != nil {
		return err
	}
	chains := map[uint64]bool{}
	for _, a := range accounts {
		chains[a.ChainID] = true
	}
	for _, a := range assets {
		chains[a.ChainID] = true
	}
	for c := range chains {
		if c != chainID {
			return daoguard.FieldError(daoguard.CodeConflict, "chain_id", "the organisation's accounts and assets are on chain %d, not %d: daoguard keeps one chain per organisation", c, chainID)
		}
	}
	return nil
}
