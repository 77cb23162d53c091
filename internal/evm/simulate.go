package evm

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/policy"
	ethereum "github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rpc"
)

// erc1967ImplSlot is bytes32(uint256(keccak256("eip1967.proxy.implementation")) - 1):
// where an ERC-1967 proxy keeps the address of the code it runs.
var erc1967ImplSlot = common.HexToHash("0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc")

// probeAddress is where a Safe's simulation places the probe's code with a
// state override; the Safe delegatecalls it. No key or code exists there
// on any chain, and the override lasts for one eth_call.
var probeAddress = common.HexToAddress("0x00000000000000000000000000000000da09a4d0")

// TxCall is one EVM call an account makes.
type TxCall struct {
	To        common.Address
	Value     *big.Int
	Data      []byte
	Operation uint8 // 0 call, 1 delegatecall (Safe only)
}

// CallOf is the call an action makes from its account: a native transfer
// sends value, a token transfer calls transfer(to, amount) on the token,
// and a call is what it says.
func CallOf(d *daoguard.Decoded) (TxCall, error) {
	if !common.IsHexAddress(d.To) {
		return TxCall{}, fmt.Errorf("action target %q is not an address", d.To)
	}
	to := common.HexToAddress(d.To)
	switch d.Kind {
	case daoguard.KindTransfer:
		if d.Token == "" {
			return TxCall{To: to, Value: new(big.Int).Set(d.Amount.Int())}, nil
		}
		data := make([]byte, 4+64)
		copy(data, []byte{0xa9, 0x05, 0x9c, 0xbb}) // transfer(address,uint256)
		copy(data[4+12:], to.Bytes())
		if d.Amount.Int().BitLen() > 256 {
			return TxCall{}, fmt.Errorf("amount does not fit in 256 bits")
		}
		d.Amount.Int().FillBytes(data[4+32:])
		return TxCall{To: common.HexToAddress(d.Token), Value: new(big.Int), Data: data}, nil
	case daoguard.KindCall:
		c := TxCall{To: to, Value: new(big.Int), Data: d.Data}
		if d.Value != nil {
			c.Value.Set(d.Value.Int())
		}
		if d.Operation == daoguard.OpDelegateCall {
			c.Operation = 1
		}
		return c, nil
	}
	return TxCall{}, fmt.Errorf("a %s action makes no call", d.Kind)
}

// Simulator runs actions with eth_call, as their account would run them,
// and reports what they change. It needs a node that accepts eth_call state
// overrides (geth and its simulated backend, ganache, anvil, erigon, reth,
// Nethermind): the probe's code is placed for the one call, never deployed.
type Simulator struct {
	Eth   Client
	RPC   *rpc.Client
	probe *Artifact
	safe  *Artifact
}

// NewSimulator returns a Simulator over a node.
func NewSimulator(eth Client, rpcc *rpc.Client) (*Simulator, error) {
	probe, err := LoadArtifact("DaoguardProbe")
	if err != nil {
		return nil, err
	}
	safe, err := LoadArtifact("Safe")
	if err != nil {
		return nil, err
	}
	return &Simulator{Eth: eth, RPC: rpcc, probe: probe, safe: safe}, nil
}

// RPCOf returns the raw JSON-RPC client under an ethclient (or the
// simulated chain's client), for calls ethclient has no method for.
func RPCOf(c Client) (*rpc.Client, bool) {
	r, ok := c.(interface{ Client() *rpc.Client })
	if !ok {
		return nil, false
	}
	return r.Client(), true
}

