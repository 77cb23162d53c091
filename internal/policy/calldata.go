package policy

import (
	"encoding/hex"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"

	"github.com/daoguard/daoguard"
)

// ItemType is what one call does, as far as policy is concerned.
type ItemType uint8

const (
	ItemTransfer ItemType = 1 << iota // moves an asset to a counterparty
	ItemApproval                      // lets a spender move the account's tokens
	ItemCall                          // anything else
)

func (t ItemType) String() string {
	switch t {
	case ItemTransfer:
		return "transfer"
	case ItemApproval:
		return "approval"
	case ItemCall:
		return "call"
	}
	return "?"
}

// Selectors policy recognises. They are the first four bytes of the
// keccak-256 of the signature; tests recompute each one.
var (
	selTransfer          = [4]byte{0xa9, 0x05, 0x9c, 0xbb} // transfer(address,uint256)
	selTransferFrom      = [4]byte{0x23, 0xb8, 0x72, 0xdd} // transferFrom(address,address,uint256)
	selApprove           = [4]byte{0x09, 0x5e, 0xa7, 0xb3} // approve(address,uint256)
	selIncreaseAllowance = [4]byte{0x39, 0x50, 0x93, 0x51} // increaseAllowance(address,uint256)
	selSetApprovalForAll = [4]byte{0xa2, 0x2c, 0xb4, 0x65} // setApprovalForAll(address,bool)
	selMultiSend         = [4]byte{0x8d, 0x80, 0xff, 0x0a} // multiSend(bytes)
	// Other ways tokens move or get delegated: each is judged as what it
	// does, never as an opaque call that a rule about targets might allow.
	selTransferAndCall   = [4]byte{0x40, 0x00, 0xae, 0xa0} // transferAndCall(address,uint256,bytes) (ERC-677)
	selSend              = [4]byte{0x9b, 0xd9, 0xbb, 0xc6} // send(address,uint256,bytes) (ERC-777)
	selPush              = [4]byte{0xb7, 0x53, 0xa9, 0x8c} // push(address,uint256) (DAI)
	selMove              = [4]byte{0xbb, 0x35, 0x78, 0x3b} // move(address,address,uint256) (DAI)
	selIncreaseApproval  = [4]byte{0xd7, 0x3d, 0xd6, 0x23} // increaseApproval(address,uint256) (older OpenZeppelin)
	selAuthorizeOperator = [4]byte{0x95, 0x9b, 0x8c, 0x3f} // authorizeOperator(address) (ERC-777: every token)
	// Permit-style signatures: an agent must never obtain or relay a
	// signature that lets someone else move the treasury's tokens.
	permitSelectors = map[[4]byte]string{
		{0xd5, 0x05, 0xac, 0xcf}: "permit(address,address,uint256,uint256,uint8,bytes32,bytes32)",                                                     // EIP-2612
		{0x8f, 0xcb, 0xaf, 0x0c}: "permit(address,address,uint256,uint256,bool,uint8,bytes32,bytes32)",                                                // DAI
		{0x2b, 0x67, 0xb5, 0x70}: "permit(address,((address,uint160,uint48,uint48),address,uint256),bytes)",                                           // Permit2 single
		{0x2a, 0x2d, 0x80, 0xd1}: "permit(address,((address,uint160,uint48,uint48)[],address,uint256),bytes)",                                         // Permit2 batch
		{0x30, 0xf2, 0x8b, 0x7a}: "permitTransferFrom(((address,uint256),uint256,uint256),(address,uint256),address,bytes)",                           // Permit2 signature transfer
		{0xed, 0xd9, 0x44, 0x4b}: "permitTransferFrom(((address,uint256)[],uint256,uint256),(address,uint256)[],address,bytes)",                       // Permit2 batch signature transfer
		{0x13, 0x7c, 0x29, 0xfe}: "permitWitnessTransferFrom(((address,uint256),uint256,uint256),(address,uint256),address,bytes32,string,bytes)",     // Permit2 witness
		{0xfe, 0x8e, 0xc1, 0xa7}: "permitWitnessTransferFrom(((address,uint256)[],uint256,uint256),(address,uint256)[],address,bytes32,string,bytes)", // Permit2 batch witness
		{0x9f, 0xd5, 0xa6, 0xcf}: "permit(address,address,uint256,uint256,bytes)",                                                                     // USDC v2.2 (signature as bytes)
		{0xe3, 0xee, 0x16, 0x0e}: "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)",                  // EIP-3009
		{0xcf, 0x09, 0x29, 0x95}: "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)",                                  // EIP-3009, bytes signature
		{0xef, 0x55, 0xbe, 0xc6}: "receiveWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)",                   // EIP-3009
		{0x87, 0x51, 0x7c, 0x45}: "approve(address,address,uint160,uint48)",                                                                           // Permit2 allowance: an approval by another name
	}
)

