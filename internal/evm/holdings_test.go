package evm_test

import (
	"context"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/evm"
	"github.com/daoguard/daoguard/internal/evm/evmtest"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// TestHoldingsPoller reads native and ERC-20 balances from a real EVM, all
// at one block; an account whose read fails, a snapshot past its max age,
// or another chain is unknown (nil), never a partial or old answer.
func TestHoldingsPoller(t *testing.T) {
	ctx := context.Background()
	tokenArt := evmtest.Artifact(t, "DevToken")
	chain := evmtest.Chain(t)
	treasury := common.HexToAddress("0x00000000000000000000000000000000000a11ce")
	usdc, err := evm.Deploy(ctx, chain.Client, chain.Mine, chain.Deployer, tokenArt, "USD Coin", "USDC", uint8(6))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := evm.Send(ctx, chain.Client, chain.Mine, chain.Deployer, tokenArt, usdc, "mint", treasury, big.NewInt(1_234_500000)); err != nil {
		t.Fatal(err)
	}
	deployer := crypto.PubkeyToAddress(chain.Deployer.PublicKey)
	accounts := []*daoguard.Account{
		{Name: "ops", ChainID: 1337, Address: strings.ToLower(treasury.Hex())},
		{Name: "deployer", ChainID: 1337, Address: deployer.Hex()},
		{Name: "elsewhere", ChainID: 1, Address: treasury.Hex()},
	}
	assets := []*daoguard.Asset{
		{Symbol: "ETH", ChainID: 1337, Decimals: 18},
		{Symbol: "USDC", ChainID: 1337, Address: usdc.Hex(), Decimals: 6},
	}
	now := time.Unix(1_800_000_000, 0)
	h := evm.NewHoldingsPoller(chain.Client, 1337, func(context.Context) ([]*daoguard.Account, []*daoguard.Asset, error) { return accounts, assets, nil })
	h.Now = func() time.Time { return now }
	if got, _ := h.Holdings(1337, treasury.Hex()); got != nil {
		t.Fatalf("before any poll: %v", got)
	}
	if err := h.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := h.Holdings(1337, treasury.Hex()) // checksummed or not, the same account
	if got["USDC"].Cmp(big.NewInt(1_234_500000)) != 0 || got["ETH"].Sign() != 0 || len(got) != 2 {
		t.Fatalf("treasury holdings %v", got)
	}
	if d, _ := h.Holdings(1337, deployer.Hex()); d["ETH"].Sign() <= 0 || d["USDC"].Sign() != 0 {
		t.Fatalf("deployer holdings %v", d)
	}
	if got, _ := h.Holdings(1, treasury.Hex()); got != nil {
		t.Fatal("an account on a chain the poller does not read has holdings")
	}
	// The next poll sees a transfer out.
	if _, err := evm.Send(ctx, chain.Client, chain.Mine, chain.Deployer, tokenArt, usdc, "mint", deployer, big.NewInt(5)); err != nil {
		t.Fatal(err)
	}
	if err := h.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if d, _ := h.Holdings(1337, deployer.Hex()); d["USDC"].Cmp(big.NewInt(5)) != 0 {
		t.Fatalf("after a mint: %v", d)
	}
	// Old snapshots are unknown.
	now = now.Add(h.MaxAge + time.Second)
	if got, _ := h.Holdings(1337, treasury.Hex()); got != nil {
		t.Fatal("a snapshot past its max age was used")
	}
	// A token that cannot be read makes the holder unknown, not partial.
	assets = append(assets, &daoguard.Asset{Symbol: "NOPE", ChainID: 1337, Address: "0x00000000000000000000000000000000000000bb", Decimals: 18})
	if err := h.Poll(ctx); err == nil || !strings.Contains(err.Error(), "NOPE") {
		t.Fatalf("unreadable token: %v", err)
	}
	if got, _ := h.Holdings(1337, treasury.Hex()); got != nil {
		t.Fatal("partial holdings were published")
	}
}

// keeper is an in-memory AllowanceKeeper: the open allowances, newest
// first, and the shrinks asked for.
type keeper struct {
	open   []daoguard.Reservation
	shrunk map[string]*big.Int // action → amount
}

func (k *keeper) Allowances(context.Context) ([]daoguard.Reservation, error) {
	var out []daoguard.Reservation
	for _, r := range k.open {
		if v, ok := k.shrunk[r.ActionID]; ok {
			if v.Sign() == 0 {
				continue
			}
			r.Amount = daoguard.NewBigInt(v)
		}
		out = append(out, r)
	}
	return out, nil
}

func (k *keeper) ShrinkAllowance(_ context.Context, r daoguard.Reservation, amount *big.Int) error {
	k.shrunk[r.ActionID] = new(big.Int).Set(amount)
	return nil
}

// TestHoldingsPollerKeepsAllowances: each poll reads the live allowance of
// every open one from a real EVM and shrinks the reservations to it, the
// newest first (an approve sets the allowance: two approvals of one
// spender share what is live); an allowance that cannot be read is kept.
func TestHoldingsPollerKeepsAllowances(t *testing.T) {
	ctx := context.Background()
	tokenArt := evmtest.Artifact(t, "DevToken")
	chain := evmtest.Chain(t)
	usdc, err := evm.Deploy(ctx, chain.Client, chain.Mine, chain.Deployer, tokenArt, "USD Coin", "USDC", uint8(6))
	if err != nil {
		t.Fatal(err)
	}
	owner := crypto.PubkeyToAddress(chain.Deployer.PublicKey)
	spender := common.HexToAddress("0x00000000000000000000000000000000005e11e7")
	approve := func(n int64) {
		t.Helper()
		if _, err := evm.Send(ctx, chain.Client, chain.Mine, chain.Deployer, tokenArt, usdc, "approve", spender, big.NewInt(n)); err != nil {
			t.Fatal(err)
		}
	}
	approve(100)
	acc, sp := strings.ToLower(owner.Hex()), strings.ToLower(spender.Hex())
	res := func(id string, n int64, asset string) daoguard.Reservation {
		return daoguard.Reservation{OrgID: "o", ActionID: id, Account: acc, Asset: asset, Spender: sp, Amount: daoguard.NewBigInt(big.NewInt(n))}
	}
	k := &keeper{shrunk: map[string]*big.Int{}, open: []daoguard.Reservation{
		res("act_new", 100, "USDC"), // newest first
		res("act_old", 50, "USDC"),
		res("act_unknown", 7, "NOPE"), // no token in the catalogue to read: kept
	}}
	accounts := []*daoguard.Account{{Name: "ops", ChainID: 1337, Address: owner.Hex()}}
	assets := []*daoguard.Asset{{Symbol: "USDC", ChainID: 1337, Address: usdc.Hex(), Decimals: 6}}
	h := evm.NewHoldingsPoller(chain.Client, 1337, func(context.Context) ([]*daoguard.Account, []*daoguard.Asset, error) { return accounts, assets, nil })
	h.Allowances = k
	if err := h.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if len(k.shrunk) != 1 || k.shrunk["act_old"] == nil || k.shrunk["act_old"].Sign() != 0 {
		t.Fatalf("live 100: the newest keeps 100, the older one nothing: %v", k.shrunk)
	}
	// Partly spent (or lowered): 30 left.
	approve(30)
	if err := h.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if k.shrunk["act_new"] == nil || k.shrunk["act_new"].Int64() != 30 || k.shrunk["act_unknown"] != nil {
		t.Fatalf("live 30: %v", k.shrunk)
	}
	// Raised on chain: a reservation is never raised.
	approve(1000)
	if err := h.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if k.shrunk["act_new"].Int64() != 30 {
		t.Fatalf("raised: %v", k.shrunk)
	}
}
