package evm

import (
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/common/math"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"
)

// SafeTx is a Safe transaction as its owners sign it (Safe v1.4.1).
type SafeTx struct {
	To             common.Address
	Value          *big.Int
	Data           []byte
	Operation      uint8 // 0 call, 1 delegatecall
	SafeTxGas      *big.Int
	BaseGas        *big.Int
	GasPrice       *big.Int
	GasToken       common.Address
	RefundReceiver common.Address
	Nonce          *big.Int
}

// safeTxTypes are Safe v1.4.1's EIP-712 types: its domain has no name and
// no version, only the chain and the Safe itself.
var safeTxTypes = apitypes.Types{
	"EIP712Domain": {
		{Name: "chainId", Type: "uint256"},
		{Name: "verifyingContract", Type: "address"},
	},
	"SafeTx": {
		{Name: "to", Type: "address"},
		{Name: "value", Type: "uint256"},
		{Name: "data", Type: "bytes"},
		{Name: "operation", Type: "uint8"},
		{Name: "safeTxGas", Type: "uint256"},
		{Name: "baseGas", Type: "uint256"},
		{Name: "gasPrice", Type: "uint256"},
		{Name: "gasToken", Type: "address"},
		{Name: "refundReceiver", Type: "address"},
		{Name: "nonce", Type: "uint256"},
	},
}

// TypedData returns the transaction as EIP-712 typed data for the Safe at
// safe on chain chainID: what an owner's wallet shows and signs.
func (t *SafeTx) TypedData(chainID *big.Int, safe common.Address) apitypes.TypedData {
	or0 := func(v *big.Int) *math.HexOrDecimal256 {
		if v == nil {
			return math.NewHexOrDecimal256(0)
		}
		return (*math.HexOrDecimal256)(new(big.Int).Set(v))
	}
	return apitypes.TypedData{
		Types:       safeTxTypes,
		PrimaryType: "SafeTx",
		Domain:      apitypes.TypedDataDomain{ChainId: or0(chainID), VerifyingContract: safe.Hex()},
		Message: apitypes.TypedDataMessage{
			"to":             t.To.Hex(),
			"value":          (*big.Int)(or0(t.Value)).String(),
			"data":           hexutil.Encode(t.Data),
			"operation":      fmt.Sprint(t.Operation),
			"safeTxGas":      (*big.Int)(or0(t.SafeTxGas)).String(),
			"baseGas":        (*big.Int)(or0(t.BaseGas)).String(),
			"gasPrice":       (*big.Int)(or0(t.GasPrice)).String(),
			"gasToken":       t.GasToken.Hex(),
			"refundReceiver": t.RefundReceiver.Hex(),
			"nonce":          (*big.Int)(or0(t.Nonce)).String(),
		},
	}
}

// Hash returns the SafeTx hash the owners sign: the EIP-712 digest
// keccak256(0x19 0x01 ‖ domainSeparator ‖ hashStruct(SafeTx)), the value
// the Safe's own getTransactionHash returns.
func (t *SafeTx) Hash(chainID *big.Int, safe common.Address) (common.Hash, error) {
	return TypedDataHash(t.TypedData(chainID, safe))
}

// TypedDataHash is the EIP-712 digest of typed data (go-ethereum's
// apitypes: the same code its signer uses).
func TypedDataHash(td apitypes.TypedData) (common.Hash, error) {
	h, _, err := apitypes.TypedDataAndHash(td)
	if err != nil {
		return common.Hash{}, err
	}
	return common.BytesToHash(h), nil
}

// PackMultiSend encodes calls as Safe's multiSend(bytes) calldata: each
// call packed as operation (1 byte), to (20), value (32), data length (32)
// and data. A Safe runs the batch by delegatecall to MultiSend, or to
// MultiSendCallOnly, which refuses delegatecalls inside it.
func PackMultiSend(calls ...TxCall) []byte {
	var packed []byte
	for _, c := range calls {
		packed = append(packed, c.Operation)
		packed = append(packed, c.To.Bytes()...)
		v := new(big.Int)
		if c.Value != nil {
			v = c.Value
		}
		packed = append(packed, common.LeftPadBytes(v.Bytes(), 32)...)
		packed = append(packed, common.LeftPadBytes(new(big.Int).SetInt64(int64(len(c.Data))).Bytes(), 32)...)
		packed = append(packed, c.Data...)
	}
	// multiSend(bytes): the selector, the offset of the bytes (32), their
	// length, and the bytes padded to a whole word.
	out := append([]byte{}, multiSendSelector...)
	out = append(out, common.LeftPadBytes([]byte{32}, 32)...)
	out = append(out, common.LeftPadBytes(new(big.Int).SetInt64(int64(len(packed))).Bytes(), 32)...)
	out = append(out, packed...)
	return append(out, make([]byte, (32-len(packed)%32)%32)...)
}

// multiSendSelector is keccak256("multiSend(bytes)")[:4].
var multiSendSelector = []byte{0x8d, 0x80, 0xff, 0x0a}