const zeroAddress = "0x0000000000000000000000000000000000000000"

// maxBatchDepth bounds MultiSend nesting; deeper batches are refused.
const maxBatchDepth = 3

// item is one call the action makes: the action itself, or one
// transaction of a MultiSend batch. Rules judge items.
type item struct {
	Type         ItemType
	Target       string // the address called (the recipient, for a native transfer)
	Counterparty string // recipient, spender, or target
	Operation    daoguard.Operation
	Value        *big.Int // native value in wei
	Data         []byte
	Asset        string   // transfer/approval: symbol, "" if the token is unknown
	Token        string   // transfer/approval: token address, "" for native
	Amount       *big.Int // transfer: amount moved; approval: allowance
	Decimals     int
	ApprovalAll  bool // setApprovalForAll(operator, true)
	// From is whose tokens a transferFrom moves (lower-case hex); "" when
	// the account's own.
	From   string
	Permit string
	// UnknownTokenFn: a function policy does not recognise, called on a
	// token of the catalogue.
	UnknownTokenFn bool
	SelfCall       bool
	InBatch        bool
	// Payee is whom a call names as paid (or whose funds it spends) other
	// than the account, under argument PayeeArg (see Registry.payee); read
	// lazily (evaluation.payee), payeeRead once it is.
	Payee, PayeeArg string
	payeeRead       bool
	// payoutRule: an autonomous rule naming no function matched a call
	// with a Payee; payoutNamed: a rule naming the function did.
	payoutRule  string
	payoutNamed bool
	// Resulting: Amount is the allowance the simulation saw afterwards,
	// larger than the call's argument (increaseAllowance).
	Resulting bool
}

func (it *item) selector() ([4]byte, bool) {
	if len(it.Data) < 4 {
		return [4]byte{}, false
	}
	return [4]byte(it.Data[:4]), true
}

// Catalog is the assets an organisation knows, by symbol and by address.
type Catalog struct {
	bySymbol  map[string]*daoguard.Asset
	byAddress map[string]*daoguard.Asset
	native    *daoguard.Asset
	amounts   sync.Map // amountKey → *big.Int: limits resolved to base units
}

// NewCatalog indexes assets (addresses in lower case, as decode stores them).
func NewCatalog(assets []*daoguard.Asset) *Catalog {
	c := &Catalog{bySymbol: map[string]*daoguard.Asset{}, byAddress: map[string]*daoguard.Asset{}}
	for _, a := range assets {
		c.bySymbol[a.Symbol] = a
		if a.Native() {
			c.native = a
		} else {
			c.byAddress[strings.ToLower(a.Address)] = a
		}
	}
	return c
}

// Asset returns the asset with symbol s.
func (c *Catalog) Asset(s string) (*daoguard.Asset, bool) {
	a, ok := c.bySymbol[s]
	return a, ok
}

// ByAddress returns the token at address a (any case).
func (c *Catalog) ByAddress(a string) (*daoguard.Asset, bool) {
	t, ok := c.byAddress[strings.ToLower(a)]
	return t, ok
}

// malformed is calldata that a recognised selector cannot decode. The
// token would most likely revert, but "most likely" is not a policy: the
// action is denied.
type malformed struct{ why string }

func (m *malformed) Error() string { return m.why }

