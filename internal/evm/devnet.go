package evm

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
)

// DevContracts are the contracts of a dev chain: Safe v1.4.1 (singleton,
// proxy factory, fallback handler, batch libraries, exactly as published),
// one Safe created from them, and a DevToken.
type DevContracts struct {
	Singleton, Factory, Handler  common.Address
	MultiSend, MultiSendCallOnly common.Address
	Safe                         common.Address // the treasury
	Token                        common.Address // USDC-like, 6 decimals
}

// DeployDev deploys the dev contracts over any node, from deployer: a
// Safe owned by owners with threshold, and a 6-decimal token "USDC" whose
// minter is the deployer. It works the same on the simulated chain and on
// a real node over JSON-RPC (the end-to-end test's ganache).
func DeployDev(ctx context.Context, c Client, mine Miner, deployer *ecdsa.PrivateKey, owners []common.Address, threshold int64) (*DevContracts, error) {
	arts := map[string]*Artifact{}
	for _, n := range []string{"Safe", "SafeProxyFactory", "CompatibilityFallbackHandler", "MultiSend", "MultiSendCallOnly", "DevToken"} {
		a, err := LoadArtifact(n)
		if err != nil {
			return nil, err
		}
		arts[n] = a
	}
	var d DevContracts
	var err error
	for _, step := range []struct {
		dst  *common.Address
		name string
		args []any
	}{
		{&d.Singleton, "Safe", nil},
		{&d.Factory, "SafeProxyFactory", nil},
		{&d.Handler, "CompatibilityFallbackHandler", nil},
		{&d.MultiSend, "MultiSend", nil},
		{&d.MultiSendCallOnly, "MultiSendCallOnly", nil},
		{&d.Token, "DevToken", []any{"USD Coin (dev)", "USDC", uint8(6)}},
	} {
		if *step.dst, err = Deploy(ctx, c, mine, deployer, arts[step.name], step.args...); err != nil {
			return nil, err
		}
	}
	if d.Safe, err = CreateSafe(ctx, c, mine, deployer, arts["SafeProxyFactory"], d.Factory, arts["Safe"], d.Singleton, d.Handler, owners, threshold, big.NewInt(1)); err != nil {
		return nil, err
	}
	return &d, nil
}

// CreateSafe creates a Safe proxy of singleton through the factory, with
// owners, threshold and the fallback handler, and returns its address.
func CreateSafe(ctx context.Context, c Client, mine Miner, key *ecdsa.PrivateKey, factoryArt *Artifact, factory common.Address, safeArt *Artifact, singleton, handler common.Address, owners []common.Address, threshold int64, salt *big.Int) (common.Address, error) {
	setup, err := safeArt.ABI.Pack("setup", owners, big.NewInt(threshold), common.Address{}, []byte{}, handler, common.Address{}, new(big.Int), common.Address{})
	if err != nil {
		return common.Address{}, err
	}
	rc, err := Send(ctx, c, mine, key, factoryArt, factory, "createProxyWithNonce", singleton, setup, salt)
	if err != nil {
		return common.Address{}, err
	}
	ev := factoryArt.ABI.Events["ProxyCreation"]
	for _, l := range rc.Logs {
		if len(l.Topics) == 2 && l.Topics[0] == ev.ID {
			return common.BytesToAddress(l.Topics[1].Bytes()), nil
		}
	}
	return common.Address{}, fmt.Errorf("the Safe proxy factory emitted no ProxyCreation")
}

// Mint mints amount of a DevToken to `to`.
func Mint(ctx context.Context, c Client, mine Miner, minter *ecdsa.PrivateKey, token, to common.Address, amount *big.Int) error {
	a, err := LoadArtifact("DevToken")
	if err != nil {
		return err
	}
	_, err = Send(ctx, c, mine, minter, a, token, "mint", to, amount)
	return err
}
