package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/auth"
)

func run(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}
	code = m.Run(context.Background(), args)
	return code, out.String(), errb.String()
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{nil, exitUsage, "no command"},
		{[]string{"frobnicate"}, exitUsage, "unknown command"},
		{[]string{"init"}, exitUsage, "--data"},
		{[]string{"serve"}, exitUsage, "--data"},
		{[]string{"init", "--data"}, exitUsage, "flag needs an argument"},
		{[]string{"init", "--nope"}, exitUsage, "not defined"},
		{[]string{"version", "extra"}, exitUsage, "unexpected argument"},
		{[]string{"version"}, exitOK, ""},
		{[]string{"-h"}, exitOK, ""},
		{[]string{"keys"}, exitUsage, "subcommand"},
		{[]string{"keys", "frob"}, exitUsage, "unknown keys subcommand"},
		{[]string{"keys", "scan"}, exitUsage, "one PATH"},
		{[]string{"keys", "rotate-master"}, exitUsage, "--data"},
		{[]string{"keys", "create", "--credential", "x"}, exitUsage, "--principal"},
		{[]string{"action"}, exitUsage, "subcommand"},
		{[]string{"action", "submit", "--credential", "x"}, exitUsage, "--account and --to"},
		{[]string{"action", "get"}, exitUsage, "--id"},
		{[]string{"approve"}, exitUsage, "--id"},
		{[]string{"veto", "--id", "act_1"}, exitUsage, "DAOGUARD_CREDENTIAL"},
		{[]string{"pause", "--credential", "/nonexistent"}, exitFailed, "cannot read credential file"},
		{[]string{"principals", "create", "--name", "x", "--kind", "robot"}, exitUsage, "unknown principal kind"},
		{[]string{"principals", "autonomy", "--id", "agt_1", "--level", "godlike"}, exitUsage, "--level autonomous|supervised|suspended"},
		{[]string{"accounts"}, exitUsage, "subcommand"},
		{[]string{"accounts", "frob"}, exitUsage, "unknown accounts subcommand"},
		{[]string{"accounts", "add", "--name", "vault"}, exitUsage, "--kind safe|wallet"},
		{[]string{"accounts", "add", "--name", "vault", "--kind", "safe"}, exitUsage, "needs --address"},
		{[]string{"accounts", "add", "--name", "ops", "--kind", "wallet", "--address", "0x5afe00000000000000000000000000000000cafe"}, exitUsage, "no --address"},
		{[]string{"accounts", "add", "--name", "daoguard", "--kind", "wallet"}, exitUsage, "relayer"},
		{[]string{"accounts", "add", "--name", "ops", "--kind", "wallet"}, exitUsage, "--data"},
		{[]string{"assets"}, exitUsage, "subcommand"},
		{[]string{"assets", "add", "--symbol", "USDC"}, exitUsage, "--decimals"},
		{[]string{"assets", "list"}, exitUsage, "--data"},
	} {
		code, _, stderr := run(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.err) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 && tc.code != exitUsage {
			t.Errorf("%v: exit %d stderr %q, want %d containing %q", tc.args, code, stderr, tc.code, tc.err)
		}
	}
}