// items decodes an action into the calls it makes. A transfer intent is
// one item. A call is classified by its selector; a MultiSend batch becomes
// its transactions, each judged on its own.
func items(d *daoguard.Decoded, cat *Catalog) ([]item, error) {
	if d.Kind == daoguard.KindTransfer {
		it := item{Type: ItemTransfer, Counterparty: d.To, Target: d.To, Operation: daoguard.OpCall,
			Asset: d.Asset, Token: d.Token, Amount: d.Amount.Int(), Decimals: d.Decimals, Value: new(big.Int)}
		if d.Token != "" {
			// The call that will run, so that function and parameter rules
			// (and CEL's selector) judge a token transfer however it was
			// asked for: as a transfer intent or as its calldata.
			it.Target, it.Data = d.Token, transferCalldata(d.To, it.Amount)
		} else {
			it.Value = d.Amount.Int()
		}
		return []item{it}, nil
	}
	value := new(big.Int)
	if d.Value != nil {
		value = d.Value.Int()
	}
	var out []item
	// Addresses compare in lower case: the account's may have been stored
	// checksummed.
	err := callItems(&out, strings.ToLower(d.From), d.AccountKind, d.To, value, d.Data, d.Operation, cat, 0)
	return out, err
}

// transferCalldata encodes transfer(to, amount); nil if either does not
// fit its ABI word (the intent is refused elsewhere).
func transferCalldata(to string, amount *big.Int) []byte {
	addr, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(to), "0x"))
	if err != nil || len(addr) != 20 || amount == nil || amount.Sign() < 0 || amount.BitLen() > 256 {
		return nil
	}
	data := make([]byte, 4+64)
	copy(data, selTransfer[:])
	copy(data[4+12:], addr)
	amount.FillBytes(data[4+32:])
	return data
}

