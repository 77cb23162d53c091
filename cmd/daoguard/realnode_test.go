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

	"github.com/daoguard/daoguard/client"
	"github.com/daoguard/daoguard/internal/evm"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
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
	logs := &lockedBuffer{}
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
	logs := &lockedBuffer{}
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
	logs2 := &lockedBuffer{}
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
func waitHealthy(t *testing.T, addr string, logs *lockedBuffer) {
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
		{[]string{"--dev", "--dev-rpc", dead, "--addr", freeAddr(t)}, exitFailed, "local development node"},
	} {
		code, _, stderr := run(t, nil, append([]string{"serve", "--data", dir}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.err) {
			t.Errorf("%v: exit %d %q, want %d containing %q", tc.args, code, stderr, tc.code, tc.err)
		}
	}
}
