package evm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync/atomic"
	"time"

	"github.com/daoguard/daoguard"
	ethereum "github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
)

// selBalanceOf is ERC-20 balanceOf(address); selAllowance is
// allowance(address owner, address spender).
var (
	selBalanceOf = []byte{0x70, 0xa0, 0x82, 0x31}
	selAllowance = []byte{0xdd, 0x62, 0xed, 0x3e}
)

// Catalogue lists what to read: the accounts and the assets of the
// organisation (from the store).
type Catalogue func(ctx context.Context) ([]*daoguard.Account, []*daoguard.Asset, error)

// HoldingsPoller reads, in the background, the balance of every asset of
// the catalogue held by every account on its chain, all at one block, and
// answers the policy engine from the last snapshot (deciding never waits
// on the chain). An account whose balances could not all be read is
// unknown, and so is every account once the snapshot is older than
// MaxAge: the units check then fails closed to approval
// (HOLDINGS_UNAVAILABLE) instead of judging on old balances.
type HoldingsPoller struct {
	Chain   HoldingsReader
	ChainID uint64
	List    Catalogue
	Every   time.Duration
	MaxAge  time.Duration
	Logger  *slog.Logger
	Now     func() time.Time
	// Allowances, if set, keeps the allowances open actions granted true
	// to the chain: after each poll, each is read at the same block and
	// its reservation shrunk to what the spender can still take.
	Allowances AllowanceKeeper

	snap atomic.Pointer[holdingsSnap]
}

// AllowanceKeeper is the store's side of the allowances the poller keeps
// (daoguard.ReservationStore's Allowances and ShrinkAllowance, each in a
// unit of its own).
type AllowanceKeeper interface {
	Allowances(ctx context.Context) ([]daoguard.Reservation, error)
	ShrinkAllowance(ctx context.Context, r daoguard.Reservation, amount *big.Int) error
}

// HoldingsReader is what reading balances needs of a JSON-RPC client.
type HoldingsReader interface {
	ethereum.BlockNumberReader
	ethereum.ChainStateReader
	ethereum.ContractCaller
}

type holdingsSnap struct {
	at time.Time
	by map[string]map[string]*big.Int // account (lower case) → symbol → base units
}

// Defaults of a new HoldingsPoller.
const (
	DefaultHoldingsEvery  = 15 * time.Second
	DefaultHoldingsMaxAge = 2 * time.Minute
)

// NewHoldingsPoller returns a poller with the defaults.
func NewHoldingsPoller(c HoldingsReader, chainID uint64, list Catalogue) *HoldingsPoller {
	return &HoldingsPoller{Chain: c, ChainID: chainID, List: list, Every: DefaultHoldingsEvery, MaxAge: DefaultHoldingsMaxAge, Logger: slog.Default(), Now: time.Now}
}

// Holdings implements decider.Holdings: the account's balances by symbol,
// or nil when they are unknown, and when the read began (before the block
// was chosen: a payment settled before then is in the balances). The map
// is shared: callers must not change it.
func (h *HoldingsPoller) Holdings(chainID uint64, account string) (map[string]*big.Int, time.Time) {
	s := h.snap.Load()
	if s == nil || chainID != h.ChainID || h.Now().Sub(s.at) > h.MaxAge {
		return nil, time.Time{}
	}
	return s.by[strings.ToLower(account)], s.at
}

