// Package devchain provisions the dev environment of API.md on a node: the
// Safe v1.4.1 treasury owned by two humans and daoguard's signer, the ops
// hot wallet whose key daoguard holds, a 6-decimal USDC test token, funded
// accounts, the organisation's catalogue, and a default policy. serve
// --dev, the demo and the tests use it, on the in-process chain or on a
// real node over JSON-RPC.
package devchain

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/evm"
	"github.com/daoguard/daoguard/internal/secrets"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rpc"
)

// Env is a provisioned dev environment.
type Env struct {
	ChainID    uint64
	Contracts  *evm.DevContracts
	Ops        *daoguard.Signer             // the hot wallet (account ops)
	Relayer    *daoguard.Signer             // daoguard's signer: Safe owner and relayer
	Humans     map[string]*ecdsa.PrivateKey // the human owners' keys, by principal name
	Recipients []common.Address             // the default policy's allowlisted recipients
}

// HumanNames are the dev humans, in owner order.
var HumanNames = []string{"human1", "human2"}

// Provision deploys the dev contracts from deployer over the node and
// records the organisation's accounts and assets. The humans' owner keys
// are given (so that a restart keeps them) or generated. It funds the Safe
// with 100 ETH and 1,000,000 USDC, the wallet with 10 ETH and 10,000 USDC,
// and the relayer with 10 ETH for gas.
func Provision(ctx context.Context, st daoguard.Store, keyring *secrets.Keyring, orgID string, eth evm.Client, mine evm.Miner, deployer *ecdsa.PrivateKey, humans map[string]*ecdsa.PrivateKey) (*Env, error) {
	env, err := newEnv(ctx, st, keyring, orgID, eth, humans)
	if err != nil {
		return nil, err
	}
	owners := []common.Address{crypto.PubkeyToAddress(env.Humans["human1"].PublicKey), crypto.PubkeyToAddress(env.Humans["human2"].PublicKey), common.HexToAddress(env.Relayer.Address)}
	if env.Contracts, err = evm.DeployDev(ctx, eth, mine, deployer, owners, 2); err != nil {
		return nil, err
	}
	ether := new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)
	usdc := big.NewInt(1_000_000)
	ops, relayer := common.HexToAddress(env.Ops.Address), common.HexToAddress(env.Relayer.Address)
	for _, f := range []struct {
		to  common.Address
		eth int64
	}{{env.Contracts.Safe, 100}, {ops, 10}, {relayer, 10}} {
		if _, err := evm.Transact(ctx, eth, mine, deployer, &f.to, new(big.Int).Mul(big.NewInt(f.eth), ether), nil); err != nil {
			return nil, fmt.Errorf("fund %s: %w", f.to.Hex(), err)
		}
	}
	for _, m := range []struct {
		to  common.Address
		amt int64
	}{{env.Contracts.Safe, 1_000_000}, {ops, 10_000}} {
		if err := evm.Mint(ctx, eth, mine, deployer, env.Contracts.Token, m.to, new(big.Int).Mul(big.NewInt(m.amt), usdc)); err != nil {
			return nil, err
		}
	}
	return env, env.record(ctx, st, orgID)
}

// ErrGone is Reattach's answer when the node no longer has the
// environment's contracts (a dev node restarted empty).
var ErrGone = errors.New("the dev contracts are not on this node")

