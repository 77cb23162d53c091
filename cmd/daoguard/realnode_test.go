package main

import (
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
	"github.com/daoguard/daoguard/internal/devchain"
	"github.com/daoguard/daoguard/internal/evm"
	"github.com/daoguard/daoguard/internal/sqlite"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
)

// ganache is the node process of TestRealNode, installed from npm by make
// ganache-deps.
const ganache = "../../testdata/ganache/node_modules/.bin/ganache"

// startGanache starts a ganache node on a free loopback port and returns
// its URL. The test stops it by its pid (SIGTERM, then SIGKILL if it
// lingers) and checks that it is gone.
func startGanache(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(ganache); err != nil {
		if os.Getenv("DAOGUARD_REQUIRE_NODE") != "" {
			t.Fatalf("ganache is not installed (%v): run make ganache-deps", err)
		}
		t.Skip("ganache is not installed: make ganache-deps (needs npm)")
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	logs := &lockedWriter{}
	cmd := exec.Command(ganache, "--server.host", "127.0.0.1", "--server.port", port,
		"--chain.chainId", "1337", "--wallet.totalAccounts", "1", "--logging.quiet")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		pid := cmd.Process.Pid
		syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(pid, syscall.SIGKILL)
			<-exited
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("ganache (pid %d) still runs: %v", pid, err)
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("ganache still listens on %s", addr)
		}
	})
	url := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := ethclient.Dial(url)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = c.ChainID(ctx)
			cancel()
			c.Close()
			if err == nil {
				return url
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("ganache exited: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ganache did not answer on %s: %v\n%s", url, err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRealNode is the end-to-end path on a real Ethereum node process:
// ganache from npm on a loopback port; serve --dev --dev-rpc deploys the
// Safe v1.4.1 treasury (from the npm package's artifacts) and the token
// over JSON-RPC; then, through the CLI and the signed HTTP API, an agent's
// small payment runs on its own, and a treasury payment is submitted,
// approved by both owners with EIP-712 signatures, waits out its
// timelock, and executes; receipts and balances are read from the node
// itself. A restarted gateway finds its contracts still on the node.
func TestRealNode(t *testing.T) {
	node := startGanache(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t)
	if code, _, stderr := run(t, nil, "init", "--data", dir, "--url", "http://"+addr); code != 0 {
		t.Fatal(stderr)
	}
	logs := &lockedWriter{}
	stop := startServe(t, logs, nil, "--data", dir, "--dev", "--dev-rpc", node, "--addr", addr)
	waitHealthy(t, addr, logs)

	var dev devJSON
	b, err := os.ReadFile(filepath.Join(dir, "dev.json"))
	if err != nil || json.Unmarshal(b, &dev) != nil {
		t.Fatalf("dev.json: %v %s\n%s", err, b, logs.String())
	}
	if dev.RPC != node || dev.ChainID != 1337 {
		t.Fatalf("dev.json names %s (chain %d), not the node %s", dev.RPC, dev.ChainID, node)
	}
	eth, err := ethclient.Dial(node)
	if err != nil {
		t.Fatal(err)
	}
	defer eth.Close()
	token, err := evm.LoadArtifact("DevToken")
	if err != nil {
		t.Fatal(err)
	}
	treasury, ops, usdc := common.HexToAddress(dev.Accounts["treasury"]), common.HexToAddress(dev.Accounts["ops"]), common.HexToAddress(dev.Assets["USDC"])
	rcpt := common.HexToAddress(dev.Recipients[0])
	balance := func(who common.Address) *big.Int {
		t.Helper()
		out, err := evm.Call(ctx, eth, token, usdc, "balanceOf", who)
		if err != nil {
			t.Fatal(err)
		}
		return out[0].(*big.Int)
	}
	// The Safe is the npm package's Safe v1.4.1, owned 2-of-3 as dev.json says.
	safeArt, _ := evm.LoadArtifact("Safe")
	if out, err := evm.Call(ctx, eth, safeArt, treasury, "VERSION"); err != nil || out[0] != "1.4.1" {
		t.Fatalf("treasury VERSION: %v %v", out, err)
	}
	if out, err := evm.Call(ctx, eth, safeArt, treasury, "getThreshold"); err != nil || out[0].(*big.Int).Int64() != 2 {
		t.Fatalf("treasury threshold: %v %v", out, err)
	}

	creds := filepath.Join(dir, "credentials")
	cli := func(args ...string) *client.Action {
		t.Helper()
		code, out, stderr := run(t, nil, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s\n%s", strings.Join(args, " "), code, stderr, logs.String())
		}
		var a client.Action
		if err := json.Unmarshal([]byte(out), &a); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
		return &a
	}
	waitState := func(id, want string) *client.Action {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			a := cli("action", "get", "--credential", filepath.Join(creds, "human1.json"), "--id", id)
			if a.State == want {
				return a
			}
			if time.Now().After(deadline) || a.State == "failed" || a.State == "denied" {
				t.Fatalf("action %s is %s, want %s: %+v %+v\n%s", id, a.State, want, a.Result, a.Decision.Reasons, logs.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	receipt := func(a *client.Action, from, to common.Address) *types.Receipt {
		t.Helper()
		if a.Result == nil || a.Result.TxHash == "" {
			t.Fatalf("no transaction: %+v", a.Result)
		}
		h := common.HexToHash(a.Result.TxHash)
		rc, err := eth.TransactionReceipt(ctx, h)
		if err != nil {
			t.Fatalf("the node has no receipt for %s: %v", h.Hex(), err)
		}
		tx, _, err := eth.TransactionByHash(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		sender, err := types.Sender(types.LatestSignerForChainID(tx.ChainId()), tx)
		if rc.Status != types.ReceiptStatusSuccessful || rc.BlockNumber.Uint64() != a.Result.Block || rc.GasUsed != a.Result.GasUsed ||
			err != nil || sender != from || tx.To() == nil || *tx.To() != to || tx.Type() != types.DynamicFeeTxType {
			t.Fatalf("receipt %+v, recorded %+v; sender %s (want %s), to %v (want %s), type %d", rc, a.Result, sender.Hex(), from.Hex(), tx.To(), to.Hex(), tx.Type())
		}
		t.Logf("%s: block %d, gas used %d", h.Hex(), rc.BlockNumber, rc.GasUsed)
		return rc
	}

	// An agent's small payment from the hot wallet runs on its own.
	before := balance(rcpt)
	a := cli("action", "submit", "--credential", filepath.Join(creds, "agent.json"), "--account", "ops", "--asset", "USDC", "--to", rcpt.Hex(), "--amount", "100")
	if a.Decoded.Simulation == nil || !a.Decoded.Simulation.Success || a.Decision.Verdict != "allow" {
		t.Fatalf("%s %+v %+v", a.State, a.Decision, a.Decoded.Simulation)
	}
	a = waitState(a.ID, "executed")
	receipt(a, ops, usdc)
	if d := new(big.Int).Sub(balance(rcpt), before); d.Cmp(big.NewInt(100_000_000)) != 0 {
		t.Fatalf("the recipient got %s base units, want 100 USDC", d)
	}

	// A treasury payment: both owners' EIP-712 signatures, the timelock,
	// then the Safe's execTransaction sent by daoguard's relayer.
	before, beforeSafe := balance(rcpt), balance(treasury)
	a = cli("action", "submit", "--credential", filepath.Join(creds, "agent.json"), "--account", "treasury", "--asset", "USDC", "--to", rcpt.Hex(), "--amount", "2500")
	if a.State != "awaiting_approval" || a.Decoded.SafeTx == nil || a.Decision.RequiredApprovals != 2 {
		t.Fatalf("%s %+v %+v", a.State, a.Decision, a.Decoded.SafeTx)
	}
	// The SafeTx hash approvers sign is the deployed Safe's own for the
	// token transfer the intent becomes.
	st := a.Decoded.SafeTx
	transfer, _ := token.ABI.Pack("transfer", rcpt, big.NewInt(2_500_000_000))
	zero := new(big.Int)
	out, err := evm.Call(ctx, eth, safeArt, treasury, "getTransactionHash", usdc, zero, transfer, uint8(0), zero, zero, zero, common.Address{}, common.Address{}, new(big.Int).SetUint64(st.Nonce))
	if err != nil || common.Hash(out[0].([32]byte)).Hex() != st.Hash {
		t.Fatalf("getTransactionHash %v %v, daoguard %s", out, err, st.Hash)
	}
	if code, _, stderr := run(t, nil, "approve", "--credential", filepath.Join(creds, "human1.json"), "--id", a.ID); code != exitFailed || !strings.Contains(stderr, "EIP-712 signature") {
		t.Fatalf("an approval without an owner signature: exit %d %s", code, stderr)
	}
	cli("approve", "--credential", filepath.Join(creds, "human1.json"), "--id", a.ID, "--owner-key", dev.OwnerKeys["human1"])
	q := cli("approve", "--credential", filepath.Join(creds, "human2.json"), "--id", a.ID, "--owner-key", dev.OwnerKeys["human2"])
	if q.State != "queued" || q.Decision.TimelockUntil == nil {
		t.Fatalf("after two approvals: %s %+v", q.State, q.Decision)
	}
	a = waitState(a.ID, "executed")
	if n := waitNoEarlier(t, a, *q.Decision.TimelockUntil); n != "" {
		t.Fatal(n)
	}
	relayer := common.HexToAddress(dev.Humans["daoguard"])
	receipt(a, relayer, treasury)
	if d := new(big.Int).Sub(balance(rcpt), before); d.Cmp(big.NewInt(2_500_000_000)) != 0 {
		t.Fatalf("the recipient got %s base units, want 2500 USDC", d)
	}
	if d := new(big.Int).Sub(beforeSafe, balance(treasury)); d.Cmp(big.NewInt(2_500_000_000)) != 0 {
		t.Fatalf("the treasury paid %s base units, want 2500 USDC", d)
	}
	if out, err := evm.Call(ctx, eth, safeArt, treasury, "nonce"); err != nil || out[0].(*big.Int).Uint64() != st.Nonce+1 {
		t.Fatalf("Safe nonce %v %v after executing nonce %d", out, err, st.Nonce)
	}

	// A restart against the same node keeps the treasury it deployed.
	stop()
	logs2 := &lockedWriter{}
	startServe(t, logs2, nil, "--data", dir, "--dev", "--dev-rpc", node, "--addr", addr)
	waitHealthy(t, addr, logs2)
	var dev2 devJSON
	b, _ = os.ReadFile(filepath.Join(dir, "dev.json"))
	if json.Unmarshal(b, &dev2); dev2.Accounts["treasury"] != dev.Accounts["treasury"] || dev2.Assets["USDC"] != dev.Assets["USDC"] {
		t.Fatalf("the restart redeployed: %v → %v", dev.Accounts, dev2.Accounts)
	}
	if got := cli("action", "get", "--credential", filepath.Join(creds, "human1.json"), "--id", a.ID); got.State != "executed" || got.Result.TxHash != a.Result.TxHash {
		t.Fatalf("after restart: %s %+v", got.State, got.Result)
	}
}

// waitHealthy waits for serve's /healthz (provisioning over JSON-RPC comes
// first).
func waitHealthy(t *testing.T, addr string, logs *lockedWriter) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get("http://" + addr + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("serve did not come up on %s:\n%s", addr, logs.String())
}

// waitNoEarlier says what is wrong if the action executed before its
// timelock ended.
func waitNoEarlier(t *testing.T, a *client.Action, until time.Time) string {
	t.Helper()
	for _, e := range a.Timeline {
		if e.Event == "action.executing" && e.Time.Before(until) {
			return "executed at " + e.Time.String() + ", before the timelock ended at " + until.String()
		}
	}
	return ""
}

// TestDevRPCRefused: --dev-rpc spends a node's unlocked account, so it is
// for a development node on this machine only, and a node that does not
// answer is a clear error.
func TestDevRPCRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, stderr := run(t, nil, "init", "--data", dir); code != 0 {
		t.Fatal(stderr)
	}
	dead := "http://" + freeAddr(t) // nothing listens there
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"--dev-rpc", dead}, exitUsage, "--dev-rpc goes with --dev"},
		{[]string{"--dev", "--dev-rpc", "http://10.1.2.3:8545"}, exitUsage, "loopback"},
		{[]string{"--dev", "--dev-rpc", "https://127.0.0.1:8545"}, exitUsage, "loopback http://"},
		{[]string{"--dev", "--dev-rpc", "http://user:pw@127.0.0.1:8545"}, exitUsage, "loopback"},
		{[]string{"--dev", "--dev-rpc", "127.0.0.1:8545"}, exitUsage, "loopback"},
		{[]string{"--dev", "--dev-rpc", "http://localhost.example.org:8545"}, exitUsage, "loopback"},
		{[]string{"--dev", "--dev-rpc", dead, "--addr", freeAddr(t)}, exitFailed, "local development node"},
		{[]string{"--dev", "--dev-rpc", "ws" + strings.TrimPrefix(dead, "http"), "--addr", freeAddr(t)}, exitFailed, "local development node"},
	} {
		code, _, stderr := run(t, nil, append([]string{"serve", "--data", dir}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.err) {
			t.Errorf("%v: exit %d %q, want %d containing %q", tc.args, code, stderr, tc.code, tc.err)
		}
	}
}

// TestRealDeployment follows the README's quickstart for a real deployment
// against a real node (ganache): a Safe owned 2-of-2 by two humans exists
// on chain; the operator initialises a data directory pointed at the node
// (chain.rpc), names the Safe and a new hot wallet (accounts add), the
// assets (assets add, decimals checked against the token), loads a policy,
// and serves; an admin creates an agent and two council members; then an
// agent's payment from the wallet runs on its own, and one from the Safe
// runs after both owners' EIP-712 approvals and the timelock.
func TestRealDeployment(t *testing.T) {
	node := startGanache(t)
	ctx := context.Background()
	eth, err := ethclient.Dial(node)
	if err != nil {
		t.Fatal(err)
	}
	defer eth.Close()
	// The DAO's contracts, deployed by someone else beforehand.
	deployer, _ := crypto.GenerateKey()
	if err := devchain.FundFromNode(ctx, eth.Client(), eth, crypto.PubkeyToAddress(deployer.PublicKey), devchain.DeployerFunds); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	keys := map[string]string{}
	var owners []common.Address
	for _, h := range []string{"alice", "bob"} {
		k, _ := crypto.GenerateKey()
		keys[h] = filepath.Join(t.TempDir(), h+".owner.key")
		crypto.SaveECDSA(keys[h], k)
		owners = append(owners, crypto.PubkeyToAddress(k.PublicKey))
	}
	c, err := evm.DeployDev(ctx, eth, nil, deployer, owners, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := evm.Mint(ctx, eth, nil, deployer, c.Token, c.Safe, big.NewInt(50_000_000_000)); err != nil {
		t.Fatal(err)
	}
	fund := func(to common.Address, usdc int64) {
		t.Helper()
		if _, err := evm.Transact(ctx, eth, nil, deployer, &to, big.NewInt(1e18), nil); err != nil {
			t.Fatal(err)
		}
		if usdc > 0 {
			if err := evm.Mint(ctx, eth, nil, deployer, c.Token, to, big.NewInt(usdc)); err != nil {
				t.Fatal(err)
			}
		}
	}

	addr := freeAddr(t)
	cli := func(args ...string) string {
		t.Helper()
		code, out, stderr := run(t, nil, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
		return out
	}
	cli("init", "--data", dir, "--url", "http://"+addr)
	y, _ := os.ReadFile(filepath.Join(dir, "daoguard.yaml"))
	y = []byte(strings.Replace(string(y), "    rpc: \"\"\n    chain_id: 0\n", "    rpc: "+node+"\n    chain_id: 1337\n", 1))
	if err := os.WriteFile(filepath.Join(dir, "daoguard.yaml"), y, 0o600); err != nil {
		t.Fatal(err)
	}
	var safeOut struct {
		Owners    []string `json:"owners"`
		Threshold uint64   `json:"threshold"`
		Relayer   string   `json:"relayer"`
	}
	json.Unmarshal([]byte(cli("accounts", "add", "--data", dir, "--name", "treasury", "--kind", "safe", "--address", c.Safe.Hex())), &safeOut)
	if safeOut.Threshold != 2 || len(safeOut.Owners) != 2 || safeOut.Owners[0] != owners[0].Hex() || !common.IsHexAddress(safeOut.Relayer) {
		t.Fatalf("accounts add (safe) said %+v", safeOut)
	}
	var walletOut struct {
		Account struct{ Address string } `json:"account"`
	}
	json.Unmarshal([]byte(cli("accounts", "add", "--data", dir, "--name", "ops", "--kind", "wallet")), &walletOut)
	ops := common.HexToAddress(walletOut.Account.Address)
	// A wallet under a name taken is refused, and leaves no key behind.
	if code, _, stderr := run(t, nil, "accounts", "add", "--data", dir, "--name", "treasury", "--kind", "wallet"); code != exitFailed || !strings.Contains(stderr, "exists") {
		t.Fatalf("a wallet named treasury: exit %d %s", code, stderr)
	}
	db := sqlite.NewDB(filepath.Join(dir, "data.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	err = db.View(ctx, func(tx daoguard.Tx) error { _, err := tx.Signer(ctx, readOrg(t, dir), "treasury"); return err })
	db.Close()
	if !daoguard.IsNotFound(err) {
		t.Fatalf("a key was generated for the refused wallet: %v", err)
	}
	fund(common.HexToAddress(safeOut.Relayer), 0)
	fund(ops, 1_000_000_000)
	if code, _, stderr := run(t, nil, "assets", "add", "--data", dir, "--symbol", "USDC", "--address", c.Token.Hex(), "--decimals", "18"); code != exitFailed || !strings.Contains(stderr, "has 6 decimals, not 18") {
		t.Fatalf("wrong decimals: exit %d %s", code, stderr)
	}
	cli("assets", "add", "--data", dir, "--symbol", "USDC", "--address", c.Token.Hex(), "--decimals", "6")
	cli("assets", "add", "--data", dir, "--symbol", "ETH", "--decimals", "18")
	rcpt := common.HexToAddress("0x00000000000000000000000000000000c0ffee01")
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(pol, []byte(`version: 1
name: quickstart
lists:
  vendors: ["`+strings.ToLower(rcpt.Hex())+`"]
groups:
  council: {role: council}
council: {group: council, approvals: 2, timelock: 2s}
rules:
  - name: ops-small
    principal_kinds: [agent]
    accounts: [ops]
    actions: [transfer]
    assets: [USDC]
    recipients: {lists: [vendors]}
    tier: autonomous
    limits: {max_amount: "500"}
    over_limit: approval
    approval: {group: council, approvals: 2, timelock: 2s}
  - name: treasury
    accounts: [treasury]
    tier: approval
    approval: {group: council, approvals: 2, timelock: 2s}
`), 0o644)
	cli("policy", "apply", "--data", dir, pol)

	logs := &lockedWriter{}
	startServe(t, logs, nil, "--data", dir, "--addr", addr)
	waitHealthy(t, addr, logs)
	admin := filepath.Join(dir, "credentials", "admin.json")
	creds := map[string]string{}
	for _, p := range []struct{ name, kind, alg, scopes string }{
		{"bot", "agent", "hmac-sha256", ""},
		{"alice", "human", "ed25519", "actions:read,approvals:write"},
		{"bob", "human", "ed25519", "actions:read,approvals:write"},
	} {
		args := []string{"principals", "create", "--credential", admin, "--kind", p.kind, "--name", p.name}
		if p.kind == "human" {
			args = append(args, "--roles", "council")
		}
		var pr struct{ ID string }
		json.Unmarshal([]byte(cli(args...)), &pr)
		if p.kind == "agent" { // new agents start supervised: a human trusts them
			cli("principals", "autonomy", "--credential", admin, "--id", pr.ID, "--level", "autonomous", "--reason", "vendor payments")
		}
		creds[p.name] = filepath.Join(t.TempDir(), p.name+".json")
		args = []string{"keys", "create", "--credential", admin, "--principal", pr.ID, "--alg", p.alg, "--out", creds[p.name]}
		if p.scopes != "" {
			args = append(args, "--scopes", p.scopes)
		}
		cli(args...)
	}
	action := func(args ...string) *client.Action {
		t.Helper()
		var a client.Action
		if out := cli(args...); json.Unmarshal([]byte(out), &a) != nil {
			t.Fatalf("%s", out)
		}
		return &a
	}
	wait := func(id string) *client.Action {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if a := action("action", "get", "--credential", creds["alice"], "--id", id); a.State == "executed" {
				return a
			} else if a.State == "failed" {
				t.Fatalf("failed: %+v\n%s", a.Result, logs.String())
			}
		}
		t.Fatalf("%s never executed:\n%s", id, logs.String())
		return nil
	}
	token, _ := evm.LoadArtifact("DevToken")
	balance := func(who common.Address) int64 {
		out, err := evm.Call(ctx, eth, token, c.Token, "balanceOf", who)
		if err != nil {
			t.Fatal(err)
		}
		return out[0].(*big.Int).Int64()
	}

	// Holdings are read from the node in the background: until the first
	// reading the units check cannot run, and the payment would wait for
	// approval (HOLDINGS_UNAVAILABLE) instead of running.
	var a *client.Action
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		a = action("action", "submit", "--credential", creds["bot"], "--account", "ops", "--asset", "USDC", "--to", rcpt.Hex(), "--amount", "120")
		if a.State == "queued" || time.Now().After(deadline) {
			break
		}
	}
	if a.State != "queued" || a.Decision.Verdict != "allow" {
		t.Fatalf("%s %+v", a.State, a.Decision.Reasons)
	}
	wait(a.ID)
	if got := balance(rcpt); got != 120_000_000 {
		t.Fatalf("the vendor has %d", got)
	}
	a = action("action", "submit", "--credential", creds["bot"], "--account", "treasury", "--asset", "USDC", "--to", rcpt.Hex(), "--amount", "4000")
	if a.State != "awaiting_approval" || a.Decoded.SafeTx == nil {
		t.Fatalf("%s %+v", a.State, a.Decision.Reasons)
	}
	action("approve", "--credential", creds["alice"], "--id", a.ID, "--owner-key", keys["alice"])
	if code, _, stderr := run(t, nil, "approve", "--credential", creds["bob"], "--id", a.ID, "--owner-key", keys["alice"]); code != exitFailed || !strings.Contains(stderr, "already") {
		t.Fatalf("bob with alice's owner key: exit %d %s", code, stderr)
	}
	action("approve", "--credential", creds["bob"], "--id", a.ID, "--owner-key", keys["bob"])
	done := wait(a.ID)
	if rc, err := eth.TransactionReceipt(ctx, common.HexToHash(done.Result.TxHash)); err != nil || rc.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("receipt %+v %v", rc, err)
	}
	if got := balance(rcpt); got != 4_120_000_000 {
		t.Fatalf("the vendor has %d", got)
	}
	if got := balance(c.Safe); got != 46_000_000_000 {
		t.Fatalf("the Safe has %d", got)
	}
}

// readOrg reads the organisation id of a data directory.
func readOrg(t *testing.T, dir string) string {
	t.Helper()
	cfg, err := loadConfig(dir, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Org.ID
}
