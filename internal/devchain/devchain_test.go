package devchain_test

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/decider"
	"github.com/daoguard/daoguard/internal/devchain"
	"github.com/daoguard/daoguard/internal/evm"
	"github.com/daoguard/daoguard/internal/evm/evmtest"
	"github.com/daoguard/daoguard/internal/policy"
	"github.com/daoguard/daoguard/internal/secrets"
	"github.com/daoguard/daoguard/internal/service"
	"github.com/daoguard/daoguard/internal/sqlite"
	"github.com/daoguard/daoguard/internal/storetest"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
)

const org = "org_dev"

// world is daoguard over the dev environment: a SQLite store, the policy
// engine with holdings read from the chain, the simulator, the executor,
// and the principals of API.md.
type world struct {
	t       testing.TB
	chain   *evm.SimChain
	eth     evm.Client
	store   *sqlite.DB
	clock   *storetest.Clock
	keyring *secrets.Keyring
	env     *devchain.Env
	svc     *service.Service
	exec    *evm.Executor
	hold    *evm.HoldingsPoller
	agent   string
	humans  []string // principal ids of human1, human2
	token   *evm.Artifact
}

func newWorld(t testing.TB, dsn string, chain *evm.SimChain, eth evm.Client, keyring *secrets.Keyring, provision bool) *world {
	t.Helper()
	evmtest.Artifact(t, "DaoguardProbe")
	w := &world{t: t, chain: chain, eth: eth, clock: storetest.NewRunningClock(), keyring: keyring, token: evmtest.Artifact(t, "DevToken")}
	w.store = sqlite.NewDB(dsn)
	w.store.Now = w.clock.Now
	if err := w.store.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.store.Close() })
	rpcc, _ := evm.RPCOf(eth)
	if chain != nil {
		rpcc = chain.RPC
	}
	sim, err := evm.NewSimulator(eth, rpcc)
	if err != nil {
		t.Fatal(err)
	}
	if w.exec, err = evm.NewExecutor(w.store, keyring, eth, sim); err != nil {
		t.Fatal(err)
	}
	if chain != nil {
		w.exec.Mine = chain.Mine
	}
	w.hold = evm.NewHoldingsPoller(eth, evm.SimChainID, func(ctx context.Context) (acc []*daoguard.Account, as []*daoguard.Asset, err error) {
		err = w.store.View(ctx, func(tx daoguard.Tx) error {
			if acc, err = tx.Accounts(ctx, org); err != nil {
				return err
			}
			as, err = tx.Assets(ctx, org)
			return err
		})
		return acc, as, err
	})
	w.hold.Now = w.clock.Now
	w.svc = service.New(w.store, &decider.Policy{Holdings: w.hold}, w.exec, "node-1")
	w.svc.Simulator = sim
	if w.svc.Signatures, err = evm.NewSafeApprovals(eth); err != nil {
		t.Fatal(err)
	}
	if provision {
		w.provision()
	} else {
		w.load()
	}
	return w
}

func (w *world) provision() { w.provisionWith(nil) }

