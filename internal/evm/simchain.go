package evm

import (
	"crypto/ecdsa"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
)

// SimChain is an in-process chain: go-ethereum's simulated backend (chain
// id 1337), a block per Mine.
type SimChain struct {
	Backend *simulated.Backend
	Client  Client
	// Deployer is funded at genesis and deploys the chain's contracts.
	Deployer *ecdsa.PrivateKey
}

// NewSimChain starts a chain whose genesis funds the deployer and every
// address of fund with 10^24 wei (a million ETH).
func NewSimChain(fund ...common.Address) (*SimChain, error) {
	key, err := crypto.GenerateKey()
	if err != nil {
		return nil, err
	}
	rich := new(big.Int).Exp(big.NewInt(10), big.NewInt(24), nil)
	alloc := types.GenesisAlloc{crypto.PubkeyToAddress(key.PublicKey): {Balance: rich}}
	for _, a := range fund {
		alloc[a] = types.Account{Balance: rich}
	}
	b := simulated.NewBackend(alloc)
	if b == nil {
		return nil, fmt.Errorf("simulated chain did not start")
	}
	return &SimChain{Backend: b, Client: b.Client(), Deployer: key}, nil
}

// Mine seals the pending transactions into a block.
func (s *SimChain) Mine() { s.Backend.Commit() }

// Close stops the chain.
func (s *SimChain) Close() error { return s.Backend.Close() }