func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	code, out, stderr := run(t, nil, "init", "--data", dir, "--org-name", "Test DAO")
	if code != 0 {
		t.Fatalf("init: %d %s", code, stderr)
	}
	if !strings.Contains(out, "admin.json") {
		t.Errorf("init output %q", out)
	}
	for name, mode := range map[string]os.FileMode{
		"daoguard.yaml": 0o600, "master.key": 0o600, "audit.key": 0o600, "audit.pub": 0o644,
		"credentials/admin.json": 0o600, "data.db": 0o600, "credentials": 0o700 | os.ModeDir, ".": 0o700 | os.ModeDir,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s mode %v, want %v", name, fi.Mode(), mode)
		}
	}
	var cred CredentialFile
	b, _ := os.ReadFile(filepath.Join(dir, "credentials/admin.json"))
	if err := json.Unmarshal(b, &cred); err != nil {
		t.Fatal(err)
	}
	seed, err := base64.StdEncoding.DecodeString(cred.PrivateKey)
	if env, kerr := auth.ParseKeyID(cred.KeyID); kerr != nil || env != "test" || cred.Alg != "ed25519" || err != nil || len(seed) != 32 || cred.URL != "http://127.0.0.1:8787" {
		t.Fatalf("admin credential %+v (%v)", cred, kerr)
	}
	cfg, err := loadConfig(dir, func(string) string { return "" })
	if err != nil || cfg.Validate() != nil || cfg.Org.Name != "Test DAO" {
		t.Fatalf("written config: %+v %v", cfg, err)
	}
	y, _ := os.ReadFile(filepath.Join(dir, "daoguard.yaml"))
	if bytes.Contains(y, []byte(cred.PrivateKey)) {
		t.Fatal("a secret leaked into daoguard.yaml")
	}

	// A second init refuses and changes nothing.
	before, _ := os.ReadFile(filepath.Join(dir, "master.key"))
	if code, _, stderr := run(t, nil, "init", "--data", dir); code != exitFailed || !strings.Contains(stderr, "refusing to overwrite") {
		t.Fatalf("second init: %d %q", code, stderr)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "master.key"))
	if !bytes.Equal(before, after) {
		t.Fatal("second init changed the master key")
	}
	// An empty existing directory is fine; bad flags leave nothing behind.
	empty := t.TempDir()
	if code, _, stderr := run(t, nil, "init", "--data", empty); code != 0 {
		t.Fatalf("init into an empty dir: %s", stderr)
	}
	if code, _, errs := run(t, nil, "init", "--data", filepath.Join(t.TempDir(), "pw"), "--store", "postgres://u:secret@127.0.0.1/x"); code != exitFailed || !strings.Contains(errs, "PGPASSWORD") {
		t.Errorf("init with a password in --store: %d %q", code, errs)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	if code, _, _ := run(t, nil, "init", "--data", bad, "--environment", "prod"); code != exitFailed {
		t.Fatalf("bad environment accepted")
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatal("a refused init left a directory behind")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(bad), ".*init-*")); len(leftovers) > 0 {
		t.Fatalf("temporary directories left: %v", leftovers)
	}
}

