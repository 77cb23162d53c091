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
// own at its address, and the standard interfaces (ERC-20, ERC-721,
// ERC-1155, the permit family, Safe, MultiSend) at any address. Decoding is
// exact: the arguments must re-encode to the very calldata, so that nothing
// trails or hides behind what approvers are shown. A nil *Registry is the
// standard interfaces only.
//
// The functions policy itself classifies (transfers, approvals, permits,
// MultiSend batches) are always decoded with their standard ABI, even at a
// configured address, so that approvers see them as policy judges them. A
// configured address decodes only with its own ABI otherwise: a selector
// its ABI lacks is opaque there, never a standard function by chance.
type Registry struct {
	byAddress map[string]*registered // lower-case address
}

type registered struct {
	name string
	abi  *abi.ABI
}

// stdMethod is a standard function and the standard it belongs to.
type stdMethod struct {
	standard string
	m        *abi.Method
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
	// Functions that pay a receiver, or spend an owner's funds, named in
	// their arguments (see payee): decoded everywhere so that a payout to
	// someone else is seen whatever the target.
	{"ERC-4626", "deposit(uint256 assets,address receiver)"},
	{"ERC-4626", "mint(uint256 shares,address receiver)"},
	{"ERC-4626", "withdraw(uint256 assets,address receiver,address owner)"},
	{"ERC-4626", "redeem(uint256 shares,address receiver,address owner)"},
	{"Aave", "supply(address asset,uint256 amount,address onBehalfOf,uint16 referralCode)"},
	{"Aave", "deposit(address asset,uint256 amount,address onBehalfOf,uint16 referralCode)"},
	{"Aave", "withdraw(address asset,uint256 amount,address to)"},
	{"Aave", "repay(address asset,uint256 amount,uint256 interestRateMode,address onBehalfOf)"},
	{"Compound III", "supplyTo(address dst,address asset,uint256 amount)"},
	{"Compound III", "supplyFrom(address from,address dst,address asset,uint256 amount)"},
	{"Compound III", "withdrawTo(address to,address asset,uint256 amount)"},
	{"Compound III", "withdrawFrom(address src,address to,address asset,uint256 amount)"},
	{"WETH10", "depositTo(address to)"},
	{"WETH10", "withdrawTo(address to,uint256 value)"},
	{"WETH10", "withdrawFrom(address from,address to,uint256 value)"},
	{"Uniswap V2", "swapExactTokensForTokens(uint256 amountIn,uint256 amountOutMin,address[] path,address to,uint256 deadline)"},
	{"Uniswap V2", "swapTokensForExactTokens(uint256 amountOut,uint256 amountInMax,address[] path,address to,uint256 deadline)"},
	{"Uniswap V2", "swapExactETHForTokens(uint256 amountOutMin,address[] path,address to,uint256 deadline)"},
	{"Uniswap V2", "swapETHForExactTokens(uint256 amountOut,address[] path,address to,uint256 deadline)"},
	{"Uniswap V2", "swapExactTokensForETH(uint256 amountIn,uint256 amountOutMin,address[] path,address to,uint256 deadline)"},
	{"Uniswap V2", "swapTokensForExactETH(uint256 amountOut,uint256 amountInMax,address[] path,address to,uint256 deadline)"},
	{"Uniswap V2", "removeLiquidity(address tokenA,address tokenB,uint256 liquidity,uint256 amountAMin,uint256 amountBMin,address to,uint256 deadline)"},
	{"Uniswap V2", "removeLiquidityETH(address token,uint256 liquidity,uint256 amountTokenMin,uint256 amountETHMin,address to,uint256 deadline)"},
	{"Uniswap V3", "exactInputSingle((address tokenIn,address tokenOut,uint24 fee,address recipient,uint256 deadline,uint256 amountIn,uint256 amountOutMinimum,uint160 sqrtPriceLimitX96) params)"},
	{"Uniswap V3", "exactInputSingle((address tokenIn,address tokenOut,uint24 fee,address recipient,uint256 amountIn,uint256 amountOutMinimum,uint160 sqrtPriceLimitX96) params)"},
	{"Uniswap V3", "exactOutputSingle((address tokenIn,address tokenOut,uint24 fee,address recipient,uint256 deadline,uint256 amountOut,uint256 amountInMaximum,uint160 sqrtPriceLimitX96) params)"},
	{"Uniswap V3", "exactOutputSingle((address tokenIn,address tokenOut,uint24 fee,address recipient,uint256 amountOut,uint256 amountInMaximum,uint160 sqrtPriceLimitX96) params)"},
	{"Uniswap V3", "exactInput((bytes path,address recipient,uint256 deadline,uint256 amountIn,uint256 amountOutMinimum) params)"},
	{"Uniswap V3", "exactInput((bytes path,address recipient,uint256 amountIn,uint256 amountOutMinimum) params)"},
	{"Uniswap V3", "exactOutput((bytes path,address recipient,uint256 deadline,uint256 amountOut,uint256 amountInMaximum) params)"},
	{"Uniswap V3", "exactOutput((bytes path,address recipient,uint256 amountOut,uint256 amountInMaximum) params)"},
	{"ERC-4626", "withdraw(uint256 assets,address receiver,address owner,uint256 maxLoss)"},
	{"ERC-4626", "redeem(uint256 shares,address receiver,address owner,uint256 maxLoss)"},
	{"Compound III", "transferAsset(address dst,address asset,uint256 amount)"},
	{"Compound III", "transferAssetFrom(address src,address dst,address asset,uint256 amount)"},
	{"Uniswap V2", "swapExactTokensForTokensSupportingFeeOnTransferTokens(uint256 amountIn,uint256 amountOutMin,address[] path,address to,uint256 deadline)"},
	{"Uniswap V2", "swapExactETHForTokensSupportingFeeOnTransferTokens(uint256 amountOutMin,address[] path,address to,uint256 deadline)"},
	{"Uniswap V2", "swapExactTokensForETHSupportingFeeOnTransferTokens(uint256 amountIn,uint256 amountOutMin,address[] path,address to,uint256 deadline)"},
	{"Uniswap V2", "addLiquidity(address tokenA,address tokenB,uint256 amountADesired,uint256 amountBDesired,uint256 amountAMin,uint256 amountBMin,address to,uint256 deadline)"},
	{"Uniswap V2", "addLiquidityETH(address token,uint256 amountTokenDesired,uint256 amountTokenMin,uint256 amountETHMin,address to,uint256 deadline)"},
	{"Uniswap V2", "removeLiquidityWithPermit(address tokenA,address tokenB,uint256 liquidity,uint256 amountAMin,uint256 amountBMin,address to,uint256 deadline,bool approveMax,uint8 v,bytes32 r,bytes32 s)"},
	{"Uniswap V2", "removeLiquidityETHWithPermit(address token,uint256 liquidity,uint256 amountTokenMin,uint256 amountETHMin,address to,uint256 deadline,bool approveMax,uint8 v,bytes32 r,bytes32 s)"},
	{"Uniswap V2", "removeLiquidityETHSupportingFeeOnTransferTokens(address token,uint256 liquidity,uint256 amountTokenMin,uint256 amountETHMin,address to,uint256 deadline)"},
	{"Uniswap V2", "swap(uint256 amount0Out,uint256 amount1Out,address to,bytes data)"},
	{"Uniswap V3", "unwrapWETH9(uint256 amountMinimum,address recipient)"},
	{"Uniswap V3", "sweepToken(address token,uint256 amountMinimum,address recipient)"},
	{"Uniswap V3", "collect((uint256 tokenId,address recipient,uint128 amount0Max,uint128 amount1Max) params)"},
	{"Uniswap V3", "mint((address token0,address token1,uint24 fee,int24 tickLower,int24 tickUpper,uint256 amount0Desired,uint256 amount1Desired,uint256 amount0Min,uint256 amount1Min,address recipient,uint256 deadline) params)"},
	{"Multicall", "multicall(bytes[] data)"},
	{"Multicall", "multicall(uint256 deadline,bytes[] data)"},
	{"Multicall", "multicall(bytes32 previousBlockhash,bytes[] data)"},
	{"Permit2", "transferFrom(address from,address to,uint160 amount,address token)"},
	{"Permit2", "transferFrom((address from,address to,uint160 amount,address token)[] transferDetails)"},
	{"ERC-777", "operatorSend(address from,address to,uint256 amount,bytes data,bytes operatorData)"},
	{"Disperse", "disperseEther(address[] recipients,uint256[] values)"},
	{"Disperse", "disperseToken(address token,address[] recipients,uint256[] values)"},
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

// standard maps a selector to its standard function: the named list
// above, then the permit family policy recognises (unnamed parameters).
var standard = func() map[[4]byte]stdMethod {
	out := map[[4]byte]stdMethod{}
	for _, f := range standardFunctions {
		a, err := abi.JSON(strings.NewReader(signatureJSON(f.sig)))
		if err != nil {
			panic(fmt.Sprintf("standard function %s: %v", f.sig, err))
		}
		for _, m := range a.Methods {
			if _, dup := out[[4]byte(m.ID)]; !dup {
				out[[4]byte(m.ID)] = stdMethod{f.standard, &m}
			}
		}
	}
	for sel, sig := range permitSelectors {
		if _, dup := out[sel]; dup {
			continue
		}
		m, err := methodOf(sig)
		if err != nil || [4]byte(m.ID) != sel {
			panic(fmt.Sprintf("permit function %s: %v", sig, err))
		}
		out[sel] = stdMethod{"permit", m}
	}
	return out
}()

// methodOf builds a function from its signature, with unnamed parameters.
func methodOf(sig string) (*abi.Method, error) {
	sm, err := ParseSelector(sig)
	if err != nil {
		return nil, err
	}
	var args abi.Arguments
	for _, in := range sm.Inputs {
		t, err := abi.NewType(in.Type, "", in.Components)
		if err != nil {
			return nil, err
		}
		args = append(args, abi.Argument{Type: t})
	}
	m := abi.NewMethod(sm.Name, sm.Name, abi.Function, "nonpayable", false, false, args, nil)
	return &m, nil
}

// classified are the selectors policy itself takes apart (calldata.go):
// their meaning is policy's, whatever a configured ABI calls them.
func classified(sel [4]byte) bool {
	switch sel {
	case selTransfer, selTransferFrom, selApprove, selIncreaseAllowance, selSetApprovalForAll, selMultiSend,
		selTransferAndCall, selSend, selPush, selMove, selIncreaseApproval, selAuthorizeOperator:
		return true
	}
	_, permit := permitSelectors[sel]
	return permit
}

// signatureJSON turns "name(type a,(type b,type c) d)" — named
// parameters, tuples one level deep — into a one-function JSON ABI.
func signatureJSON(sig string) string {
	name, params, _ := strings.Cut(strings.TrimSuffix(sig, ")"), "(")
	b, _ := json.Marshal([]any{map[string]any{"type": "function", "name": name, "inputs": sigArgs(params), "outputs": []sigArg{}, "stateMutability": "nonpayable"}})
	return string(b)
}

type sigArg struct {
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	Components []sigArg `json:"components,omitempty"`
}

// sigArgs parses "type a,(type b,type c) d": commas inside a tuple's
// parentheses do not split.
func sigArgs(params string) []sigArg {
	out := []sigArg{}
	for depth, start, i := 0, 0, 0; i <= len(params); i++ {
		if i < len(params) {
			switch params[i] {
			case '(':
				depth++
				continue
			case ')':
				depth--
				continue
			case ',':
				if depth > 0 {
					continue
				}
			default:
				continue
			}
		}
		p := params[start:i]
		start = i + 1
		if p == "" {
			continue
		}
		if strings.HasPrefix(p, "(") {
			end := strings.LastIndexByte(p, ')')
			rest, typ := p[end+1:], "tuple"
			for strings.HasPrefix(rest, "[") { // tuple[], tuple[2][]
				j := strings.IndexByte(rest, ']')
				typ, rest = typ+rest[:j+1], rest[j+1:]
			}
			out = append(out, sigArg{Name: strings.TrimSpace(rest), Type: typ, Components: sigArgs(p[1:end])})
			continue
		}
		typ, n, _ := strings.Cut(p, " ")
		out = append(out, sigArg{Name: n, Type: typ})
	}
	return out
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

// decoding is what decode makes of one call's calldata.
type decoding struct {
	contract string      // the configured contract's name, or the standard
	m        *abi.Method // nil: no calldata, or opaque
	args     []any
	ok       bool // decoded exactly (or no calldata at all)
	// vouched: a configured ABI, or policy's own classification, says
	// what the call does; a standard ABI matched by selector alone at an
	// unconfigured address does not (execTransaction on another Safe
	// carries a whole call inside).
	vouched bool
}

// decode decodes calldata to target. Empty calldata decodes to nothing and
// is not opaque; calldata that no ABI decodes exactly is.
func (r *Registry) decode(target string, data []byte) decoding {
	if len(data) == 0 {
		return decoding{ok: true, vouched: true}
	}
	if len(data) < 4 {
		return decoding{}
	}
	sel := [4]byte(data[:4])
	var conf *registered
	if r != nil {
		conf = r.byAddress[strings.ToLower(target)]
	}
	var d decoding
	switch {
	case classified(sel):
		std := standard[sel]
		d = decoding{contract: std.standard, m: std.m, vouched: true}
		if conf != nil {
			d.contract = conf.name
		}
	case conf != nil:
		m, err := conf.abi.MethodById(sel[:])
		if err != nil {
			return decoding{}
		}
		d = decoding{contract: conf.name, m: m, vouched: true}
	default:
		std, ok := standard[sel]
		if !ok {
			return decoding{}
		}
		d = decoding{contract: std.standard, m: std.m}
	}
	args, err := d.m.Inputs.Unpack(data[4:])
	if err != nil {
		return decoding{}
	}
	// Exact: what was decoded must be all the calldata says.
	if again, err := d.m.Inputs.Pack(args...); err != nil || !bytes.Equal(again, data[4:]) {
		return decoding{}
	}
	d.args, d.ok = args, true
	return d
}

// payeeNames are the parameter names under which a function takes whom it
// pays; ownerNames, whose funds it spends. Lower case, without leading or
// trailing underscores.
var (
	payeeNames = map[string]bool{"receiver": true, "recipient": true, "recipients": true, "to": true, "dst": true, "onbehalfof": true, "beneficiary": true, "payee": true}
	ownerNames = map[string]bool{"owner": true, "src": true, "from": true}
)

// maxMulticallDepth bounds how deep payee looks into multicall batches.
const maxMulticallDepth = 2

// payee looks in a call for an address argument naming whom the call pays,
// or whose funds it spends, that is not account — a vault's receiver and
// owner, a swap's recipient, a lending pool's onBehalfOf, a batch payout's
// recipients — and returns that argument's name and value. Such a call
// moves value policy cannot attribute: its flows are not in the calldata.
//
// Both what the configured ABI at the target says (its parameter names
// are the operator's) and what the standard function of that selector
// says (at any address, whatever is configured there) are read, and the
// calls inside a multicall too. The selectors policy takes apart itself
// (transfers, approvals, permits, batches) and the Safe's own functions
// are judged elsewhere.
func (r *Registry) payee(target string, data []byte, account string, depth int) (arg, addr string, ok bool) {
	if len(data) < 4 || classified([4]byte(data[:4])) {
		return "", "", false
	}
	var ds [2]decoding
	if d := r.decode(target, data); d.ok && d.m != nil && d.vouched {
		ds[0] = d // the configured contract's own ABI
	}
	if std, known := standard[[4]byte(data[:4])]; known && std.standard != "Safe" && std.standard != "permit" {
		ds[1] = decodeWith(std, data)
	}
	for _, d := range ds {
		if !d.ok {
			continue
		}
		for j, in := range d.m.Inputs {
			if arg, addr, ok := findPayee(in.Name, in.Type, reflect.ValueOf(d.args[j]), account); ok {
				return arg, addr, true
			}
			// The calls a multicall makes to the same contract.
			if d.m.RawName == "multicall" && in.Type.T == abi.SliceTy && in.Type.Elem.T == abi.BytesTy && depth < maxMulticallDepth {
				inners, _ := d.args[j].([][]byte)
				for _, inner := range inners {
					if arg, addr, ok := r.payee(target, inner, account, depth+1); ok {
						return "multicall." + arg, addr, true
					}
				}
			}
		}
	}
	return "", "", false
}

// decodeWith decodes data with a standard function, exactly: the
// arguments must re-encode to the very calldata.
func decodeWith(std stdMethod, data []byte) decoding {
	args, err := std.m.Inputs.Unpack(data[4:])
	if err != nil {
		return decoding{}
	}
	if again, err := std.m.Inputs.Pack(args...); err != nil || !bytes.Equal(again, data[4:]) {
		return decoding{}
	}
	return decoding{contract: std.standard, m: std.m, args: args, ok: true}
}

// findPayee walks one argument, into tuples and arrays (whose elements
// carry the array's name).
func findPayee(name string, t abi.Type, v reflect.Value, account string) (string, string, bool) {
	switch t.T {
	case abi.AddressTy:
		n := strings.ToLower(strings.Trim(name, "_"))
		a, isAddr := v.Interface().(common.Address)
		if !isAddr || !payeeNames[n] && !ownerNames[n] {
			return "", "", false
		}
		if addr := strings.ToLower(a.Hex()); addr != account {
			return name, addr, true
		}
	case abi.TupleTy:
		for i, el := range t.TupleElems {
			if i < v.NumField() {
				if arg, addr, ok := findPayee(t.TupleRawNames[i], *el, v.Field(i), account); ok {
					return name + "." + arg, addr, true
				}
			}
		}
	case abi.SliceTy, abi.ArrayTy:
		for i := range v.Len() {
			if arg, addr, ok := findPayee(name, *t.Elem, v.Index(i), account); ok {
				return fmt.Sprintf("%s[%d]%s", name, i, strings.TrimPrefix(arg, name)), addr, true
			}
		}
	}
	return "", "", false
}

// opaque reports whether nothing vouches for an item's calldata: no
// configured ABI decodes it exactly, and policy does not classify it.
func (r *Registry) opaque(it *item) bool {
	d := r.decode(it.Target, it.Data)
	return !d.ok || !d.vouched
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
		d := r.decode(it.Target, it.Data)
		c.Opaque = !d.ok
		if d.ok && d.m != nil {
			c.Contract, c.Function = d.contract, d.m.Sig
			if t, ok := cat.ByAddress(it.Target); ok {
				c.Contract = t.Symbol + " (" + d.contract + ")"
			}
			for j, in := range d.m.Inputs {
				c.Args = append(c.Args, daoguard.CallArg{Name: in.Name, Type: in.Type.String(), Value: argText(d.args[j])})
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