// Reattach is the environment an earlier Provision deployed on this node,
// at the contracts' recorded addresses, if they are all still there and the
// Safe is still owned by the relayer and the humans: a restart against a
// long-running dev node keeps its treasury and history.
// Otherwise it returns ErrGone and the caller provisions anew.
func Reattach(ctx context.Context, st daoguard.Store, keyring *secrets.Keyring, orgID string, eth evm.Client, c *evm.DevContracts, humans map[string]*ecdsa.PrivateKey) (*Env, error) {
	for _, a := range []common.Address{c.Singleton, c.Factory, c.Handler, c.MultiSend, c.MultiSendCallOnly, c.Safe, c.Token} {
		code, err := eth.CodeAt(ctx, a, nil)
		if err != nil {
			return nil, err
		}
		if len(code) == 0 {
			return nil, ErrGone
		}
	}
	env, err := newEnv(ctx, st, keyring, orgID, eth, humans)
	if err != nil {
		return nil, err
	}
	// The Safe must still be the one these keys own: a store made anew
	// has a new relayer (and an unfunded wallet), so provision again.
	safe, err := evm.LoadArtifact("Safe")
	if err != nil {
		return nil, err
	}
	out, err := evm.Call(ctx, eth, safe, c.Safe, "getOwners")
	if err != nil {
		return nil, ErrGone
	}
	owners := out[0].([]common.Address)
	for _, o := range []common.Address{common.HexToAddress(env.Relayer.Address), crypto.PubkeyToAddress(env.Humans["human1"].PublicKey), crypto.PubkeyToAddress(env.Humans["human2"].PublicKey)} {
		if !slices.Contains(owners, o) {
			return nil, ErrGone
		}
	}
	env.Contracts = c
	return env, env.record(ctx, st, orgID)
}

// newEnv is the environment without contracts: the chain id, the humans'
// keys, daoguard's signers (created on first use) and the recipients.
func newEnv(ctx context.Context, st daoguard.Store, keyring *secrets.Keyring, orgID string, eth evm.Client, humans map[string]*ecdsa.PrivateKey) (*Env, error) {
	id, err := eth.ChainID(ctx)
	if err != nil {
		return nil, err
	}
	env := &Env{ChainID: id.Uint64(), Humans: map[string]*ecdsa.PrivateKey{}}
	for _, n := range HumanNames {
		k := humans[n]
		if k == nil {
			if k, err = crypto.GenerateKey(); err != nil {
				return nil, err
			}
		}
		env.Humans[n] = k
	}
	if env.Ops, err = evm.EnsureSigner(ctx, st, keyring, orgID, "ops"); err != nil {
		return nil, err
	}
	if env.Relayer, err = evm.EnsureSigner(ctx, st, keyring, orgID, evm.RelayerName); err != nil {
		return nil, err
	}
	for i := 1; i <= 3; i++ {
		env.Recipients = append(env.Recipients, common.BigToAddress(big.NewInt(int64(0xbeef0000+i))))
	}
	return env, nil
}

// record writes the organisation's accounts and assets.
func (e *Env) record(ctx context.Context, st daoguard.Store, orgID string) error {
	return st.Update(ctx, func(tx daoguard.Tx) error {
		for _, a := range []*daoguard.Account{
			{OrgID: orgID, Name: "treasury", ChainID: e.ChainID, Address: e.Contracts.Safe.Hex(), Kind: daoguard.AccountSafe},
			{OrgID: orgID, Name: "ops", ChainID: e.ChainID, Address: e.Ops.Address, Kind: daoguard.AccountWallet},
		} {
			if err := tx.PutAccount(ctx, a); err != nil {
				return err
			}
		}
		for _, a := range []*daoguard.Asset{
			{OrgID: orgID, Symbol: "ETH", ChainID: e.ChainID, Decimals: 18},
			{OrgID: orgID, Symbol: "USDC", ChainID: e.ChainID, Address: strings.ToLower(e.Contracts.Token.Hex()), Decimals: 6},
		} {
			if err := tx.PutAsset(ctx, a); err != nil {
				return err
			}
		}
		return nil
	})
}

