package evm_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"math/big"
	"slices"
	"testing"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/evm"
	"github.com/daoguard/daoguard/internal/evm/evmtest"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// TestSafeSignatures: owners' EIP-712 signatures are checked against the
// Safe's current owners before anything is broadcast — a signature over
// another transaction, a second one of the same owner, a non-owner's, a
// malleated twin, or too few are refused with their codes — and the ones
// that pass, packed in the order the Safe requires, execute a transfer.
func TestSafeSignatures(t *testing.T) {
	ctx := context.Background()
	chain := evmtest.Chain(t)
	keys := make([]*ecdsa.PrivateKey, 3)
	owners := make([]common.Address, 3)
	for i := range keys {
		keys[i], _ = crypto.GenerateKey()
		owners[i] = crypto.PubkeyToAddress(keys[i].PublicKey)
	}
	safe, safeArt := deploySafe(t, chain, owners, 2)
	eth := new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)
	if _, err := evm.Transact(ctx, chain.Client, chain.Mine, chain.Deployer, &safe, new(big.Int).Mul(big.NewInt(5), eth), nil); err != nil {
		t.Fatal(err)
	}
	gotOwners, threshold, err := evm.SafeOwners(ctx, chain.Client, safeArt, safe)
	if err != nil || threshold != 2 || len(gotOwners) != 3 {
		t.Fatalf("owners %v threshold %d: %v", gotOwners, threshold, err)
	}
	chainID, _ := chain.Client.ChainID(ctx)
	recipient := common.HexToAddress("0x00000000000000000000000000000000000b0b00")
	tx := &evm.SafeTx{To: recipient, Value: eth, Nonce: new(big.Int)}
	hash, err := tx.Hash(chainID, safe)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(i int, h common.Hash) evm.OwnerSignature {
		sig, err := evm.SignSafeTx(h, keys[i])
		if err != nil {
			t.Fatal(err)
		}
		return evm.OwnerSignature{Owner: owners[i], Sig: sig}
	}
	other, _ := (&evm.SafeTx{To: recipient, Value: eth, Nonce: big.NewInt(1)}).Hash(chainID, safe)
	stranger, _ := crypto.GenerateKey()
	strangerSig, _ := evm.SignSafeTx(hash, stranger)
	twin := sign(0, hash)
	// (r, n−s, v flipped) recovers to the same owner over the same hash.
	s := new(big.Int).Sub(crypto.S256().Params().N, new(big.Int).SetBytes(twin.Sig[32:64]))
	twin.Sig = append(append(append([]byte{}, twin.Sig[:32]...), common.LeftPadBytes(s.Bytes(), 32)...), 27+28-twin.Sig[64])
	for _, tc := range []struct {
		name string
		sigs []evm.OwnerSignature
		code daoguard.Code
	}{
		{"ErrOtherTransaction", []evm.OwnerSignature{sign(0, other), sign(1, hash)}, daoguard.CodeOwnerSignature},
		{"ErrDuplicate", []evm.OwnerSignature{sign(0, hash), sign(0, hash)}, daoguard.CodeDuplicateSignature},
		{"ErrNotOwner", []evm.OwnerSignature{sign(0, hash), {Owner: crypto.PubkeyToAddress(stranger.PublicKey), Sig: strangerSig}}, daoguard.CodeNotSafeOwner},
		{"ErrClaimsAnotherOwner", []evm.OwnerSignature{sign(0, hash), {Owner: owners[2], Sig: sign(1, hash).Sig}}, daoguard.CodeOwnerSignature},
		{"ErrHighS", []evm.OwnerSignature{twin, sign(1, hash)}, daoguard.CodeOwnerSignature},
		{"ErrTruncated", []evm.OwnerSignature{sign(0, hash), {Owner: owners[1], Sig: sign(1, hash).Sig[:64]}}, daoguard.CodeOwnerSignature},
		{"ErrBelowThreshold", []evm.OwnerSignature{sign(2, hash)}, daoguard.CodeThresholdNotMet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := evm.PackSafeSignatures(hash, tc.sigs, gotOwners, threshold); daoguard.ErrorCode(err) != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
	// Given highest owner first; packed lowest first, as the Safe demands.
	sigs := []evm.OwnerSignature{sign(0, hash), sign(2, hash)}
	slices.SortFunc(sigs, func(a, b evm.OwnerSignature) int { return -bytes.Compare(a.Owner[:], b.Owner[:]) })
	packed, err := evm.PackSafeSignatures(hash, sigs, gotOwners, threshold)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(sigBytes []byte) error {
		_, err := evm.Send(ctx, chain.Client, chain.Mine, chain.Deployer, safeArt, safe, "execTransaction",
			tx.To, tx.Value, []byte{}, uint8(0), new(big.Int), new(big.Int), new(big.Int), common.Address{}, common.Address{}, sigBytes)
		return err
	}
	// The same two signatures unsorted: the Safe itself refuses them.
	unsorted := append(append([]byte{}, sigs[0].Sig...), sigs[1].Sig...)
	if err := exec(unsorted); err == nil {
		t.Fatal("the Safe accepted signatures out of owner order")
	}
	if err := exec(packed); err != nil {
		t.Fatal(err)
	}
	if bal, _ := chain.Client.BalanceAt(ctx, recipient, nil); bal.Cmp(eth) != 0 {
		t.Fatalf("recipient holds %s wei", bal)
	}
	if out, _ := evm.Call(ctx, chain.Client, safeArt, safe, "nonce"); out[0].(*big.Int).Int64() != 1 {
		t.Fatalf("Safe nonce %v", out[0])
	}
}
