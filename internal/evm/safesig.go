package evm

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"fmt"
	"math/big"
	"slices"

	"github.com/daoguard/daoguard"
	ethereum "github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"
)

// OwnerSignature is one Safe owner's ECDSA signature over a SafeTx hash:
// r ‖ s ‖ v, 65 bytes, v 27 or 28 (the form the Safe checks with ecrecover).
type OwnerSignature struct {
	Owner common.Address // who the signature claims to be from
	Sig   []byte
}

// secp256k1N/2: a signature with a larger s has a twin (n−s, flipped v)
// over the same hash; only the lower one is accepted, so one owner's
// approval has one encoding.
var secp256k1HalfN = new(big.Int).Rsh(crypto.S256().Params().N, 1)

// SignSafeTx signs a SafeTx hash as an owner (the EIP-712 signature a
// wallet makes, v as 27/28).
func SignSafeTx(hash common.Hash, key *ecdsa.PrivateKey) ([]byte, error) {
	sig, err := crypto.Sign(hash[:], key)
	if err != nil {
		return nil, err
	}
	sig[64] += 27
	return sig, nil
}

// VerifyOwnerSignature checks that s is a well-formed signature of hash by
// s.Owner, and that s.Owner is among owners.
//
// Errors: OWNER_SIGNATURE_INVALID, NOT_SAFE_OWNER.
func VerifyOwnerSignature(hash common.Hash, s OwnerSignature, owners []common.Address) error {
	signer, err := RecoverOwner(hash, s.Sig)
	if err != nil {
		return daoguard.Errorf(daoguard.CodeOwnerSignature, "%s: %s", s.Owner.Hex(), daoguard.ErrorMessage(err))
	}
	if signer != s.Owner {
		return daoguard.Errorf(daoguard.CodeOwnerSignature, "the signature said to be %s's does not sign this Safe transaction (it recovers to %s)", s.Owner.Hex(), signer.Hex())
	}
	if !slices.Contains(owners, s.Owner) {
		return daoguard.Errorf(daoguard.CodeNotSafeOwner, "%s is not an owner of the Safe", s.Owner.Hex())
	}
	return nil
}

// RecoverOwner returns who signed hash with sig: 65 bytes r‖s‖v, v 27 or
// 28, s in the lower half (its high-s twin is refused, so one owner's
// approval has one encoding).
//
// Errors: OWNER_SIGNATURE_INVALID.
func RecoverOwner(hash common.Hash, sig []byte) (common.Address, error) {
	if len(sig) != 65 || (sig[64] != 27 && sig[64] != 28) {
		return common.Address{}, daoguard.Errorf(daoguard.CodeOwnerSignature, "the signature is not 65 bytes r‖s‖v with v 27 or 28")
	}
	if new(big.Int).SetBytes(sig[32:64]).Cmp(secp256k1HalfN) > 0 {
		return common.Address{}, daoguard.Errorf(daoguard.CodeOwnerSignature, "the signature has a high s (a malleated twin)")
	}
	rsv := slices.Clone(sig)
	rsv[64] -= 27
	pub, err := crypto.SigToPub(hash[:], rsv)
	if err != nil {
		return common.Address{}, daoguard.Errorf(daoguard.CodeOwnerSignature, "the signature does not recover: %v", err)
	}
	return crypto.PubkeyToAddress(*pub), nil
}

// PackSafeSignatures checks every signature against hash and the Safe's
// current owners, refuses a second signature of one owner, and requires at
// least threshold of them; it returns them as execTransaction takes them:
// concatenated in ascending order of owner address (the Safe walks them
// in that order and rejects any other).
//
// Errors: OWNER_SIGNATURE_INVALID, NOT_SAFE_OWNER, DUPLICATE_OWNER_SIGNATURE,
// THRESHOLD_NOT_MET.
func PackSafeSignatures(hash common.Hash, sigs []OwnerSignature, owners []common.Address, threshold int) ([]byte, error) {
	seen := map[common.Address]bool{}
	ok := make([]OwnerSignature, 0, len(sigs))
	for _, s := range sigs {
		if seen[s.Owner] {
			return nil, daoguard.Errorf(daoguard.CodeDuplicateSignature, "%s signed twice", s.Owner.Hex())
		}
		seen[s.Owner] = true
		if err := VerifyOwnerSignature(hash, s, owners); err != nil {
			return nil, err
		}
		ok = append(ok, s)
	}
	if threshold < 1 || len(ok) < threshold {
		return nil, daoguard.Errorf(daoguard.CodeThresholdNotMet, "%d owner signature(s); the Safe needs %d", len(ok), threshold)
	}
	slices.SortFunc(ok, func(a, b OwnerSignature) int { return bytes.Compare(a.Owner[:], b.Owner[:]) })
	out := make([]byte, 0, 65*len(ok))
	for _, s := range ok {
		out = append(out, s.Sig...)
	}
	return out, nil
}

// SafeOwners reads a Safe's current owners and threshold at the latest
// block: signatures are checked against these, right before broadcast.
func SafeOwners(ctx context.Context, c ethereum.ContractCaller, safe *Artifact, at common.Address) ([]common.Address, int, error) {
	out, err := Call(ctx, c, safe, at, "getOwners")
	if err != nil {
		return nil, 0, fmt.Errorf("getOwners: %w", err)
	}
	owners, _ := out[0].([]common.Address)
	out, err = Call(ctx, c, safe, at, "getThreshold")
	if err != nil {
		return nil, 0, fmt.Errorf("getThreshold: %w", err)
	}
	th, _ := out[0].(*big.Int)
	if th == nil || !th.IsInt64() || len(owners) == 0 {
		return nil, 0, fmt.Errorf("not a set-up Safe: owners %v, threshold %v", owners, out[0])
	}
	return owners, int(th.Int64()), nil
}

// SafeApprovals checks the EIP-712 signature an approver gives with an
// approval of a Safe action (service.OwnerSignatures).
type SafeApprovals struct {
	Eth  Client
	safe *Artifact
}

// NewSafeApprovals returns a checker over a node.
func NewSafeApprovals(eth Client) (*SafeApprovals, error) {
	safe, err := LoadArtifact("Safe")
	if err != nil {
		return nil, err
	}
	return &SafeApprovals{Eth: eth, safe: safe}, nil
}

// Owner returns who signed the action's Safe transaction with sig (hex).
// Errors: OWNER_SIGNATURE_INVALID.
func (s *SafeApprovals) Owner(a *daoguard.Action, sig string) (string, error) {
	b, err := hexutil.Decode(sig)
	if err != nil {
		return "", daoguard.FieldError(daoguard.CodeOwnerSignature, "signature", "the signature is not 0x-prefixed hex")
	}
	owner, err := RecoverOwner(common.HexToHash(a.Decoded.SafeTx.Hash), b)
	if err != nil {
		return "", err
	}
	return owner.Hex(), nil
}

// IsOwner checks owner against the Safe's current owners.
// Errors: NOT_SAFE_OWNER.
func (s *SafeApprovals) IsOwner(ctx context.Context, a *daoguard.Action, owner string) error {
	owners, _, err := SafeOwners(ctx, s.Eth, s.safe, common.HexToAddress(a.Decoded.SafeTx.Safe))
	if err != nil {
		return err
	}
	if !slices.Contains(owners, common.HexToAddress(owner)) {
		return daoguard.Errorf(daoguard.CodeNotSafeOwner, "%s, who signed, is not an owner of the Safe %s", owner, a.Decoded.SafeTx.Safe)
	}
	return nil
}