// Simulate runs a transfer or call action at the latest block. For a Safe
// account it also returns the Safe transaction the owners sign, with the
// Safe's nonce at that block. An error means the simulation could not run;
// a transaction that reverts is a Simulation with Success false.
func (s *Simulator) Simulate(ctx context.Context, d *daoguard.Decoded, assets []*daoguard.Asset) (*daoguard.Simulation, *daoguard.SafeTxRef, error) {
	call, err := CallOf(d)
	if err != nil {
		return nil, nil, err
	}
	if !common.IsHexAddress(d.From) {
		return nil, nil, fmt.Errorf("account address %q is not an address", d.From)
	}
	account := common.HexToAddress(d.From)
	targets, approvals, err := policy.Touches(d, policy.NewCatalog(assets))
	if err != nil {
		return nil, nil, err
	}
	// What to watch: the native coin and every catalogue token on the
	// account's chain, in symbol order.
	var native *daoguard.Asset
	var tokens []*daoguard.Asset
	for _, a := range assets {
		switch {
		case a.ChainID != d.ChainID:
		case a.Native():
			native = a
		case common.IsHexAddress(a.Address):
			tokens = append(tokens, a)
		}
	}
	slices.SortFunc(tokens, func(a, b *daoguard.Asset) int { return strings.Compare(a.Symbol, b.Symbol) })
	tokenAddrs := make([]common.Address, len(tokens))
	for i, t := range tokens {
		tokenAddrs[i] = common.HexToAddress(t.Address)
	}
	var allowTokens, spenders []common.Address
	for _, p := range approvals {
		allowTokens, spenders = append(allowTokens, common.HexToAddress(p[0])), append(spenders, common.HexToAddress(p[1]))
	}

	block, err := s.Eth.BlockNumber(ctx)
	if err != nil {
		return nil, nil, err
	}
	at := new(big.Int).SetUint64(block)
	input, err := s.probe.ABI.Pack("probe", call.To, call.Value, call.Data, call.Operation, tokenAddrs, allowTokens, spenders)
	if err != nil {
		return nil, nil, err
	}
	var out []byte
	if d.AccountKind == daoguard.AccountSafe {
		// The Safe runs the probe with delegatecall, in its own context,
		// and reverts with (success, length, returndata): Safe v1.4.1's
		// StorageAccessible.simulateAndRevert.
		payload, err := s.safe.ABI.Pack("simulateAndRevert", probeAddress, input)
		if err != nil {
			return nil, nil, err
		}
		_, err = s.ethCall(ctx, account, payload, block, probeAddress)
		data, reverted := revertData(err)
		if !reverted {
			if err == nil {
				err = errors.New("the Safe did not revert from simulateAndRevert: is the account a Safe v1.4.1?")
			}
			return nil, nil, err
		}
		if len(data) < 64 || new(big.Int).SetBytes(data[:32]).Cmp(big.NewInt(1)) != 0 {
			return nil, nil, fmt.Errorf("the probe failed inside the Safe: %s", revertReason(data[min(len(data), 64):]))
		}
		out = data[64:]
	} else {
		// A wallet has no code: the probe's code takes its place for the call.
		if out, err = s.ethCall(ctx, account, input, block, account); err != nil {
			return nil, nil, err
		}
	}
	res, err := s.probe.ABI.Unpack("probe", out)
	if err != nil || len(res) != 5 {
		return nil, nil, fmt.Errorf("probe output: %v", err)
	}
	success, _ := res[0].(bool)
	ret, _ := res[1].([]byte)
	before, _ := res[2].([]*big.Int)
	after, _ := res[3].([]*big.Int)
	allowances, _ := res[4].([]*big.Int)
	if len(before) != len(tokens)+1 || len(after) != len(before) || len(allowances) != len(spenders) {
		return nil, nil, errors.New("probe output has the wrong shape")
	}
	sim := &daoguard.Simulation{Block: block, Success: success}
	if !success {
		sim.Revert = revertReason(ret)
	}
	change := func(a *daoguard.Asset, token string, b, f *big.Int) {
		if b.Cmp(f) != 0 {
			sim.Changes = append(sim.Changes, daoguard.BalanceChange{Asset: a.Symbol, Token: token, Before: daoguard.NewBigInt(b), After: daoguard.NewBigInt(f)})
		}
	}
	if native != nil {
		change(native, "", before[0], after[0])
	}
	for i, t := range tokens {
		change(t, strings.ToLower(t.Address), before[i+1], after[i+1])
	}
	cat := policy.NewCatalog(assets)
	for i := range spenders {
		al := daoguard.Allowance{Token: approvals[i][0], Spender: approvals[i][1], Amount: daoguard.NewBigInt(allowances[i])}
		if a, ok := cat.ByAddress(approvals[i][0]); ok {
			al.Asset = a.Symbol
		}
		sim.Allowances = append(sim.Allowances, al)
	}
	if sim.Code, err = s.BindCode(ctx, targets, at); err != nil {
		return nil, nil, err
	}
	var ref *daoguard.SafeTxRef
	if d.AccountKind == daoguard.AccountSafe {
		if ref, err = s.safeTx(ctx, account, call, at); err != nil {
			return nil, nil, err
		}
	}
	return sim, ref, nil
}

