package policy

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strings"

	"github.com/daoguard/daoguard"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
)

// ContractABI is a configured contract: its name, address and JSON ABI
// (a solc/Etherscan ABI array, or a Hardhat/Foundry artifact with an "abi"
// member).
type ContractABI struct {
	Name    string
	Address string
	ABI     []byte
}

// Registry is the ABIs calls are decoded with: each configured contract's
// own at its address, and the standard interfaces policy knows (ERC-20,
// ERC-721, ERC-1155, Safe, MultiSend, the permit family) at any address.
// Decoding is exact: the arguments must re-encode to the very calldata, so
// that nothing trails or hides behind what approvers are shown. A nil
// *Registry is the standard interfaces only.
type Registry struct {
	byAddress map[string]*registered // lower-case address
}

type registered struct {
	name string
	abi  *abi.ABI
}

// standardFunctions are the functions decoded at any address, with their
// parameters' names, in the order their standards define them. Where two
// standards share a selector (ERC-20's and ERC-721's approve), the first
// one's names are shown.
var standardFunctions = []struct{ standard, sig string }{
	{"ERC-20", "transfer(address to,uint256 amount)"},
	{"ERC-20", "transferFrom(address from,address to,uint256 amount)"},
	{"ERC-20", "approve(address spender,uint256 amount)"},
	{"ERC-20", "increaseAllowance(address spender,uint256 addedValue)"},
	{"ERC-20", "decreaseAllowance(address spender,uint256 subtractedValue)"},
	{"ERC-20", "increaseApproval(address spender,uint256 addedValue)"},
	{"ERC-20", "permit(address owner,address spender,uint256 value,uint256 deadline,uint8 v,bytes32 r,bytes32 s)"},
	{"ERC-677", "transferAndCall(address to,uint256 value,bytes data)"},
	{"ERC-777", "send(address recipient,uint256 amount,bytes data)"},
	{"ERC-777", "authorizeOperator(address operator)"},
	{"DAI", "push(address usr,uint256 wad)"},
	{"DAI", "move(address src,address dst,uint256 wad)"},
	{"ERC-721", "safeTransferFrom(address from,address to,uint256 tokenId)"},
	{"ERC-721", "safeTransferFrom(address from,address to,uint256 tokenId,bytes data)"},
	{"ERC-721", "setApprovalForAll(address operator,bool approved)"},
	{"ERC-1155", "safeTransferFrom(address from,address to,uint256 id,uint256 value,bytes data)"},
	{"ERC-1155", "safeBatchTransferFrom(address from,address to,uint256[] ids,uint256[] values,bytes data)"},
	{"Safe", "addOwnerWithThreshold(address owner,uint256 _threshold)"},
	{"Safe", "removeOwner(address prevOwner,address owner,uint256 _threshold)"},
	{"Safe", "swapOwner(address prevOwner,address oldOwner,address newOwner)"},
	{"Safe", "changeThreshold(uint256 _threshold)"},
	{"Safe", "enableModule(address module)"},
	{"Safe", "disableModule(address prevModule,address module)"},
	{"Safe", "setGuard(address guard)"},
	{"Safe", "setModuleGuard(address moduleGuard)"},
	{"Safe", "setFallbackHandler(address handler)"},
	{"Safe", "approveHash(bytes32 hashToApprove)"},
	{"Safe", "execTransaction(address to,uint256 value,bytes data,uint8 operation,uint256 safeTxGas,uint256 baseGas,uint256 gasPrice,address gasToken,address refundReceiver,bytes signatures)"},
	{"MultiSend", "multiSend(bytes transactions)"},
}

// standard maps a selector to its standard function.
var standard = func() map[[4]byte]*registered {
	out := map[[4]byte]*registered{}
	for _, f := range standardFunctions {
		a, err := abi.JSON(strings.NewReader(signatureJSON(f.sig)))
		if err != nil {
			panic(fmt.Sprintf("standard function %s: %v", f.sig, err))
		}
		for _, m := range a.Methods {
			if _, dup := out[[4]byte(m.ID)]; !dup {
				out[[4]byte(m.ID)] = &registered{name: f.standard, abi: &a}
			}
		}
	}
	return out
}()

// signatureJSON turns "name(type a,type b)" (no tuples) into a one-function
// JSON ABI.
func signatureJSON(sig string) string {
	name, params, _ := strings.Cut(strings.TrimSuffix(sig, ")"), "(")
	type arg struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	inputs := []arg{}
	for p := range strings.SplitSeq(params, ",") {
		typ, n, _ := strings.Cut(p, " ")
		inputs = append(inputs, arg{Name: n, Type: typ})
	}
	b, _ := json.Marshal([]any{map[string]any{"type": "function", "name": name, "inputs": inputs, "outputs": []arg{}, "stateMutability": "nonpayable"}})
	return string(b)
}

// NewRegistry indexes the configured contracts. Each needs a name, a
// 20-byte hex address (one contract per address) and an ABI with at least
// one function.
func NewRegistry(cs []ContractABI) (*Registry, error) {
	r := &Registry{byAddress: map[string]*registered{}}
	for i, c := range cs {
		where := fmt.Sprintf("contracts[%d]", i)
		if c.Name == "" {
			return nil, fmt.Errorf("%s: a contract needs a name", where)
		}
		where = fmt.Sprintf("contracts[%d] (%s)", i, c.Name)
		if !common.IsHexAddress(c.Address) || !strings.HasPrefix(c.Address, "0x") {
			return nil, fmt.Errorf("%s: address %q is not a 0x-prefixed 20-byte hex address", where, c.Address)
		}
		addr := strings.ToLower(c.Address)
		if _, dup := r.byAddress[addr]; dup {
			return nil, fmt.Errorf("%s: address %s is configured twice", where, c.Address)
		}
		a, err := parseABI(c.ABI)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		r.byAddress[addr] = &registered{name: c.Name, abi: a}
	}
	return r, nil
}

