package evm

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/big"
	"time"

	ethereum "github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
)

// Client is what the layer needs of a JSON-RPC connection; ethclient.Client
// and the simulated chain's client both are one.
type Client interface {
	ethereum.ChainIDReader
	ethereum.ChainStateReader
	ethereum.ContractCaller
	ethereum.GasEstimator
	ethereum.GasPricer
	ethereum.GasPricer1559
	ethereum.PendingStateReader
	ethereum.TransactionReader
	ethereum.TransactionSender
	ethereum.BlockNumberReader
}

// Miner makes the pending transactions a block: the simulated chain's
// Commit. A real node mines on its own; then Miner is nil.
type Miner func()

// Transact signs an EIP-1559 transaction from key to `to` (nil: a contract
// creation), sends it, and waits for its receipt; a reverted transaction is
// an error. For setup and tests: daoguard's executors record the signed
// transaction before broadcast, this does not.
func Transact(ctx context.Context, c Client, mine Miner, key *ecdsa.PrivateKey, to *common.Address, value *big.Int, data []byte) (*types.Receipt, error) {
	from := crypto.PubkeyToAddress(key.PublicKey)
	chainID, err := c.ChainID(ctx)
	if err != nil {
		return nil, err
	}
	nonce, err := c.PendingNonceAt(ctx, from)
	if err != nil {
		return nil, err
	}
	tip, err := c.SuggestGasTipCap(ctx)
	if err != nil {
		return nil, err
	}
	price, err := c.SuggestGasPrice(ctx)
	if err != nil {
		return nil, err
	}
	if value == nil {
		value = new(big.Int)
	}
	gas, err := c.EstimateGas(ctx, ethereum.CallMsg{From: from, To: to, Value: value, Data: data})
	if err != nil {
		return nil, fmt.Errorf("estimate gas: %w", err)
	}
	tx := types.NewTx(&types.DynamicFeeTx{
		ChainID: chainID, Nonce: nonce, GasTipCap: tip,
		GasFeeCap: new(big.Int).Add(tip, new(big.Int).Mul(price, big.NewInt(2))),
		Gas:       gas + gas/5, To: to, Value: value, Data: data,
	})
	signed, err := types.SignTx(tx, types.LatestSignerForChainID(chainID), key)
	if err != nil {
		return nil, err
	}
	if err := c.SendTransaction(ctx, signed); err != nil {
		return nil, err
	}
	if mine != nil {
		mine()
	}
	rc, err := WaitReceipt(ctx, c, signed.Hash())
	if err != nil {
		return nil, err
	}
	if rc.Status != types.ReceiptStatusSuccessful {
		return rc, fmt.Errorf("transaction %s reverted", signed.Hash().Hex())
	}
	return rc, nil
}

// WaitReceipt polls for a transaction's receipt until ctx ends.
func WaitReceipt(ctx context.Context, c ethereum.TransactionReader, hash common.Hash) (*types.Receipt, error) {
	for {
		rc, err := c.TransactionReceipt(ctx, hash)
		if err == nil {
			return rc, nil
		}
		if !errors.Is(err, ethereum.NotFound) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no receipt for %s: %w", hash.Hex(), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Deploy creates a contract from an artifact with constructor arguments
// and returns its address.
func Deploy(ctx context.Context, c Client, mine Miner, key *ecdsa.PrivateKey, a *Artifact, args ...any) (common.Address, error) {
	ctor, err := a.ABI.Pack("", args...)
	if err != nil {
		return common.Address{}, fmt.Errorf("%s constructor: %w", a.Name, err)
	}
	rc, err := Transact(ctx, c, mine, key, nil, nil, append(append([]byte{}, a.Bytecode...), ctor...))
	if err != nil {
		return common.Address{}, fmt.Errorf("deploy %s: %w", a.Name, err)
	}
	return rc.ContractAddress, nil
}

// Send calls a contract function in a transaction.
func Send(ctx context.Context, c Client, mine Miner, key *ecdsa.PrivateKey, a *Artifact, at common.Address, method string, args ...any) (*types.Receipt, error) {
	data, err := a.ABI.Pack(method, args...)
	if err != nil {
		return nil, fmt.Errorf("%s.%s: %w", a.Name, method, err)
	}
	return Transact(ctx, c, mine, key, &at, nil, data)
}

// Call reads a view function at the latest block and unpacks its results.
func Call(ctx context.Context, c ethereum.ContractCaller, a *Artifact, at common.Address, method string, args ...any) ([]any, error) {
	data, err := a.ABI.Pack(method, args...)
	if err != nil {
		return nil, fmt.Errorf("%s.%s: %w", a.Name, method, err)
	}
	out, err := c.CallContract(ctx, ethereum.CallMsg{To: &at, Data: data}, nil)
	if err != nil {
		return nil, err
	}
	return a.ABI.Unpack(method, out)
}
