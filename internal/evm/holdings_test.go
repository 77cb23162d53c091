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
