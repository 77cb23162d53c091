package evm_test

import (
	"context"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/daoguard/daoguard/internal/evm"
	"github.com/daoguard/daoguard/internal/evm/evmtest"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/math"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"
)

// TestEIP712MailExample: the example of EIP-712 itself (Example.js), with
// the digest the EIP gives.
func TestEIP712MailExample(t *testing.T) {
	td := apitypes.TypedData{
		Types: apitypes.Types{
			"EIP712Domain": {{Name: "name", Type: "string"}, {Name: "version", Type: "string"}, {Name: "chainId", Type: "uint256"}, {Name: "verifyingContract", Type: "address"}},
			"Person":       {{Name: "name", Type: "string"}, {Name: "wallet", Type: "address"}},
			"Mail":         {{Name: "from", Type: "Person"}, {Name: "to", Type: "Person"}, {Name: "contents", Type: "string"}},
		},
		PrimaryType: "Mail",
		Domain:      apitypes.TypedDataDomain{Name: "Ether Mail", Version: "1", ChainId: math.NewHexOrDecimal256(1), VerifyingContract: "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},
		Message: apitypes.TypedDataMessage{
			"from":     map[string]any{"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
			"to":       map[string]any{"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
			"contents": "Hello, Bob!",
		},
	}
	got, err := evm.TypedDataHash(td)
	if err != nil {
		t.Fatal(err)
	}
	if want := common.HexToHash("0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"); got != want {
		t.Fatalf("digest %s, want %s", got.Hex(), want.Hex())
	}
	sep, err := td.HashStruct("EIP712Domain", td.Domain.Map())
	if err != nil || common.BytesToHash(sep) != common.HexToHash("0xf2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f") {
		t.Fatalf("domain separator %x %v", sep, err)
	}
}

// deploySafe deploys Safe v1.4.1 (singleton, proxy factory, fallback
// handler, from the published artifacts) and a proxy set up with owners and
// threshold, as the Safe's own tooling does.
func deploySafe(t *testing.T, chain *evm.SimChain, owners []common.Address, threshold int64) (common.Address, *evm.Artifact) {
	t.Helper()
	ctx := context.Background()
	safeArt, factoryArt, handlerArt := evmtest.Artifact(t, "Safe"), evmtest.Artifact(t, "SafeProxyFactory"), evmtest.Artifact(t, "CompatibilityFallbackHandler")
	deploy := func(a *evm.Artifact) common.Address {
		addr, err := evm.Deploy(ctx, chain.Client, chain.Mine, chain.Deployer, a)
		if err != nil {
			t.Fatal(err)
		}
		return addr
	}
	singleton, factory, handler := deploy(safeArt), deploy(factoryArt), deploy(handlerArt)
	safe, err := evm.CreateSafe(ctx, chain.Client, chain.Mine, chain.Deployer, factoryArt, factory, safeArt, singleton, handler, owners, threshold, big.NewInt(1))
	if err != nil {
		t.Fatal(err)
	}
	return safe, safeArt
}

// TestSafeTxHashMatchesSafe: daoguard's SafeTx hash equals the deployed
// Safe's own getTransactionHash, for random transactions.
func TestSafeTxHashMatchesSafe(t *testing.T) {
	ctx := context.Background()
	chain := evmtest.Chain(t)
	var owners []common.Address
	for range 3 {
		k, _ := crypto.GenerateKey()
		owners = append(owners, crypto.PubkeyToAddress(k.PublicKey))
	}
	safe, safeArt := deploySafe(t, chain, owners, 2)
	out, err := evm.Call(ctx, chain.Client, safeArt, safe, "getOwners")
	if err != nil || len(out[0].([]common.Address)) != 3 {
		t.Fatalf("owners %v %v", out, err)
	}
	chainID, _ := chain.Client.ChainID(ctx)
	rng := rand.New(rand.NewPCG(7, 9))
	word := func(bits uint) *big.Int {
		b := make([]byte, bits/8)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return new(big.Int).SetBytes(b)
	}
	addr := func() common.Address {
		var a common.Address
		for i := range a {
			a[i] = byte(rng.UintN(256))
		}
		return a
	}
	for i := range 24 {
		data := make([]byte, rng.IntN(200))
		for j := range data {
			data[j] = byte(rng.UintN(256))
		}
		tx := &evm.SafeTx{To: addr(), Value: word(256), Data: data, Operation: uint8(rng.IntN(2)), SafeTxGas: word(64), BaseGas: word(32),
			GasPrice: word(128), GasToken: addr(), RefundReceiver: addr(), Nonce: big.NewInt(int64(rng.IntN(1000)))}
		if i == 0 { // the common case: zeros everywhere but to, value and data
			tx = &evm.SafeTx{To: addr(), Value: big.NewInt(1), Data: nil}
		}
		ours, err := tx.Hash(chainID, safe)
		if err != nil {
			t.Fatal(err)
		}
		nz := func(v *big.Int) *big.Int {
			if v == nil {
				return new(big.Int)
			}
			return v
		}
		out, err := evm.Call(ctx, chain.Client, safeArt, safe, "getTransactionHash", tx.To, nz(tx.Value), append([]byte{}, tx.Data...), tx.Operation,
			nz(tx.SafeTxGas), nz(tx.BaseGas), nz(tx.GasPrice), tx.GasToken, tx.RefundReceiver, nz(tx.Nonce))
		if err != nil {
			t.Fatal(err)
		}
		theirs := common.Hash(out[0].([32]byte))
		if ours != theirs {
			t.Fatalf("transaction %d: daoguard %s, the Safe %s", i, ours.Hex(), theirs.Hex())
		}
	}
}