func callItems(out *[]item, account string, kind daoguard.AccountKind, target string, value *big.Int, data []byte, op daoguard.Operation, cat *Catalog, depth int) error {
	it := item{Type: ItemCall, Target: target, Counterparty: target, Operation: op, Value: value, Data: data, InBatch: depth > 0}
	// Safe's MultiSend (v1.5) rewrites a batch entry's zero `to` into the
	// Safe itself: that is a self-call too.
	it.SelfCall = target == account || depth > 0 && target == zeroAddress
	sel, ok := it.selector()
	if ok && sel == selMultiSend {
		if depth >= maxBatchDepth {
			return &malformed{fmt.Sprintf("MultiSend batches nested deeper than %d", maxBatchDepth)}
		}
		// The batch call itself is judged too (it is a delegatecall to the
		// MultiSend contract, which must be on the allowlist), then each of
		// its transactions.
		*out = append(*out, it)
		return multiSendItems(out, account, kind, data, cat, depth+1)
	}
	if !ok {
		if value.Sign() > 0 && len(data) == 0 {
			if cat.native != nil {
				it.Asset, it.Decimals = cat.native.Symbol, cat.native.Decimals
			}
			it.Type, it.Amount = ItemTransfer, value
		}
		*out = append(*out, it)
		return nil
	}
	tok := cat.byAddress[target]
	setToken := func() {
		it.Token = target
		if tok != nil {
			it.Asset, it.Decimals = tok.Symbol, tok.Decimals
		}
	}
	switch {
	case sel == selTransfer || sel == selPush || sel == selApprove || sel == selIncreaseAllowance || sel == selIncreaseApproval:
		to, amt, err := addrUint(data)
		if err != nil {
			return err
		}
		setToken()
		it.Counterparty, it.Amount = to, amt
		it.Type = ItemTransfer
		if sel == selApprove || sel == selIncreaseAllowance || sel == selIncreaseApproval {
			it.Type = ItemApproval
		}
	case sel == selTransferAndCall || sel == selSend:
		// (address, uint256, bytes): the first two words move the tokens;
		// the bytes go to the recipient's hook, which policy does not read.
		if len(data) < 4+96 {
			return &malformed{"transferAndCall/send calldata is shorter than three 32-byte words"}
		}
		to, amt, err := addrUint(data[:4+64])
		if err != nil {
			return err
		}
		setToken()
		it.Type, it.Counterparty, it.Amount = ItemTransfer, to, amt
	case sel == selAuthorizeOperator:
		if len(data) != 4+32 {
			return &malformed{"authorizeOperator calldata is not one 32-byte word"}
		}
		op, err := word(data[4:36])
		if err != nil {
			return err
		}
		setToken()
		it.Type, it.Counterparty, it.ApprovalAll = ItemApproval, op, true
	case sel == selTransferFrom || sel == selMove:
		if len(data) != 4+96 {
			return &malformed{"transferFrom calldata is not three 32-byte words"}
		}
		from, err := word(data[4:36])
		if err != nil {
			return err
		}
		if from != account {
			it.From = from
		}
		to, err := word(data[36:68])
		if err != nil {
			return err
		}
		setToken()
		it.Type, it.Counterparty, it.Amount = ItemTransfer, to, new(big.Int).SetBytes(data[68:100])
	case sel == selSetApprovalForAll:
		if len(data) != 4+64 {
			return &malformed{"setApprovalForAll calldata is not two 32-byte words"}
		}
		op, err := word(data[4:36])
		if err != nil {
			return err
		}
		b := new(big.Int).SetBytes(data[36:68])
		if b.Cmp(big.NewInt(1)) > 0 {
			return &malformed{"setApprovalForAll: the bool is neither 0 nor 1"}
		}
		it.Type, it.Counterparty, it.ApprovalAll = ItemApproval, op, b.Sign() == 1
	default:
		if sig, ok := permitSelectors[sel]; ok {
			it.Permit = sig
		} else if tok != nil {
			// Any other function of a token the treasury holds may move
			// or delegate it in a way policy cannot see.
			it.UnknownTokenFn = true
			setToken()
		}
	}
	if it.Type != ItemCall && it.Value != nil && it.Value.Sign() > 0 {
		// Native value sent along with a token transfer or approval moves
		// too: it is an item of its own, a native transfer to the token
		// contract, which rules must cover like any other, and the token
		// item carries none (so that it is counted once).
		v := item{Type: ItemTransfer, Target: target, Counterparty: target, Operation: op, Value: it.Value, Amount: it.Value, InBatch: it.InBatch, SelfCall: it.SelfCall}
		if cat.native != nil {
			v.Asset, v.Decimals = cat.native.Symbol, cat.native.Decimals
		}
		it.Value = new(big.Int)
		*out = append(*out, it, v)
		return nil
	}
	*out = append(*out, it)
	return nil
}

// addrUint decodes (address, uint256) calldata strictly: exactly two words,
// the address's upper 12 bytes zero.
func addrUint(data []byte) (string, *big.Int, error) {
	if len(data) != 4+64 {
		return "", nil, &malformed{fmt.Sprintf("calldata for selector 0x%x is %d bytes, want 68", data[:4], len(data))}
	}
	a, err := word(data[4:36])
	if err != nil {
		return "", nil, err
	}
	return a, new(big.Int).SetBytes(data[36:68]), nil
}

// word decodes a 32-byte ABI word holding an address.
func word(w []byte) (string, error) {
	for _, b := range w[:12] {
		if b != 0 {
			return "", &malformed{"an address parameter has non-zero upper bytes"}
		}
	}
	return "0x" + hex.EncodeToString(w[12:32]), nil
}