// BindCode reads the code at each address, and the implementation of an
// ERC-1967 proxy, at block at (nil: the latest).
func (s *Simulator) BindCode(ctx context.Context, addrs []string, at *big.Int) ([]daoguard.CodeBinding, error) {
	var out []daoguard.CodeBinding
	for _, a := range addrs {
		addr := common.HexToAddress(a)
		code, err := s.Eth.CodeAt(ctx, addr, at)
		if err != nil {
			return nil, err
		}
		b := daoguard.CodeBinding{Address: strings.ToLower(a), CodeHash: crypto.Keccak256Hash(code).Hex()}
		if len(code) > 0 {
			slot, err := s.Eth.StorageAt(ctx, addr, erc1967ImplSlot, at)
			if err != nil {
				return nil, err
			}
			if impl := common.BytesToAddress(slot); impl != (common.Address{}) {
				icode, err := s.Eth.CodeAt(ctx, impl, at)
				if err != nil {
					return nil, err
				}
				b.Implementation, b.ImplementationCodeHash = strings.ToLower(impl.Hex()), crypto.Keccak256Hash(icode).Hex()
			}
		}
		out = append(out, b)
	}
	return out, nil
}

// safeTx is the Safe transaction for call with the Safe's nonce at block at.
func (s *Simulator) safeTx(ctx context.Context, safe common.Address, call TxCall, at *big.Int) (*daoguard.SafeTxRef, error) {
	nonce, err := SafeNonce(ctx, s.Eth, s.safe, safe, at)
	if err != nil {
		return nil, err
	}
	chainID, err := s.Eth.ChainID(ctx)
	if err != nil {
		return nil, err
	}
	tx := &SafeTx{To: call.To, Value: call.Value, Data: call.Data, Operation: call.Operation, Nonce: new(big.Int).SetUint64(nonce)}
	h, err := tx.Hash(chainID, safe)
	if err != nil {
		return nil, err
	}
	return &daoguard.SafeTxRef{Safe: strings.ToLower(safe.Hex()), Nonce: nonce, Hash: h.Hex()}, nil
}

// ethCall runs eth_call to `to` at block with the probe's code placed at
// codeAt for this call only.
func (s *Simulator) ethCall(ctx context.Context, to common.Address, data []byte, block uint64, codeAt common.Address) ([]byte, error) {
	var out hexutil.Bytes
	msg := map[string]any{"to": to, "data": hexutil.Bytes(data)}
	override := map[common.Address]map[string]any{codeAt: {"code": hexutil.Bytes(s.probe.Runtime)}}
	err := s.RPC.CallContext(ctx, &out, "eth_call", msg, hexutil.EncodeUint64(block), override)
	return out, err
}

// revertData returns the data of a reverted eth_call.
func revertData(err error) ([]byte, bool) {
	var de rpc.DataError
	if err == nil || !errors.As(err, &de) {
		return nil, false
	}
	s, ok := de.ErrorData().(string)
	if !ok {
		return nil, false
	}
	b, err := hexutil.Decode(s)
	return b, err == nil
}

// revertReason renders revert data: Error(string) and Panic(uint256) as
// Solidity defines them, anything else (a custom error) as hex.
func revertReason(data []byte) string {
	if len(data) == 0 {
		return "reverted without a reason"
	}
	if r, err := abi.UnpackRevert(data); err == nil {
		return r
	}
	return "reverted with data " + hexutil.Encode(data[:min(len(data), 68)])
}

// SafeNonce reads the Safe's nonce at block at (nil: latest).
func SafeNonce(ctx context.Context, c Client, safe *Artifact, at common.Address, block *big.Int) (uint64, error) {
	data, _ := safe.ABI.Pack("nonce")
	out, err := c.CallContract(ctx, callMsg(at, data), block)
	if err != nil {
		return 0, fmt.Errorf("the Safe nonce: %w", err)
	}
	v, err := safe.ABI.Unpack("nonce", out)
	if err != nil || len(v) != 1 {
		return 0, fmt.Errorf("the Safe nonce: %v (is %s a Safe?)", err, at.Hex())
	}
	n, _ := v[0].(*big.Int)
	if n == nil || !n.IsUint64() {
		return 0, fmt.Errorf("the Safe nonce is out of range")
	}
	return n.Uint64(), nil
}

func callMsg(to common.Address, data []byte) ethereum.CallMsg {
	return ethereum.CallMsg{To: &to, Data: data}
}
