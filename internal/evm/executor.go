package evm

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/secrets"
	ethereum "github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
)

// RelayerName is the signer that sends Safe transactions (and signs as
// an owner where the Safe lists it). A wallet account's key is the signer
// named after the account.
const RelayerName = "daoguard"

// Defaults of a new Executor.
const (
	DefaultConfirmations  = 1  // the receipt's own block
	DefaultDriftTolerance = 50 // basis points: 0.5%
)

// Executor carries out queued actions on the chain: from a hot wallet
// whose key daoguard holds, or from a Safe through execTransaction with the
// owners' signatures, sent by the relayer key.
//
// Right before anything is signed it simulates the action again and refuses
// (failed, with a code; nothing sent) if it would revert, if a contract it
// runs changed code or proxy implementation since approval, or if its effect
// drifted beyond the tolerance. The signed transaction is recorded before it
// is sent: after a crash it is looked up by hash and sent again, never
// signed anew, so nothing is lost or sent twice.
type Executor struct {
	Store   daoguard.Store
	Keyring *secrets.Keyring
	Eth     Client
	Sim     *Simulator
	Mine    Miner // the dev chain's sealer; nil on a real node
	// Confirmations is how deep the receipt's block must be (1: itself).
	Confirmations uint64
	// DriftTolerance is how far, in basis points, an outflow may exceed the
	// approved one (prices and fees move between approval and execution).
	DriftTolerance int64
	// AfterRecord, if set, runs after a signed transaction is committed and
	// before it is sent: the crash tests kill the process there.
	AfterRecord func()

	safe *Artifact
}

// NewExecutor returns an Executor with the defaults.
func NewExecutor(st daoguard.Store, keyring *secrets.Keyring, eth Client, sim *Simulator) (*Executor, error) {
	safe, err := LoadArtifact("Safe")
	if err != nil {
		return nil, err
	}
	return &Executor{Store: st, Keyring: keyring, Eth: eth, Sim: sim, Confirmations: DefaultConfirmations, DriftTolerance: DefaultDriftTolerance, safe: safe}, nil
}

// EnsureSigner returns the named signer, generating its key the first time.
// The key is sealed with the master keyring before it is stored; it never
// leaves the process otherwise.
func EnsureSigner(ctx context.Context, st daoguard.Store, keyring *secrets.Keyring, orgID, name string) (*daoguard.Signer, error) {
	var out *daoguard.Signer
	for range 2 {
		err := st.Update(ctx, func(tx daoguard.Tx) error {
			s, err := tx.Signer(ctx, orgID, name)
			if err == nil {
				out = s
				return nil
			} else if !daoguard.IsNotFound(err) {
				return err
			}
			key, err := crypto.GenerateKey()
			if err != nil {
				return err
			}
			raw := crypto.FromECDSA(key)
			sealed, err := keyring.Seal(raw, daoguard.SignerAD(orgID, name))
			clear(raw)
			if err != nil {
				return err
			}
			out = &daoguard.Signer{OrgID: orgID, Name: name, Address: crypto.PubkeyToAddress(key.PublicKey).Hex(), SealedKey: sealed}
			if err := tx.AddSigner(ctx, out); err != nil {
				return err
			}
			return tx.Append(ctx, &daoguard.AuditEntry{OrgID: orgID, ActorID: daoguard.ActorSystem, ActorKind: "system", Event: "signer.created",
				Detail: []byte(fmt.Sprintf(`{"name":%q,"address":%q}`, name, out.Address))})
		})
		if daoguard.ErrorCode(err) == daoguard.CodeConflict {
			continue // another process created it first: read theirs
		}
		return out, err
	}
	return nil, errors.New("signer " + name + " could not be created")
}

// key opens a signer's sealed key.
func (x *Executor) key(s *daoguard.Signer) (*ecdsa.PrivateKey, error) {
	raw, err := x.Keyring.Open(s.SealedKey, daoguard.SignerAD(s.OrgID, s.Name))
	if err != nil {
		return nil, fmt.Errorf("signer %s: %w", s.Name, err)
	}
	defer clear(raw)
	return crypto.ToECDSA(raw)
}