// multiSendItems decodes multiSend(bytes): an ABI bytes argument holding
// packed transactions, each operation (1 byte, 0 call, 1 delegatecall), to
// (20), value (32), data length (32), data.
func multiSendItems(out *[]item, account string, kind daoguard.AccountKind, data []byte, cat *Catalog, depth int) error {
	b := data[4:]
	if len(b) < 64 {
		return &malformed{"multiSend calldata is too short"}
	}
	off := new(big.Int).SetBytes(b[:32])
	if !off.IsUint64() || off.Uint64() != 32 {
		return &malformed{"multiSend: the bytes argument is not at offset 32"}
	}
	n := new(big.Int).SetBytes(b[32:64])
	if !n.IsUint64() || n.Uint64() > uint64(len(b)-64) {
		return &malformed{"multiSend: the transactions overrun the calldata"}
	}
	packed := b[64 : 64+n.Uint64()]
	count := 0
	for len(packed) > 0 {
		if len(packed) < 1+20+32+32 {
			return &malformed{"multiSend: a truncated transaction"}
		}
		var op daoguard.Operation
		switch packed[0] {
		case 0:
			op = daoguard.OpCall
		case 1:
			op = daoguard.OpDelegateCall
		default:
			return &malformed{fmt.Sprintf("multiSend: operation %d is neither call nor delegatecall", packed[0])}
		}
		to := "0x" + hex.EncodeToString(packed[1:21])
		value := new(big.Int).SetBytes(packed[21:53])
		dl := new(big.Int).SetBytes(packed[53:85])
		if !dl.IsUint64() || dl.Uint64() > uint64(len(packed)-85) {
			return &malformed{"multiSend: a transaction's data overruns the batch"}
		}
		l := int(dl.Uint64())
		sub := packed[85 : 85+l]
		if err := callItems(out, account, kind, to, value, sub, op, cat, depth); err != nil {
			return err
		}
		packed = packed[85+l:]
		count++
		if count > 256 {
			return &malformed{"multiSend: more than 256 transactions"}
		}
	}
	if count == 0 {
		return &malformed{"multiSend: an empty batch"}
	}
	return nil
}

// flows lists what the items move: every transfer, and the native value
// of every call that sends some.
func flows(its []item, cat *Catalog) []Flow {
	var fs []Flow
	for i := range its {
		it := &its[i]
		if it.Type == ItemTransfer {
			fs = append(fs, Flow{Asset: it.Asset, Token: it.Token, Amount: it.Amount, To: it.Counterparty, USD: -1, From: it.From})
			if it.Token == "" {
				continue // a native transfer: its value is the amount
			}
		}
		if it.Type == ItemApproval && !it.ApprovalAll && it.Amount != nil && it.Amount.Sign() > 0 && it.Amount.Cmp(unlimitedThreshold) < 0 {
			// An allowance is exposure: the spender may take it whenever it
			// likes, so it counts like a payment in windows and limits. (An
			// unlimited one is refused outright.)
			fs = append(fs, Flow{Asset: it.Asset, Token: it.Token, Amount: it.Amount, To: it.Counterparty, USD: -1, Allowance: true})
		}
		if it.Value != nil && it.Value.Sign() > 0 {
			f := Flow{Amount: it.Value, To: it.Target, USD: -1}
			if cat.native != nil {
				f.Asset = cat.native.Symbol
			}
			fs = append(fs, f)
		}
	}
	return fs
}

// Holders lists the addresses other than the acting account whose tokens
// an action moves (transferFrom under their allowance), lower-case hex,
// without repeats: the caller passes the organisation's accounts among
// them to Evaluate as Input.Owners.
func Holders(d *daoguard.Decoded, cat *Catalog) ([]string, error) {
	if d.Kind == daoguard.KindTransfer {
		return nil, nil
	}
	its, err := items(d, cat)
	if err != nil {
		return nil, err
	}
	var out []string
	for i := range its {
		if f := its[i].From; f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// Touches lists what an action's calls reach: every address whose code
// runs (each call's target, so that approval binds it) and every
// (token, spender) pair it approves, for the simulation to read the
// allowance that results. Addresses are lower-case hex, without repeats.
func Touches(d *daoguard.Decoded, cat *Catalog) (targets []string, approvals [][2]string, err error) {
	its, err := items(d, cat)
	if err != nil {
		return nil, nil, err
	}
	for i := range its {
		it := &its[i]
		if it.Target != "" && !slices.Contains(targets, it.Target) {
			targets = append(targets, it.Target)
		}
		if it.Type == ItemApproval && it.Token != "" && !it.ApprovalAll {
			p := [2]string{it.Token, it.Counterparty}
			if !slices.Contains(approvals, p) {
				approvals = append(approvals, p)
			}
		}
	}
	return targets, approvals, nil
}