// provisionWith provisions the dev environment under the policy that
// policyOf returns for it (nil: the default dev policy).
func (w *world) provisionWith(policyOf func(*devchain.Env) string) {
	ctx := context.Background()
	err := w.store.Update(ctx, func(tx daoguard.Tx) error {
		if err := tx.PutOrg(ctx, &daoguard.Organisation{ID: org, Name: "Dev DAO"}); err != nil {
			return err
		}
		for _, p := range []*daoguard.Principal{
			{ID: "agt_1", OrgID: org, Kind: daoguard.PrincipalAgent, Name: "agent", Autonomy: daoguard.AutonomyAutonomous},
			{ID: "hum_1", OrgID: org, Kind: daoguard.PrincipalHuman, Name: "human1", Roles: []string{"council"}},
			{ID: "hum_2", OrgID: org, Kind: daoguard.PrincipalHuman, Name: "human2", Roles: []string{"council"}},
		} {
			if err := tx.PutPrincipal(ctx, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
	if w.env, err = devchain.Provision(ctx, w.store, w.keyring, org, w.eth, w.chain.Mine, w.chain.Deployer, nil); err != nil {
		w.t.Fatal(err)
	}
	doc := w.env.Policy()
	if policyOf != nil {
		doc = policyOf(w.env)
	}
	if _, err := policy.Parse([]byte(doc)); err != nil {
		w.t.Fatalf("the policy does not compile: %v\n%s", err, doc)
	}
	if _, err := w.svc.LoadFirstPolicy(ctx, org, doc); err != nil {
		w.t.Fatal(err)
	}
	w.load()
}

func (w *world) load() {
	w.agent, w.humans = "agt_1", []string{"hum_1", "hum_2"}
}

func (w *world) submit(principal string, in daoguard.Intent) *daoguard.Action {
	w.t.Helper()
	if err := w.hold.Poll(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	a, err := w.svc.Submit(context.Background(), principal, "", in)
	if err != nil {
		w.t.Fatalf("submit %+v: %v", in, err)
	}
	return a
}

func (w *world) state(id string) *daoguard.Action {
	w.t.Helper()
	a, _, err := w.svc.Action(context.Background(), w.humans[0], id)
	if err != nil {
		w.t.Fatal(err)
	}
	return a
}

// run executes what is due, past any timelock.
func (w *world) run() {
	w.t.Helper()
	w.clock.Advance(time.Minute)
	if _, err := w.svc.ExecuteDue(context.Background()); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) sign(a *daoguard.Action, key *ecdsa.PrivateKey) string {
	w.t.Helper()
	sig, err := evm.SignSafeTx(common.HexToHash(a.Decoded.SafeTx.Hash), key)
	if err != nil {
		w.t.Fatal(err)
	}
	return hexutil.Encode(sig)
}

func (w *world) balance(asset string, who common.Address) *big.Int {
	w.t.Helper()
	ctx := context.Background()
	if asset == "ETH" {
		b, err := w.eth.BalanceAt(ctx, who, nil)
		if err != nil {
			w.t.Fatal(err)
		}
		return b
	}
	out, err := evm.Call(ctx, w.eth, w.token, w.env.Contracts.Token, "balanceOf", who)
	if err != nil {
		w.t.Fatal(err)
	}
	return out[0].(*big.Int)
}

func (w *world) calldata(a *evm.Artifact, method string, args ...any) string {
	w.t.Helper()
	b, err := a.ABI.Pack(method, args...)
	if err != nil {
		w.t.Fatal(err)
	}
	return hexutil.Encode(b)
}

// simWorld is daoguard over a provisioned dev environment on a new
// in-process chain, closed with the test.
func simWorld(t testing.TB) (*evm.SimChain, *world) {
	t.Helper()
	chain, err := evm.NewSimChain()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chain.Close() })
	return chain, newWorld(t, filepath.Join(t.TempDir(), "data.db"), chain, chain.Client, newKeyring(t), true)
}

func newKeyring(t testing.TB) *secrets.Keyring {
	k, err := secrets.ParseKeyring(secrets.NewKeyringFile())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func wantCode(t *testing.T, err error, code daoguard.Code) {
	t.Helper()
	if daoguard.ErrorCode(err) != code {
		t.Fatalf("got %v, want %s", err, code)
	}
}

func hasReason(a *daoguard.Action, code string) bool {
	for _, r := range a.Decision.Reasons {
		if r.Code == code {
			return true
		}
	}
	return false
}

// TestDevChain runs the pipeline end to end on the in-process chain:
// ERC-20 and native transfers through the hot wallet and through the Safe
// with both humans' EIP-712 signatures, the batches and delegatecalls
// policy must stop, owner signatures refused before anything is
// recorded, and code that changes between approval and execution.
func TestDevChain(t *testing.T) {
	ctx := context.Background()
	chain, w := simWorld(t)
	rcpt := w.env.Recipients[0]
	usdc := func(n int64) *big.Int { return big.NewInt(n * 1_000_000) }

	t.Run("WalletUSDC", func(t *testing.T) {
		before := w.balance("USDC", rcpt)
		a := w.submit(w.agent, daoguard.Intent{Account: "ops", Kind: "transfer", Asset: "USDC", To: rcpt.Hex(), Amount: "100"})
		if a.State != daoguard.StateQueued || a.Decoded.Simulation == nil || !a.Decoded.Simulation.Success {
			t.Fatalf("%s %+v %+v", a.State, a.Decision.Reasons, a.Decoded.Simulation)
		}
		w.run()
		got := w.state(a.ID)
		if got.State != daoguard.StateExecuted || got.Result.TxHash == "" || got.Result.Block == 0 || got.Result.GasUsed == 0 {
			t.Fatalf("%s %+v", got.State, got.Result)
		}
		// Mainnet's gas schedule: an ERC-20 transfer costs about 51k (the
		// same transfer on ganache in cmd/daoguard's TestRealNode: 51,382).
		if got.Result.GasUsed > 70_000 {
			t.Fatalf("a token transfer used %d gas: the dev chain does not run mainnet's rules", got.Result.GasUsed)
		}
		if d := new(big.Int).Sub(w.balance("USDC", rcpt), before); d.Cmp(usdc(100)) != 0 {
			t.Fatalf("recipient got %s", d)
		}
	})
	t.Run("WalletETH", func(t *testing.T) {
		before := w.balance("ETH", rcpt)
		a := w.submit(w.agent, daoguard.Intent{Account: "ops", Kind: "transfer", Asset: "ETH", To: rcpt.Hex(), Amount: "0.25"})
		w.run()
		if got := w.state(a.ID); got.State != daoguard.StateExecuted {
			t.Fatalf("%s %+v %+v", got.State, got.Decision.Reasons, got.Result)
		}
		if d := new(big.Int).Sub(w.balance("ETH", rcpt), before); d.Cmp(big.NewInt(25e16)) != 0 {
			t.Fatalf("recipient got %s wei", d)
		}
	})
	t.Run("SafeUSDCWithOwnerSignatures", func(t *testing.T) {
		before := w.balance("USDC", rcpt)
		a := w.submit(w.agent, daoguard.Intent{Account: "treasury", Kind: "transfer", Asset: "USDC", To: rcpt.Hex(), Amount: "2500"})
		if a.State != daoguard.StateAwaitingApproval || a.Decoded.SafeTx == nil || a.Decision.RequiredApprovals != 2 {
			t.Fatalf("%s %+v %+v", a.State, a.Decision, a.Decoded.SafeTx)
		}
		h1, h2 := w.env.Humans["human1"], w.env.Humans["human2"]
		stranger, _ := crypto.GenerateKey()
		other := *a
		other.Decoded.SafeTx = &daoguard.SafeTxRef{Hash: crypto.Keccak256Hash([]byte("another transaction")).Hex()}
		// Refused before anything is recorded: no signature, a stranger's,
		// a signature of another transaction, a malformed one.
		_, err := w.svc.Approve(ctx, w.humans[0], a.ID, "", "")
		wantCode(t, err, daoguard.CodeOwnerSignature)
		_, err = w.svc.Approve(ctx, w.humans[0], a.ID, w.sign(a, stranger), "")
		wantCode(t, err, daoguard.CodeNotSafeOwner)
		_, err = w.svc.Approve(ctx, w.humans[0], a.ID, w.sign(&other, h1), "")
		wantCode(t, err, daoguard.CodeNotSafeOwner) // it recovers to someone else: not an owner
		_, err = w.svc.Approve(ctx, w.humans[0], a.ID, "0x1234", "")
		wantCode(t, err, daoguard.CodeOwnerSignature)
		if _, err := w.svc.Approve(ctx, w.humans[0], a.ID, w.sign(a, h1), "ok"); err != nil {
			t.Fatal(err)
		}
		// human2 presenting human1's signature: one owner, one signature.
		_, err = w.svc.Approve(ctx, w.humans[1], a.ID, w.sign(a, h1), "")
		wantCode(t, err, daoguard.CodeDuplicateSignature)
		got, err := w.svc.Approve(ctx, w.humans[1], a.ID, w.sign(a, h2), "ok")
		if err != nil || got.State != daoguard.StateQueued {
			t.Fatalf("%v %v", got, err)
		}
		w.run()
		if got = w.state(a.ID); got.State != daoguard.StateExecuted {
			t.Fatalf("%s %+v", got.State, got.Result)
		}
		if d := new(big.Int).Sub(w.balance("USDC", rcpt), before); d.Cmp(usdc(2500)) != 0 {
			t.Fatalf("recipient got %s", d)
		}
	})
	t.Run("SafeETH", func(t *testing.T) {
		a := w.submit(w.humans[0], daoguard.Intent{Account: "treasury", Kind: "transfer", Asset: "ETH", To: rcpt.Hex(), Amount: "3"})
		if a.State != daoguard.StateAwaitingApproval {
			t.Fatalf("%s %+v", a.State, a.Decision.Reasons)
		}
		// The submitter cannot approve; the other human and daoguard's
		// own owner key make the threshold of 2.
		if _, err := w.svc.Approve(ctx, w.humans[1], a.ID, w.sign(a, w.env.Humans["human2"]), ""); err != nil {
			t.Fatal(err)
		}
		// Policy asks for 2 approvals: a second human is needed even
		// though the Safe would run with the relayer's signature.
		if got := w.state(a.ID); got.State != daoguard.StateAwaitingApproval {
			t.Fatalf("one approval of two queued it: %s", got.State)
		}
		if _, err := w.svc.Cancel(ctx, w.humans[0], a.ID); err != nil {
			t.Fatal(err)
		}
		// An agent's native transfer from the Safe: both owners sign, the
		// Safe's execTransaction moves the ETH.
		before, safeBefore := w.balance("ETH", rcpt), w.balance("ETH", w.env.Contracts.Safe)
		b := w.submit(w.agent, daoguard.Intent{Account: "treasury", Kind: "transfer", Asset: "ETH", To: rcpt.Hex(), Amount: "3"})
		for i, h := range w.humans {
			if _, err := w.svc.Approve(ctx, h, b.ID, w.sign(b, w.env.Humans[devchain.HumanNames[i]]), ""); err != nil {
				t.Fatal(err)
			}
		}
		w.run()
		if got := w.state(b.ID); got.State != daoguard.StateExecuted {
			t.Fatalf("%s %+v", got.State, got.Result)
		}
		three := new(big.Int).Mul(big.NewInt(3), big.NewInt(1e18))
		if d := new(big.Int).Sub(w.balance("ETH", rcpt), before); d.Cmp(three) != 0 {
			t.Fatalf("recipient got %s wei", d)
		}
		if d := new(big.Int).Sub(safeBefore, w.balance("ETH", w.env.Contracts.Safe)); d.Cmp(three) != 0 {
			t.Fatalf("the Safe paid %s wei (the relayer pays the gas)", d)
		}
	})
	t.Run("MultiSendHidingUnlimitedApprove", func(t *testing.T) {
		unlimited := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))
		approve, _ := w.token.ABI.Pack("approve", common.HexToAddress("0x000000000000000000000000000000000000dead"), unlimited)
		transfer, _ := w.token.ABI.Pack("transfer", rcpt, big.NewInt(1))
		batch := evm.PackMultiSend(evm.TxCall{To: w.env.Contracts.Token, Data: transfer}, evm.TxCall{To: w.env.Contracts.Token, Data: approve})
		a := w.submit(w.agent, daoguard.Intent{Account: "treasury", Kind: "call", To: w.env.Contracts.MultiSend.Hex(), Operation: "delegatecall", Data: hexutil.Encode(batch)})
		if a.State != daoguard.StateDenied || !hasReason(a, policy.ReasonUnlimitedApproval) {
			t.Fatalf("%s %+v", a.State, a.Decision.Reasons)
		}
		// The simulation saw the allowance the batch would leave behind.
		if s := a.Decoded.Simulation; s == nil || len(s.Allowances) != 1 || s.Allowances[0].Amount.Int().Cmp(unlimited) != 0 {
			t.Fatalf("simulation %+v", s)
		}
	})
	t.Run("CallsDecodedForApprovers", func(t *testing.T) {
		// A configured contract (its Hardhat-style artifact) and the
		// standard ABIs decode every call of a batch; what nothing decodes
		// is marked opaque.
		proxy, err := evm.Deploy(ctx, w.eth, chain.Mine, chain.Deployer, evmtest.Artifact(t, "DevProxy"), w.env.Contracts.Token)
		if err != nil {
			t.Fatal(err)
		}
		art, err := os.ReadFile("../evm/artifacts/DevProxy.json")
		if err != nil {
			t.Fatal(err)
		}
		reg, err := policy.NewRegistry([]policy.ContractABI{{Name: "Upgradeable", Address: proxy.Hex(), ABI: art}})
		if err != nil {
			t.Fatal(err)
		}
		w.svc.Contracts, w.svc.Decider.(*decider.Policy).Contracts = reg, reg
		defer func() { w.svc.Contracts, w.svc.Decider.(*decider.Policy).Contracts = nil, nil }()
		transfer, _ := w.token.ABI.Pack("transfer", rcpt, big.NewInt(1))
		upgrade, _ := evmtest.Artifact(t, "DevProxy").ABI.Pack("upgradeTo", w.env.Contracts.Token)
		batch := evm.PackMultiSend(evm.TxCall{To: w.env.Contracts.Token, Data: transfer}, evm.TxCall{To: proxy, Data: upgrade}, evm.TxCall{To: proxy, Data: []byte{0xca, 0xfe, 0xba, 0xbe}})
		a := w.submit(w.agent, daoguard.Intent{Account: "treasury", Kind: "call", To: w.env.Contracts.MultiSendCallOnly.Hex(), Operation: "delegatecall", Data: hexutil.Encode(batch)})
		got := a.Decoded.Calls
		if len(got) != 4 || got[0].Function != "multiSend(bytes)" || got[1].Contract != "USDC (ERC-20)" || got[1].Function != "transfer(address,uint256)" ||
			got[1].Args[0].Value != rcpt.Hex() || got[2].Contract != "Upgradeable" || got[2].Function != "upgradeTo(address)" ||
			got[2].Args[0].Name != "implementation" || got[2].Args[0].Value != w.env.Contracts.Token.Hex() || !got[3].Opaque || got[3].Selector != "0xcafebabe" {
			t.Fatalf("%s %+v", a.State, got)
		}
		// The calls are stored with the action: approvers read them back.
		if back := w.state(a.ID); len(back.Decoded.Calls) != 4 || back.Decoded.Calls[2].Function != "upgradeTo(address)" {
			t.Fatalf("stored calls %+v", back.Decoded.Calls)
		}
	})
	t.Run("DelegatecallToUnknownCode", func(t *testing.T) {
		a := w.submit(w.agent, daoguard.Intent{Account: "treasury", Kind: "call", To: w.env.Contracts.Token.Hex(), Operation: "delegatecall", Data: w.calldata(w.token, "transfer", rcpt, big.NewInt(1))})
		if a.State != daoguard.StateDenied || !hasReason(a, policy.ReasonDelegatecall) {
			t.Fatalf("%s %+v", a.State, a.Decision.Reasons)
		}
	})
	t.Run("RevertDenied", func(t *testing.T) {
		a := w.submit(w.agent, daoguard.Intent{Account: "ops", Kind: "transfer", Asset: "USDC", To: rcpt.Hex(), Amount: "400000"})
		if a.State != daoguard.StateDenied || !hasReason(a, policy.ReasonSimulationReverted) {
			t.Fatalf("%s %+v", a.State, a.Decision.Reasons)
		}
	})
	approveBoth := func(a *daoguard.Action) {
		t.Helper()
		for i, h := range w.humans {
			sig := ""
			if a.Decoded.SafeTx != nil {
				sig = w.sign(a, w.env.Humans[devchain.HumanNames[i]])
			}
			if _, err := w.svc.Approve(ctx, h, a.ID, sig, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Run("ProxyUpgradedAfterApproval", func(t *testing.T) {
		proxyArt := evmtest.Artifact(t, "DevProxy")
		proxy, err := evm.Deploy(ctx, w.eth, chain.Mine, chain.Deployer, proxyArt, w.env.Contracts.Token)
		if err != nil {
			t.Fatal(err)
		}
		a := w.submit(w.agent, daoguard.Intent{Account: "ops", Kind: "call", To: proxy.Hex(), Data: w.calldata(w.token, "decimals")})
		if a.State != daoguard.StateAwaitingApproval || len(a.Decoded.Simulation.Code) != 1 || a.Decoded.Simulation.Code[0].Implementation == "" {
			t.Fatalf("%s %+v %+v", a.State, a.Decision.Reasons, a.Decoded.Simulation)
		}
		approveBoth(a)
		other, err := evm.Deploy(ctx, w.eth, chain.Mine, chain.Deployer, w.token, "Other", "OTH", uint8(18))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := evm.Send(ctx, w.eth, chain.Mine, chain.Deployer, proxyArt, proxy, "upgradeTo", other); err != nil {
			t.Fatal(err)
		}
		w.run()
		got := w.state(a.ID)
		if got.State != daoguard.StateFailed || got.Result.Code != daoguard.ResultCodeChanged || got.Result.TxHash != "" {
			t.Fatalf("%s %+v", got.State, got.Result)
		}
	})
	t.Run("RevertOnChainRecordedWithReason", func(t *testing.T) {
		// Simulated twice successfully (to decide, and again right before
		// signing), then the world changes before the transaction lands:
		// it reverts on chain, and the action ends failed with the reason.
		sw := evmtest.Artifact(t, "DevSwitch")
		at, err := evm.Deploy(ctx, w.eth, chain.Mine, chain.Deployer, sw)
		if err != nil {
			t.Fatal(err)
		}
		a := w.submit(w.agent, daoguard.Intent{Account: "ops", Kind: "call", To: at.Hex(), Data: w.calldata(sw, "poke")})
		if a.State != daoguard.StateAwaitingApproval || !a.Decoded.Simulation.Success {
			t.Fatalf("%s %+v %+v", a.State, a.Decision.Reasons, a.Decoded.Simulation)
		}
		approveBoth(a)
		w.exec.AfterRecord = func() {
			if _, err := evm.Send(ctx, w.eth, chain.Mine, chain.Deployer, sw, at, "set", true); err != nil {
				t.Error(err)
			}
		}
		defer func() { w.exec.AfterRecord = nil }()
		w.run()
		got := w.state(a.ID)
		if got.State != daoguard.StateFailed || got.Result.TxHash == "" || got.Result.GasUsed == 0 || got.Result.Block == 0 || got.Result.Detail != "reverted: switched off" {
			t.Fatalf("%s %+v", got.State, got.Result)
		}
		rc, err := w.eth.TransactionReceipt(ctx, common.HexToHash(got.Result.TxHash))
		if err != nil || rc.Status != 0 {
			t.Fatalf("the chain's receipt: %+v %v", rc, err)
		}
		if out, err := evm.Call(ctx, w.eth, sw, at, "pokes"); err != nil || out[0].(*big.Int).Sign() != 0 {
			t.Fatalf("pokes %v %v", out, err)
		}
	})
	t.Run("CodeDeployedAfterApproval", func(t *testing.T) {
		// The next contract the deployer creates lands at a known address:
		// approve a call there while it has no code, then deploy.
		nonce, err := w.eth.PendingNonceAt(ctx, crypto.PubkeyToAddress(chain.Deployer.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		target := crypto.CreateAddress(crypto.PubkeyToAddress(chain.Deployer.PublicKey), nonce)
		a := w.submit(w.agent, daoguard.Intent{Account: "ops", Kind: "call", To: target.Hex(), Data: "0x12345678"})
		if a.State != daoguard.StateAwaitingApproval {
			t.Fatalf("%s %+v", a.State, a.Decision.Reasons)
		}
		approveBoth(a)
		if _, err := evm.Deploy(ctx, w.eth, chain.Mine, chain.Deployer, w.token, "Other", "OTH", uint8(18)); err != nil {
			t.Fatal(err)
		}
		w.run()
		if got := w.state(a.ID); got.State != daoguard.StateFailed || got.Result.Code != daoguard.ResultCodeChanged {
			t.Fatalf("%s %+v", got.State, got.Result)
		}
	})
}

const (
	envCrashDSN = "DAOGUARD_CRASH_DSN"
	envCrashRPC = "DAOGUARD_CRASH_RPC"
	envCrashKey = "DAOGUARD_CRASH_KEYRING"
)

// TestCrashBetweenSigningAndBroadcast: a gateway killed with SIGKILL after
// recording a signed transaction and before sending it neither loses nor
// repeats the payment. The chain runs in this process and is served over
// HTTP; the gateway is a child process that executes the queued transfer
// and is killed at that point; a new gateway on the same store reconciles.
func TestCrashBetweenSigningAndBroadcast(t *testing.T) {
	if os.Getenv(envCrashDSN) != "" {
		crashChild(t)
		return
	}
	ctx := context.Background()
	chain, err := evm.StartSimChain(evm.SimOptions{HTTP: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	mctx, stop := context.WithCancel(ctx)
	defer stop()
	go chain.AutoMine(mctx, 20*time.Millisecond)
	keyFile := secrets.NewKeyringFile()
	keyring, err := secrets.ParseKeyring(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	dsn := filepath.Join(t.TempDir(), "data.db")
	w := newWorld(t, dsn, chain, chain.Client, keyring, true)
	rcpt := w.env.Recipients[1]
	a := w.submit(w.agent, daoguard.Intent{Account: "ops", Kind: "transfer", Asset: "USDC", To: rcpt.Hex(), Amount: "123"})
	if a.State != daoguard.StateQueued {
		t.Fatalf("%s %+v", a.State, a.Decision.Reasons)
	}
	ops := common.HexToAddress(w.env.Ops.Address)
	nonce0, _ := w.eth.NonceAt(ctx, ops, nil)
	w.store.Close()

	cmd := exec.Command(os.Args[0], "-test.run", "^TestCrashBetweenSigningAndBroadcast$", "-test.v")
	cmd.Env = append(os.Environ(), envCrashDSN+"="+dsn, envCrashRPC+"="+chain.HTTPEndpoint(), envCrashKey+"="+hexutil.Encode(keyFile))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed: %v\n%s", err, out)
	}
	// Recorded, not sent: the action is executing, the chain has nothing.
	w2 := newWorld(t, dsn, chain, chain.Client, keyring, false)
	w2.env = w.env
	got := w2.state(a.ID)
	var b *daoguard.Broadcast
	if err := w2.store.View(ctx, func(tx daoguard.Tx) (err error) { b, err = tx.Broadcast(ctx, got.Attempt); return err }); err != nil {
		t.Fatalf("no transaction recorded for attempt %q (%s): %v\n%s", got.Attempt, got.State, err, out)
	}
	if n, _ := w.eth.NonceAt(ctx, ops, nil); got.State != daoguard.StateExecuting || n != nonce0 {
		t.Fatalf("state %s, nonce %d → %d", got.State, nonce0, n)
	}
	before := w.balance("USDC", rcpt)
	// The restarted gateway (same node name) reconciles: it finds the
	// recorded transaction, sends it, and records the outcome — once.
	for range 2 {
		if _, err := w2.svc.Reconcile(ctx, true); err != nil {
			t.Fatal(err)
		}
		if _, err := w2.svc.ExecuteDue(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got = w2.state(a.ID)
	if got.State != daoguard.StateExecuted || got.Result.TxHash != b.TxHash {
		t.Fatalf("%s %+v, recorded %s", got.State, got.Result, b.TxHash)
	}
	if d := new(big.Int).Sub(w.balance("USDC", rcpt), before); d.Cmp(big.NewInt(123_000_000)) != 0 {
		t.Fatalf("recipient got %s", d)
	}
	if n, _ := w.eth.NonceAt(ctx, ops, nil); n != nonce0+1 {
		t.Fatalf("the wallet sent %d transactions", n-nonce0)
	}
}

// crashChild is the gateway that dies: it executes what is due and is
// killed with SIGKILL right after recording the signed transaction.
func crashChild(t *testing.T) {
	ctx := context.Background()
	eth, err := ethclient.Dial(os.Getenv(envCrashRPC))
	if err != nil {
		t.Fatal(err)
	}
	kf, err := hexutil.Decode(os.Getenv(envCrashKey))
	if err != nil {
		t.Fatal(err)
	}
	keyring, err := secrets.ParseKeyring(kf)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, os.Getenv(envCrashDSN), nil, eth, keyring, false)
	w.exec.AfterRecord = func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	w.clock.Advance(time.Minute)
	n, err := w.svc.ExecuteDue(ctx)
	t.Fatalf("still alive after executing %d: %v", n, err)
}

// BenchmarkSubmitSimulated: agents' payments submitted through the service
// with the policy engine deciding and every action simulated on the
// in-process chain first (no HTTP; see docs/PERFORMANCE.md for the signed
// API without a chain).
func BenchmarkSubmitSimulated(b *testing.B) {
	_, w := simWorld(b)
	if err := w.hold.Poll(context.Background()); err != nil {
		b.Fatal(err)
	}
	rcpt := w.env.Recipients[0].Hex()
	b.SetParallelism(4) // 4 × GOMAXPROCS submitters: batches form as in the gateway
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a, err := w.svc.Submit(context.Background(), w.agent, "", daoguard.Intent{Account: "ops", Kind: "transfer", Asset: "USDC", To: rcpt, Amount: "1"})
			if err != nil || a.State != daoguard.StateQueued || a.Decoded.Simulation == nil || !a.Decoded.Simulation.Success {
				b.Fatal(a, err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "submits/s")
}

// TestReattach: a restart against a node that still has the environment
// reuses it; a store made anew (a new relayer, whom the Safe does not
// list) or a node without the contracts provisions again.
func TestReattach(t *testing.T) {
	ctx := context.Background()
	_, w := simWorld(t)
	env, err := devchain.Reattach(ctx, w.store, w.keyring, org, w.eth, w.env.Contracts, w.env.Humans)
	if err != nil || env.Contracts.Safe != w.env.Contracts.Safe || env.Relayer.Address != w.env.Relayer.Address {
		t.Fatalf("the same store and node: %v %+v", err, env)
	}
	fresh := sqlite.NewDB(filepath.Join(t.TempDir(), "fresh.db"))
	if err := fresh.Open(); err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if err := fresh.Update(ctx, func(tx daoguard.Tx) error { return tx.PutOrg(ctx, &daoguard.Organisation{ID: org, Name: "Dev DAO"}) }); err != nil {
		t.Fatal(err)
	}
	if _, err := devchain.Reattach(ctx, fresh, w.keyring, org, w.eth, w.env.Contracts, w.env.Humans); !errors.Is(err, devchain.ErrGone) {
		t.Fatalf("a new store's relayer does not own the Safe: %v", err)
	}
	gone := *w.env.Contracts
	gone.Token = common.HexToAddress("0x00000000000000000000000000000000000000aa")
	if _, err := devchain.Reattach(ctx, w.store, w.keyring, org, w.eth, &gone, w.env.Humans); !errors.Is(err, devchain.ErrGone) {
		t.Fatalf("no code at the token: %v", err)
	}
}

// TestDevPolicyBounds: the dev policy's bounds, as GET /v1/policy/bounds
// gives them: the agent moves at most its day's windows (1.5 ETH, 1,500
// USDC) without a human; all agents together at most the ceilings' 3 ETH
// and 3,000 USDC a day. Every asset an agent may move has a bound.
func TestDevPolicyBounds(t *testing.T) {
	ctx := context.Background()
	_, w := simWorld(t)
	if err := w.hold.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	bs, err := w.svc.PolicyBounds(ctx, w.humans[0])
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]daoguard.Bound{}
	for _, b := range bs {
		if b.Unbounded && b.Asset != "USD" {
			t.Errorf("unbounded: %+v", b)
		}
		got[b.Principal+" "+b.Period+" "+b.Asset] = b
	}
	for key, want := range map[string]string{
		w.agent + " 24h ETH":  "1.5",
		w.agent + " 24h USDC": "1500",
		" 24h ETH":            "1.5",
		" 24h USDC":           "1500",
	} {
		if b, ok := got[key]; !ok || b.Amount != want {
			t.Errorf("%s: %+v, want %s", key, b, want)
		}
	}
	if b := got[w.agent+" 24h ETH"]; !strings.Contains(b.By, "ops-small-eth") {
		t.Errorf("ETH bound by %q", b.By)
	}
}