// failed is a result for an execution refused before anything was sent.
func failed(code, format string, args ...any) daoguard.ExecResult {
	return daoguard.ExecResult{Success: false, Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Execute runs the action for attempt. A transaction already recorded for
// the attempt is sent again as it is; otherwise the checks run, and a new
// transaction is signed, recorded, sent and awaited.
func (x *Executor) Execute(ctx context.Context, a *daoguard.Action, attempt string) (daoguard.ExecResult, error) {
	var b *daoguard.Broadcast
	err := x.Store.View(ctx, func(tx daoguard.Tx) (err error) { b, err = tx.Broadcast(ctx, attempt); return err })
	if err == nil {
		return x.await(ctx, b)
	} else if !daoguard.IsNotFound(err) {
		return daoguard.ExecResult{}, err
	}
	signer, to, value, data, res, err := x.prepare(ctx, a)
	if err != nil || res != nil {
		if res != nil {
			return *res, nil
		}
		return daoguard.ExecResult{}, err
	}
	if b, err = x.sign(ctx, a, attempt, signer, to, value, data); err != nil {
		return daoguard.ExecResult{}, err
	}
	if x.AfterRecord != nil {
		x.AfterRecord()
	}
	return x.await(ctx, b)
}

// Lookup reports what the attempt did. An attempt with no recorded
// transaction has had no effect. A recorded one is awaited, and sent again
// if the node does not know it: it was signed after every check, and
// leaving it unsent would leave a gap in the sender's nonces that blocks
// every later transaction.
func (x *Executor) Lookup(ctx context.Context, a *daoguard.Action, attempt string) (daoguard.ExecResult, bool, error) {
	var b *daoguard.Broadcast
	err := x.Store.View(ctx, func(tx daoguard.Tx) (err error) { b, err = tx.Broadcast(ctx, attempt); return err })
	if daoguard.IsNotFound(err) {
		return daoguard.ExecResult{}, false, nil
	} else if err != nil {
		return daoguard.ExecResult{}, false, err
	}
	res, err := x.await(ctx, b)
	return res, err == nil, err
}

// prepare runs the checks before signing and builds the transaction. A
// non-nil result is a refusal (nothing is sent).
func (x *Executor) prepare(ctx context.Context, a *daoguard.Action) (signer *daoguard.Signer, to common.Address, value *big.Int, data []byte, res *daoguard.ExecResult, err error) {
	d := &a.Decoded
	refuse := func(r daoguard.ExecResult) (*daoguard.Signer, common.Address, *big.Int, []byte, *daoguard.ExecResult, error) {
		return nil, common.Address{}, nil, nil, &r, nil
	}
	var assets []*daoguard.Asset
	var aps []daoguard.Approval
	err = x.Store.View(ctx, func(tx daoguard.Tx) error {
		name := d.Account
		if d.AccountKind == daoguard.AccountSafe {
			name = RelayerName
		}
		s, err := tx.Signer(ctx, a.OrgID, name)
		if daoguard.IsNotFound(err) {
			return nil
		} else if err != nil {
			return err
		}
		signer = s
		if assets, err = tx.Assets(ctx, a.OrgID); err != nil {
			return err
		}
		aps, err = tx.Approvals(ctx, a.ID)
		return err
	})
	if err != nil {
		return
	}
	if signer == nil {
		return refuse(failed(daoguard.ResultNoSigner, "daoguard holds no key to send from account %s", d.Account))
	}
	if d.AccountKind == daoguard.AccountWallet && !strings.EqualFold(signer.Address, d.From) {
		return refuse(failed(daoguard.ResultNoSigner, "account %s is %s, but daoguard's key for it is %s", d.Account, d.From, signer.Address))
	}
	sim, ref, err := x.Sim.Simulate(ctx, d, assets)
	if err != nil {
		return nil, common.Address{}, nil, nil, nil, fmt.Errorf("simulation before broadcast: %w", err)
	}
	if r := x.compare(d, sim, ref); r != nil {
		return refuse(*r)
	}
	call, err := CallOf(d)
	if err != nil {
		return
	}
	if d.AccountKind == daoguard.AccountWallet {
		if call.Operation != 0 {
			return refuse(failed(daoguard.ResultSimulationRevert, "a wallet cannot delegatecall"))
		}
		return signer, call.To, call.Value, call.Data, nil, nil
	}
	data, r, err := x.execTransaction(ctx, a, signer, call, aps)
	if err != nil || r != nil {
		if r != nil {
			return refuse(*r)
		}
		return
	}
	return signer, common.HexToAddress(d.From), new(big.Int), data, nil, nil
}

// compare checks the fresh simulation against the approved one.
func (x *Executor) compare(d *daoguard.Decoded, now *daoguard.Simulation, ref *daoguard.SafeTxRef) *daoguard.ExecResult {
	// Decided without a simulation (the approvers saw that), there is
	// nothing to compare; it must still not revert.
	was := d.Simulation
	if was != nil && was.Error != "" {
		was = nil
	}
	// Changed code first: it is the cause whatever else now differs.
	for _, c := range codeOf(was) {
		var cur *daoguard.CodeBinding
		for i := range now.Code {
			if now.Code[i].Address == c.Address {
				cur = &now.Code[i]
			}
		}
		switch {
		case cur == nil:
			r := failed(daoguard.ResultCodeChanged, "%s is no longer called", c.Address)
			return &r
		case cur.CodeHash != c.CodeHash:
			r := failed(daoguard.ResultCodeChanged, "the code at %s changed since approval (%s, approved %s)", c.Address, cur.CodeHash, c.CodeHash)
			return &r
		case cur.Implementation != c.Implementation || cur.ImplementationCodeHash != c.ImplementationCodeHash:
			r := failed(daoguard.ResultCodeChanged, "the proxy at %s now runs %s (code %s); approved was %s (code %s)", c.Address, cur.Implementation, cur.ImplementationCodeHash, c.Implementation, c.ImplementationCodeHash)
			return &r
		}
	}
	if !now.Success {
		r := failed(daoguard.ResultSimulationRevert, "simulated at block %d before broadcast, it reverts: %s", now.Block, now.Revert)
		return &r
	}
	if was == nil {
		return nil
	}
	approved := map[string]*big.Int{}
	for _, c := range was.Changes {
		approved[c.Asset] = c.Spent()
	}
	for _, c := range now.Changes {
		out, ok := approved[c.Asset], true
		if out == nil {
			out, ok = new(big.Int), false
		}
		// now ≤ approved·(1 + tolerance)
		limit := new(big.Int).Mul(out, big.NewInt(10_000+x.DriftTolerance))
		if got := c.Spent(); new(big.Int).Mul(got, big.NewInt(10_000)).Cmp(limit) > 0 {
			r := failed(daoguard.ResultSimulationDrift, "%s %s would leave now; approved was %s (tolerance %d bp)", got, c.Asset, out, x.DriftTolerance)
			if !ok {
				r.Detail = fmt.Sprintf("%s %s would leave now; the approved simulation moved none", got, c.Asset)
			}
			return &r
		}
	}
	for _, al := range now.Allowances {
		for _, w := range was.Allowances {
			if al.Token == w.Token && al.Spender == w.Spender && al.Amount.Int().Cmp(w.Amount.Int()) > 0 {
				r := failed(daoguard.ResultSimulationDrift, "the allowance of %s for %s would be %s; approved was %s", al.Token, al.Spender, al.Amount, w.Amount)
				return &r
			}
		}
	}
	if d.SafeTx != nil && (ref == nil || ref.Nonce != d.SafeTx.Nonce) {
		r := failed(daoguard.ResultSafeNonceUsed, "the owners signed Safe nonce %d, and the Safe has moved on", d.SafeTx.Nonce)
		return &r
	}
	return nil
}

func codeOf(s *daoguard.Simulation) []daoguard.CodeBinding {
	if s == nil {
		return nil
	}
	return s.Code
}

// execTransaction builds the Safe's execTransaction for the action: the
// approvers' signatures, checked against the Safe's owners right now, plus
// the relayer's own where it is an owner and more are needed.
func (x *Executor) execTransaction(ctx context.Context, a *daoguard.Action, relayer *daoguard.Signer, call TxCall, aps []daoguard.Approval) ([]byte, *daoguard.ExecResult, error) {
	ref := a.Decoded.SafeTx
	if ref == nil {
		r := failed(daoguard.ResultSignaturesRefused, "the action has no Safe transaction for owners to sign (decided without a chain)")
		return nil, &r, nil
	}
	safe := common.HexToAddress(ref.Safe)
	hash := common.HexToHash(ref.Hash)
	owners, threshold, err := SafeOwners(ctx, x.Eth, x.safe, safe)
	if err != nil {
		return nil, nil, err
	}
	var sigs []OwnerSignature
	seen := map[common.Address]bool{}
	for _, ap := range aps {
		if !ap.Approve || ap.Signature == "" {
			continue
		}
		sig, err := hexutil.Decode(ap.Signature)
		if err != nil {
			continue // refused at approval; never stored
		}
		owner, err := RecoverOwner(hash, sig)
		if err != nil || seen[owner] {
			continue
		}
		seen[owner] = true
		sigs = append(sigs, OwnerSignature{Owner: owner, Sig: sig})
	}
	relayerAddr := common.HexToAddress(relayer.Address)
	if len(sigs) < threshold && !seen[relayerAddr] && slices.Contains(owners, relayerAddr) {
		key, err := x.key(relayer)
		if err != nil {
			return nil, nil, err
		}
		sig, err := SignSafeTx(hash, key)
		if err != nil {
			return nil, nil, err
		}
		sigs = append(sigs, OwnerSignature{Owner: relayerAddr, Sig: sig})
	}
	packed, err := PackSafeSignatures(hash, sigs, owners, threshold)
	if err != nil {
		r := failed(daoguard.ResultSignaturesRefused, "%s", daoguard.ErrorMessage(err))
		return nil, &r, nil
	}
	data, err := x.safe.ABI.Pack("execTransaction", call.To, call.Value, call.Data, call.Operation, new(big.Int), new(big.Int), new(big.Int), common.Address{}, common.Address{}, packed)
	return data, nil, err
}

// sign builds, signs and records an EIP-1559 transaction from signer. The
// nonce is the larger of the node's pending nonce and one past the last
// the store recorded; the store refuses a nonce recorded twice, so two
// gateways can never both use it (the loser tries the next).
func (x *Executor) sign(ctx context.Context, a *daoguard.Action, attempt string, signer *daoguard.Signer, to common.Address, value *big.Int, data []byte) (*daoguard.Broadcast, error) {
	key, err := x.key(signer)
	if err != nil {
		return nil, err
	}
	from := crypto.PubkeyToAddress(key.PublicKey)
	chainID, err := x.Eth.ChainID(ctx)
	if err != nil {
		return nil, err
	}
	gas, err := x.Eth.EstimateGas(ctx, ethereum.CallMsg{From: from, To: &to, Value: value, Data: data})
	if err != nil {
		return nil, fmt.Errorf("estimate gas: %w", err)
	}
	tip, err := x.Eth.SuggestGasTipCap(ctx)
	if err != nil {
		return nil, err
	}
	price, err := x.Eth.SuggestGasPrice(ctx)
	if err != nil {
		return nil, err
	}
	pending, err := x.Eth.PendingNonceAt(ctx, from)
	if err != nil {
		return nil, err
	}
	sender := strings.ToLower(from.Hex())
	for range 5 {
		var b *daoguard.Broadcast
		err := x.Store.Update(ctx, func(tx daoguard.Tx) error {
			next, err := tx.NextNonce(ctx, chainID.Uint64(), sender)
			if err != nil {
				return err
			}
			t := types.NewTx(&types.DynamicFeeTx{
				ChainID: chainID, Nonce: max(pending, next), GasTipCap: tip,
				GasFeeCap: new(big.Int).Add(tip, new(big.Int).Mul(price, big.NewInt(2))),
				Gas:       gas + gas/4, To: &to, Value: value, Data: data,
			})
			signed, err := types.SignTx(t, types.LatestSignerForChainID(chainID), key)
			if err != nil {
				return err
			}
			raw, err := signed.MarshalBinary()
			if err != nil {
				return err
			}
			b = &daoguard.Broadcast{Attempt: attempt, ActionID: a.ID, ChainID: chainID.Uint64(), Sender: sender, Nonce: signed.Nonce(), TxHash: signed.Hash().Hex(), Raw: raw}
			if err := tx.AddBroadcast(ctx, b); err != nil {
				return err
			}
			return tx.Append(ctx, &daoguard.AuditEntry{OrgID: a.OrgID, ActorID: daoguard.ActorSystem, ActorKind: "system", ActionID: a.ID, Event: "action.signed",
				Detail: []byte(fmt.Sprintf(`{"attempt":%q,"tx_hash":%q,"sender":%q,"nonce":%d}`, attempt, b.TxHash, sender, b.Nonce))})
		})
		if daoguard.ErrorCode(err) == daoguard.CodeConflict {
			continue // another gateway took that nonce: take the next
		}
		return b, err
	}
	return nil, errors.New("could not record a nonce for " + sender)
}

// await sends the recorded transaction (again: a node that has it already
// says so, which is fine), then waits for its receipt at the configured
// depth.
func (x *Executor) await(ctx context.Context, b *daoguard.Broadcast) (daoguard.ExecResult, error) {
	hash := common.HexToHash(b.TxHash)
	if _, err := x.Eth.TransactionReceipt(ctx, hash); errors.Is(err, ethereum.NotFound) {
		var t types.Transaction
		if err := t.UnmarshalBinary(b.Raw); err != nil {
			return daoguard.ExecResult{}, fmt.Errorf("recorded transaction %s: %w", b.TxHash, err)
		}
		if err := x.Eth.SendTransaction(ctx, &t); err != nil && !alreadySent(err) {
			return daoguard.ExecResult{}, fmt.Errorf("send %s: %w", b.TxHash, err)
		}
		if x.Mine != nil {
			x.Mine()
		}
	} else if err != nil {
		return daoguard.ExecResult{}, err
	}
	rc, err := WaitReceipt(ctx, x.Eth, hash)
	if err != nil {
		return daoguard.ExecResult{}, err
	}
	for x.Confirmations > 1 {
		head, err := x.Eth.BlockNumber(ctx)
		if err != nil {
			return daoguard.ExecResult{}, err
		}
		if head+1 >= rc.BlockNumber.Uint64()+x.Confirmations {
			break
		}
		if x.Mine != nil {
			x.Mine()
			continue
		}
		select {
		case <-ctx.Done():
			return daoguard.ExecResult{}, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	// The receipt may have moved in a reorg while waiting: read it again.
	if rc, err = x.Eth.TransactionReceipt(ctx, hash); err != nil {
		return daoguard.ExecResult{}, err
	}
	res := daoguard.ExecResult{Success: rc.Status == types.ReceiptStatusSuccessful, TxHash: b.TxHash, Block: rc.BlockNumber.Uint64(), GasUsed: rc.GasUsed}
	if !res.Success {
		res.Detail = x.revertReason(ctx, b, rc)
	}
	return res, nil
}

// alreadySent: the node has the transaction, or has mined it already.
func alreadySent(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "already known") || strings.Contains(s, "nonce too low") || strings.Contains(s, "already imported") || strings.Contains(s, "known transaction")
}

// revertReason replays a reverted transaction at its block's parent to
// read why it reverted.
func (x *Executor) revertReason(ctx context.Context, b *daoguard.Broadcast, rc *types.Receipt) string {
	var t types.Transaction
	if err := t.UnmarshalBinary(b.Raw); err != nil {
		return "reverted"
	}
	from := common.HexToAddress(b.Sender)
	msg := ethereum.CallMsg{From: from, To: t.To(), Value: t.Value(), Data: t.Data(), Gas: t.Gas()}
	_, err := x.Eth.CallContract(ctx, msg, new(big.Int).Sub(rc.BlockNumber, big.NewInt(1)))
	if data, ok := revertData(err); ok {
		return "reverted: " + revertReason(data)
	}
	return "reverted"
}