// Run polls every Every until ctx ends.
func (h *HoldingsPoller) Run(ctx context.Context) {
	t := time.NewTicker(h.Every)
	defer t.Stop()
	for {
		if err := h.Poll(ctx); err != nil && ctx.Err() == nil {
			h.Logger.Warn("holdings poll", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll reads every account's balances at the chain's current block and
// publishes them. An account with a failed read is left out (unknown); the
// errors are returned joined.
func (h *HoldingsPoller) Poll(ctx context.Context) error {
	accounts, assets, err := h.List(ctx)
	if err != nil {
		return err
	}
	at := h.Now()
	block, err := h.Chain.BlockNumber(ctx)
	if err != nil {
		return fmt.Errorf("block number: %w", err)
	}
	num := new(big.Int).SetUint64(block)
	snap := &holdingsSnap{at: at, by: map[string]map[string]*big.Int{}}
	var errs []error
	for _, acc := range accounts {
		if acc.ChainID != h.ChainID || !common.IsHexAddress(acc.Address) {
			continue
		}
		holder := common.HexToAddress(acc.Address)
		bal := map[string]*big.Int{}
		var failed error
		for _, as := range assets {
			if as.ChainID != h.ChainID {
				continue
			}
			v, err := h.balance(ctx, holder, as, num)
			if err != nil {
				failed = fmt.Errorf("%s %s: %w", acc.Name, as.Symbol, err)
				break
			}
			bal[as.Symbol] = v
		}
		if failed != nil {
			errs = append(errs, failed)
			continue
		}
		snap.by[strings.ToLower(acc.Address)] = bal
	}
	h.snap.Store(snap)
	if h.Allowances != nil {
		if err := h.sweep(ctx, assets); err != nil {
			errs = append(errs, fmt.Errorf("allowances: %w", err))
		}
	}
	return errors.Join(errs...)
}

// sweep reads the live allowance of every open one and shrinks the
// reservations to it: spent or revoked, an allowance holds nothing. An
// approve sets the allowance, so several actions' reservations of one
// (account, asset, spender) share what is live, the newest first.
func (h *HoldingsPoller) sweep(ctx context.Context, assets []*daoguard.Asset) error {
	open, err := h.Allowances.Allowances(ctx)
	if err != nil || len(open) == 0 {
		return err
	}
	// The block is chosen after the list is read: an action is executed in
	// the store only once its receipt is mined, so every listed approval
	// has taken effect at this block (an earlier one would read it as not
	// yet granted, and release it).
	n, err := h.Chain.BlockNumber(ctx)
	if err != nil {
		return fmt.Errorf("block number: %w", err)
	}
	block := new(big.Int).SetUint64(n)
	tokens := map[string]string{}
	for _, as := range assets {
		if as.ChainID == h.ChainID && as.Address != "" {
			tokens[as.Symbol] = as.Address
		}
	}
	left := map[[3]string]*big.Int{} // (account, asset, spender) → live allowance not yet given to a newer reservation
	var errs []error
	for _, r := range open {
		k := [3]string{r.Account, r.Asset, r.Spender}
		live, ok := left[k]
		if !ok {
			token, known := tokens[r.Asset]
			if !known || !common.IsHexAddress(r.Account) || !common.IsHexAddress(r.Spender) {
				continue // not readable here: kept (stricter)
			}
			if live, err = h.allowance(ctx, common.HexToAddress(token), common.HexToAddress(r.Account), common.HexToAddress(r.Spender), block); err != nil {
				errs = append(errs, fmt.Errorf("%s of %s to %s: %w", r.Asset, r.Account, r.Spender, err))
				left[k] = nil
				continue
			}
			left[k] = live
		}
		if live == nil {
			continue // the read failed: kept
		}
		keep := r.Amount.Int()
		if keep.Cmp(live) > 0 {
			keep = new(big.Int).Set(live)
			if err := h.Allowances.ShrinkAllowance(ctx, r, keep); err != nil {
				errs = append(errs, err)
			}
		}
		live.Sub(live, keep)
	}
	return errors.Join(errs...)
}

// allowance reads allowance(owner, spender) of a token at block.
func (h *HoldingsPoller) allowance(ctx context.Context, token, owner, spender common.Address, block *big.Int) (*big.Int, error) {
	data := append(append(append([]byte{}, selAllowance...), common.LeftPadBytes(owner.Bytes(), 32)...), common.LeftPadBytes(spender.Bytes(), 32)...)
	out, err := h.Chain.CallContract(ctx, ethereum.CallMsg{To: &token, Data: data}, block)
	if err != nil {
		return nil, err
	}
	if len(out) != 32 {
		return nil, fmt.Errorf("allowance returned %d bytes, not one word", len(out))
	}
	return new(big.Int).SetBytes(out), nil
}

// balance reads one asset's balance: native (no address) with
// eth_getBalance, a token with balanceOf.
func (h *HoldingsPoller) balance(ctx context.Context, holder common.Address, as *daoguard.Asset, block *big.Int) (*big.Int, error) {
	if as.Address == "" {
		return h.Chain.BalanceAt(ctx, holder, block)
	}
	if !common.IsHexAddress(as.Address) {
		return nil, fmt.Errorf("token address %q is not an address", as.Address)
	}
	token := common.HexToAddress(as.Address)
	data := append(append([]byte{}, selBalanceOf...), common.LeftPadBytes(holder.Bytes(), 32)...)
	out, err := h.Chain.CallContract(ctx, ethereum.CallMsg{To: &token, Data: data}, block)
	if err != nil {
		return nil, err
	}
	if len(out) != 32 {
		return nil, fmt.Errorf("balanceOf returned %d bytes, not one word (is %s a token?)", len(out), token.Hex())
	}
	return new(big.Int).SetBytes(out), nil
}