// parseABI reads a JSON ABI, bare or inside an artifact's "abi" member.
func parseABI(b []byte) (*abi.ABI, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var art struct {
			ABI json.RawMessage `json:"abi"`
		}
		if err := json.Unmarshal(b, &art); err != nil || len(art.ABI) == 0 {
			return nil, errors.New("the ABI is neither a JSON array nor an artifact with an \"abi\" member")
		}
		b = art.ABI
	}
	a, err := abi.JSON(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("the ABI does not parse: %v", err)
	}
	if len(a.Methods) == 0 {
		return nil, errors.New("the ABI has no functions")
	}
	return &a, nil
}

// Len is the number of configured contracts.
func (r *Registry) Len() int {
	if r == nil {
		return 0
	}
	return len(r.byAddress)
}

// decode decodes calldata to target: the contract's name, the function and
// its arguments. ok is false for calldata that no known ABI decodes
// exactly (opaque); empty calldata decodes to nothing, and is not opaque.
func (r *Registry) decode(target string, data []byte) (name string, m *abi.Method, args []any, ok bool) {
	if len(data) == 0 {
		return "", nil, nil, true
	}
	if len(data) < 4 {
		return "", nil, nil, false
	}
	sel := [4]byte(data[:4])
	var reg *registered
	if r != nil {
		if c := r.byAddress[strings.ToLower(target)]; c != nil {
			if _, err := c.abi.MethodById(sel[:]); err == nil {
				reg = c
			}
		}
	}
	if reg == nil {
		if reg = standard[sel]; reg == nil {
			return "", nil, nil, false
		}
	}
	m, err := reg.abi.MethodById(sel[:])
	if err != nil {
		return "", nil, nil, false
	}
	args, err = m.Inputs.Unpack(data[4:])
	if err != nil {
		return "", nil, nil, false
	}
	// Exact: what was decoded must be all the calldata says.
	if again, err := m.Inputs.Pack(args...); err != nil || !bytes.Equal(again, data[4:]) {
		return "", nil, nil, false
	}
	return reg.name, m, args, true
}

// opaque reports whether an item's calldata is beyond every known ABI.
func (r *Registry) opaque(it *item) bool {
	_, _, _, ok := r.decode(it.Target, it.Data)
	return !ok
}

// DescribeCalls decodes the calls a call action makes (the action, then
// each transaction of a MultiSend batch) for its approvers. A catalogue
// token is named by its symbol. Calldata the policy cannot take apart (a
// malformed batch) gives nil: the decision says why.
func DescribeCalls(d *daoguard.Decoded, cat *Catalog, r *Registry) []daoguard.Call {
	if d.Kind != daoguard.KindCall {
		return nil
	}
	its, err := items(d, cat)
	if err != nil {
		return nil
	}
	out := make([]daoguard.Call, 0, len(its))
	for i := range its {
		it := &its[i]
		c := daoguard.Call{Target: it.Target, Operation: it.Operation, Batched: it.InBatch}
		if it.Value != nil && it.Value.Sign() > 0 {
			c.Value = daoguard.NewBigInt(it.Value)
		}
		if len(it.Data) >= 4 {
			c.Selector = "0x" + hex.EncodeToString(it.Data[:4])
		}
		name, m, args, ok := r.decode(it.Target, it.Data)
		c.Opaque = !ok
		if m != nil {
			c.Contract, c.Function = name, m.Sig
			if t, ok := cat.ByAddress(it.Target); ok {
				c.Contract = t.Symbol + " (" + name + ")"
			}
			for j, in := range m.Inputs {
				c.Args = append(c.Args, daoguard.CallArg{Name: in.Name, Type: in.Type.String(), Value: argText(args[j])})
			}
		}
		out = append(out, c)
	}
	return out
}

// maxArgBytes bounds how much of a bytes argument is shown; the full
// calldata is in decoded.data (and a MultiSend's transactions follow as
// calls of their own).
const maxArgBytes = 64

// argText renders a decoded value: addresses EIP-55, integers in decimal,
// bytes in hex, arrays in [ ], tuples in ( ).
func argText(v any) string {
	switch x := v.(type) {
	case common.Address:
		return x.Hex()
	case *big.Int:
		return x.String()
	case []byte:
		if len(x) > maxArgBytes {
			return fmt.Sprintf("0x%s… (%d bytes)", hex.EncodeToString(x[:maxArgBytes]), len(x))
		}
		return "0x" + hex.EncodeToString(x)
	case string:
		return fmt.Sprintf("%q", x)
	case bool:
		return fmt.Sprint(x)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Array:
		if rv.Type().Elem().Kind() == reflect.Uint8 { // bytesN
			b := make([]byte, rv.Len())
			reflect.Copy(reflect.ValueOf(b), rv)
			return "0x" + hex.EncodeToString(b)
		}
		fallthrough
	case reflect.Slice:
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = argText(rv.Index(i).Interface())
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case reflect.Struct:
		parts := make([]string, rv.NumField())
		for i := range parts {
			parts[i] = argText(rv.Field(i).Interface())
		}
		return "(" + strings.Join(parts, ", ") + ")"
	}
	return fmt.Sprint(v) // small integers (uint8 … uint64, int8 … int64)
}
