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

// selBalanceOf is ERC-20 balanceOf(address).
var selBalanceOf = []byte{0x70, 0xa0, 0x82, 0x31}

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

	snap atomic.Pointer[holdingsSnap]
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
	return errors.Join(errs...)
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