func TestConfigLayers(t *testing.T) {
	c, err := ParseConfig(strings.NewReader("addr: 127.0.0.1:9000\nenvironment: live\norg: {id: org_x}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9000" || c.Store != "sqlite" || c.LogLevel != "info" {
		t.Fatalf("file over defaults: %+v", c)
	}
	c.ApplyEnv(func(k string) string { return map[string]string{"DAOGUARD_ADDR": "127.0.0.1:9100"}[k] })
	if c.Addr != "127.0.0.1:9100" || c.Environment != "live" {
		t.Fatalf("env over file: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseConfig(strings.NewReader("adrr: 1.2.3.4:5\n")); daoguard.ErrorCode(err) != daoguard.CodeConfig {
		t.Fatalf("unknown field: %v", err)
	}
	if _, err := ParseConfig(strings.NewReader("addr: [1, 2]\n")); daoguard.ErrorCode(err) != daoguard.CodeConfig {
		t.Fatalf("wrong type: %v", err)
	}
	for _, store := range []string{"postgres://u:secret@db/x", "postgres://u@db/x?password=secret"} {
		if _, err := ParseConfig(strings.NewReader("store: " + store + "\n")); daoguard.ErrorCode(err) != daoguard.CodeConfig {
			t.Errorf("password in the YAML store URL accepted: %v", err)
		}
	}
	bad := DefaultConfig()
	bad.Environment, bad.Addr, bad.Store, bad.SQLite.Synchronous, bad.LogLevel = "prod", "nowhere", "mysql://x", "OFF", "loud"
	err = bad.Validate()
	for _, field := range []string{"environment", "addr", "store", "sqlite.synchronous", "org.id", "log_level"} {
		if err == nil || !strings.Contains(err.Error(), field+":") {
			t.Errorf("Validate did not name field %s: %v", field, err)
		}
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestServe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, stderr := run(t, nil, "init", "--data", dir); code != 0 {
		t.Fatal(stderr)
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	m := &Main{Stdout: &bytes.Buffer{}, Stderr: &stderr, Getenv: func(string) string { return "" }}
	done := make(chan int)
	go func() { done <- m.Run(ctx, []string{"serve", "--data", dir, "--addr", addr}) }()
	var res *http.Response
	var err error
	for range 100 {
		if res, err = http.Get("http://" + addr + "/healthz"); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("serve never answered: %v; %s", err, stderr.String())
	}
	var body map[string]string
	json.NewDecoder(res.Body).Decode(&body)
	res.Body.Close()
	if res.StatusCode != 200 || body["status"] != "ok" {
		t.Fatalf("healthz %d %v", res.StatusCode, body)
	}
	// A second serve on the same directory is refused while the first runs.
	if code, _, errs := run(t, nil, "serve", "--data", dir, "--addr", freeAddr(t)); code != exitFailed || !strings.Contains(errs, "another daoguard serve") {
		t.Errorf("second serve: exit %d %q", code, errs)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exit %d: %s", code, stderr.String())
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		code int
		want string
	}{
		{[]string{"serve", "--data", dir, "--dev", "--addr", "0.0.0.0:1"}, nil, exitUsage, "loopback"},
		{[]string{"serve", "--data", filepath.Join(dir, "nope")}, nil, exitFailed, "daoguard init"},
		{[]string{"serve", "--data", dir, "--addr", addr}, map[string]string{"DAOGUARD_MASTER_KEY": "1:short"}, exitFailed, "master key"},
		{[]string{"serve", "--data", dir, "--store", "mysql://x"}, nil, exitFailed, "store"},
	} {
		code, _, errs := run(t, tc.env, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d %q, want %d containing %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
}

// TestChainConfig: a node URL must be a plain http(s)/ws(s) URL with a chain
// id; on-chain price feeds need it; and a node of another chain is refused
// at start (its balances would be another chain's).
func TestChainConfig(t *testing.T) {
	agg := "prices: {sources: [{name: feeds, aggregators: {ETH: '0x5f4ec3df9cbd43714fe2740f5e3616155c5b8419'}}]}\n"
	for _, tc := range []struct {
		yaml, field string
	}{
		{"chain: {rpc: 'ftp://node:8545', chain_id: 1}\n", "chain.rpc"},
		{"chain: {rpc: 'https://user:pw@node:8545', chain_id: 1}\n", "chain.rpc"},
		{"chain: {rpc: 'http://127.0.0.1:8545'}\n", "chain.chain_id"},
		{agg, "prices.sources[0].aggregators"},
		{"chain: {confirmations: 0}\n", "chain.confirmations"},
		{"chain: {drift_tolerance_bps: 10001}\n", "chain.drift_tolerance_bps"},
		{"audit: {checkpoint_every: 500ms}\n", "audit.checkpoint_every"},
		{"anomaly: {burst_count: 1}\n", "anomaly.burst_count"},
		{"anomaly: {spend_alpha: 0}\n", "anomaly.spend_alpha"},
		{"anomaly: {new_recipient_quantile: 1}\n", "anomaly.new_recipient_quantile"},
		{"anomaly: {robust_z: -1}\n", "anomaly.robust_z"},
		{"anomaly: {burst_window: 0s}\n", "anomaly.burst_window"},
		{"audit: {publish_url: 'ftp://witness/'}\n", "audit.publish_url"},
		{"audit: {publish_url: 'https://user:pw@witness/'}\n", "audit.publish_url"},
		{"audit: {publish_url: '/relative'}\n", "audit.publish_url"},
		{"contracts: [{name: grants, address: '0x1234', abi: grants.json}]\n", "contracts[0]"},
		{"contracts: [{address: '0x6a7e000000000000000000000000000000006a7e', abi: grants.json}]\n", "contracts[0]"},
	} {
		c, err := ParseConfig(strings.NewReader("org: {id: org_x}\n" + tc.yaml))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.field+":") {
			t.Errorf("%q: want an error naming %s, got %v", tc.yaml, tc.field, err)
		}
	}
	c, err := ParseConfig(strings.NewReader("org: {id: org_x}\nchain: {rpc: 'http://127.0.0.1:8545', chain_id: 1337}\n" + agg))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	// A JSON-RPC endpoint on loopback that says it is chain 1.
	node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":"0x1"}`, req.ID)
	}))
	defer node.Close()
	_, err = dialChain(context.Background(), ChainConfig{RPC: node.URL, ChainID: 1337})
	if daoguard.ErrorCode(err) != daoguard.CodeConfig || !strings.Contains(err.Error(), "chain 1, but chain.chain_id is 1337") {
		t.Fatalf("another chain's node: %v", err)
	}
	eth, err := dialChain(context.Background(), ChainConfig{RPC: node.URL, ChainID: 1})
	if err != nil {
		t.Fatal(err)
	}
	eth.Close()
}

// TestContractsConfig: the ABI registry is read from files named in
// daoguard.yaml; a missing or unreadable ABI stops serve with the field.
func TestContractsConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, stderr := run(t, nil, "init", "--data", dir); code != 0 {
		t.Fatal(stderr)
	}
	good := `[{"type":"function","name":"award","inputs":[{"name":"recipient","type":"address"}],"outputs":[]}]`
	for name, body := range map[string]string{"grants.json": good, "bad.json": `{"bytecode":"0x"}`} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cs := func(abi string) []ContractConfig {
		return []ContractConfig{{Name: "grants", Address: "0x6a7e000000000000000000000000000000006a7e", ABI: abi}}
	}
	if r, err := loadContracts(dir, cs("grants.json")); err != nil || r.Len() != 1 {
		t.Fatalf("%v", err)
	}
	if r, err := loadContracts(dir, nil); err != nil || r != nil {
		t.Fatalf("no contracts: %v %v", r, err)
	}
	for abi, want := range map[string]string{"missing.json": "contracts[0].abi", "bad.json": "artifact"} {
		if _, err := loadContracts(dir, cs(abi)); daoguard.ErrorCode(err) != daoguard.CodeConfig || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", abi, err)
		}
	}
	// serve refuses to start on a broken registry, naming the field.
	y, _ := os.ReadFile(filepath.Join(dir, "daoguard.yaml"))
	y = append(y, "contracts: [{name: grants, address: '0x6a7e000000000000000000000000000000006a7e', abi: missing.json}]\n"...)
	y = []byte(strings.Replace(string(y), "contracts: []\n", "", 1))
	if err := os.WriteFile(filepath.Join(dir, "daoguard.yaml"), y, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, nil, "serve", "--data", dir, "--addr", freeAddr(t))
	if code != exitFailed || !strings.Contains(stderr, "contracts[0].abi") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

// TestAnomalyConfig: the breaker's thresholds are configurable one by one
// over the defaults, and it can be turned off.
func TestAnomalyConfig(t *testing.T) {
	c, err := ParseConfig(strings.NewReader("org: {id: org_x}\nanomaly: {burst_count: 5, probe_window: 10m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !c.Anomaly.Enabled || c.Anomaly.BurstCount != 5 || c.Anomaly.ProbeWindow != 10*time.Minute || c.Anomaly.RobustZ != 4.5 {
		t.Fatalf("%+v", c.Anomaly)
	}
	c, err = ParseConfig(strings.NewReader("org: {id: org_x}\nanomaly: {enabled: false}\n"))
	if err != nil || c.Anomaly.Enabled {
		t.Fatalf("disabled: %v %+v", err, c.Anomaly)
	}
}