// Policy is the default dev policy: an agent's small transfers from ops to
// the allowlisted recipients run on their own (up to 500 USDC or 0.5 ETH a
// payment, and 1,500 USDC and 1.5 ETH a day: split transfers escalate once
// the window fills);
// larger ones, calls and approvals from ops, and anything from the
// treasury need both humans' approval; an agent's transfer from ops to any
// other address is denied (for the Safe, their EIP-712
// signatures), with a short timelock. Batches may go through MultiSend.
func (e *Env) Policy() string {
	var b strings.Builder
	b.WriteString("# The dev environment's default policy (daoguard serve --dev).\nversion: 1\nname: dev\n\nlists:\n  recipients:\n")
	for _, r := range e.Recipients {
		fmt.Fprintf(&b, "    - %s\n", strings.ToLower(r.Hex()))
	}
	fmt.Fprintf(&b, `
groups:
  council: {role: council}

council: {group: council, approvals: 2, timelock: 5s}

protections:
  delegatecall_allowlist:
    - %s   # MultiSendCallOnly
    - %s   # MultiSend
  approval_caps:
    USDC: "1000"

units:
  max_holdings_pct: "25"

rules:
  - name: ops-small-usdc
    principal_kinds: [agent]
    accounts: [ops]
    actions: [transfer]
    assets: [USDC]
    recipients: {lists: [recipients]}
    tier: autonomous
    limits:
      max_amount: "500"
      windows:
        - {period: 24h, per: agent, asset: USDC, max_amount: "1500"}
    over_limit: approval
    approval: {group: council, approvals: 2, timelock: 5s}

  - name: ops-small-eth
    principal_kinds: [agent]
    accounts: [ops]
    actions: [transfer]
    assets: [ETH]
    recipients: {lists: [recipients]}
    tier: autonomous
    limits:
      max_amount: "0.5"
      windows:
        - {period: 24h, per: agent, asset: ETH, max_amount: "1.5"}
    over_limit: approval
    approval: {group: council, approvals: 2, timelock: 5s}

  - name: ops-calls
    accounts: [ops]
    actions: [call, approval]
    tier: approval
    approval: {group: council, approvals: 2, timelock: 5s}

  - name: ops-humans
    principal_kinds: [human]
    accounts: [ops]
    tier: approval
    approval: {group: council, approvals: 2, timelock: 5s}

  - name: treasury-both-humans
    accounts: [treasury]
    tier: approval
    approval: {group: council, approvals: 2, timelock: 5s}

# What all agents together move on their own, whatever the rules say (the
# dev chain has no price sources: the ceilings count each asset in its
# own units).
ceilings:
  - name: agents-together
    agents: true
    windows:
      - {period: 24h, asset: ETH, max_amount: "3"}
      - {period: 24h, asset: USDC, max_amount: "3000"}
`, strings.ToLower(e.Contracts.MultiSendCallOnly.Hex()), strings.ToLower(e.Contracts.MultiSend.Hex()))
	return b.String()
}

// DeployerFunds is what Provision spends from the deployer (funding and
// gas), with room to spare: FundFromNode tops the deployer up to it.
var DeployerFunds = new(big.Int).Mul(big.NewInt(200), big.NewInt(1e18))

// FundFromNode tops `to` up to want wei from the first account a local
// development node unlocks (anvil, hardhat node and ganache each start
// with funded, unlocked accounts), with eth_sendTransaction, and waits for
// the receipt. A node that unlocks no account, or whose first account is
// short of funds, is an error that says so. Only for dev nodes: a real
// node never holds keys for daoguard.
func FundFromNode(ctx context.Context, rpcc *rpc.Client, eth evm.Client, to common.Address, want *big.Int) error {
	have, err := eth.BalanceAt(ctx, to, nil)
	if err != nil {
		return err
	}
	if have.Cmp(want) >= 0 {
		return nil
	}
	var accounts []common.Address
	if err := rpcc.CallContext(ctx, &accounts, "eth_accounts"); err != nil {
		return fmt.Errorf("eth_accounts: %w", err)
	}
	if len(accounts) == 0 {
		return fmt.Errorf("the node unlocks no account to fund the dev deployer %s from", to.Hex())
	}
	var hash common.Hash
	tx := map[string]any{"from": accounts[0], "to": to, "value": (*hexutil.Big)(new(big.Int).Sub(want, have))}
	if err := rpcc.CallContext(ctx, &hash, "eth_sendTransaction", tx); err != nil {
		return fmt.Errorf("fund the dev deployer %s from %s: %w", to.Hex(), accounts[0].Hex(), err)
	}
	rc, err := evm.WaitReceipt(ctx, eth, hash)
	if err != nil {
		return err
	}
	if rc.Status != types.ReceiptStatusSuccessful {
		return fmt.Errorf("funding the dev deployer %s failed (transaction %s)", to.Hex(), hash.Hex())
	}
	return nil
}
