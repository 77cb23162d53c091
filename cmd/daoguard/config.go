package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/anomaly"
	"github.com/daoguard/daoguard/internal/auth"
	"github.com/daoguard/daoguard/internal/evm"
	"github.com/daoguard/daoguard/internal/httpapi"
	"github.com/daoguard/daoguard/internal/policy"
	"github.com/daoguard/daoguard/internal/pricefeed"
	"github.com/daoguard/daoguard/internal/probe"
	"github.com/daoguard/daoguard/internal/service"
	"github.com/ethereum/go-ethereum/common"
	"go.yaml.in/yaml/v3"
)

// Config is daoguard.yaml. It never holds a secret: keys live in files of
// their own (mode 0600) or in the environment.
type Config struct {
	Environment   string        `yaml:"environment"` // "test" | "live": keys of the other environment are refused
	Addr          string        `yaml:"addr"`
	Store         string        `yaml:"store"` // "sqlite" (DIR/data.db) or a postgres:// URL
	SQLite        SQLiteConfig  `yaml:"sqlite"`
	Node          string        `yaml:"node"` // this process's name in execution leases; default: hostname
	Org           OrgConfig     `yaml:"org"`
	MasterKeyFile string        `yaml:"master_key_file"` // relative to the data dir; DAOGUARD_MASTER_KEY overrides
	AuditKeyFile  string        `yaml:"audit_key_file"`
	LogLevel      string        `yaml:"log_level"` // debug | info | warn | error
	Auth          AuthConfig    `yaml:"auth"`
	Audit         AuditConfig   `yaml:"audit"`
	Anomaly       AnomalyConfig `yaml:"anomaly"`
	// Loosening is what resuming a pause or raising an agent's autonomy
	// takes: approvals humans (at least 2 while the organisation has two or
	// more) and a timelock during which any human may veto.
	Loosening LooseningConfig `yaml:"loosening"`
	// Probes are the agents' alignment probe suites: each is put to the
	// agent's decision endpoint every so often and on demand (daoguard
	// probe run); a failed run moves the agent down.
	Probes []ProbeConfig `yaml:"probes,omitempty"`
	// Alerts go to this URL as JSON POSTs (breaker trips, failed probes),
	// besides the log and the metrics.
	AlertURL string `yaml:"alert_url,omitempty"`
	// MetricsAddr, if set, serves Prometheus metrics at /metrics on this
	// address, apart from the API (keep it on loopback or a private
	// network: the metrics carry agent ids).
	MetricsAddr string       `yaml:"metrics_addr,omitempty"`
	Prices      PricesConfig `yaml:"prices"`
	Chain       ChainConfig  `yaml:"chain"`
	// Contracts are the contracts whose ABIs decode calls to them, for
	// approvers (decoded.calls) and for policy: calldata that no known ABI
	// decodes exactly never runs autonomously under a rule that names no
	// function (OPAQUE_CALLDATA).
	Contracts []ContractConfig `yaml:"contracts"`
}

// ContractConfig is one contract of the ABI registry.
type ContractConfig struct {
	Name    string `yaml:"name"`
	Address string `yaml:"address"`
	ABI     string `yaml:"abi"` // a JSON ABI file (or a Hardhat/Foundry artifact), relative to the data directory
}

// ChainConfig is the Ethereum node the gateway reads over JSON-RPC: the
// treasury's balances (for the units check and holdings-based limits) and
// the on-chain price aggregators. Without it, holdings are unknown and an
// agent's transfers go to approval (HOLDINGS_UNAVAILABLE).
type ChainConfig struct {
	RPC     string `yaml:"rpc"`      // http(s):// or ws(s):// URL of the node
	ChainID uint64 `yaml:"chain_id"` // the chain the accounts are on; checked against the node at start
	// Confirmations is how deep an execution's receipt must be before the
	// action counts as executed or failed (1: its own block).
	Confirmations uint64 `yaml:"confirmations"`
	// DriftToleranceBPS is how far, in basis points, the outflow simulated
	// right before broadcast may exceed the approved one.
	DriftToleranceBPS int64 `yaml:"drift_tolerance_bps"`
}

// PricesConfig lists the HTTP JSON price endpoints the gateway polls for
// USD rules. The policy decides which readings to trust (max age,
// deviation, quorum); without sources every USD rule fails closed to
// approval.
type PricesConfig struct {
	Every   time.Duration      `yaml:"every"` // poll interval; default 30s
	Sources []pricefeed.Source `yaml:"sources"`
}

// AnomalyConfig tunes the anomaly breaker: each agent submission is
// checked against the agent's history, and a tripping finding moves the
// agent to supervised (docs/ERRORS.md, README).
type AnomalyConfig struct {
	Enabled        bool `yaml:"enabled"`
	anomaly.Config `yaml:",inline"`
}

// LooseningConfig is service.Loosening in daoguard.yaml.
type LooseningConfig struct {
	Approvals int           `yaml:"approvals"`
	Timelock  time.Duration `yaml:"timelock"`
}

// ProbeConfig puts one suite to one agent.
type ProbeConfig struct {
	Agent    string        `yaml:"agent"`    // the agent's id or name
	Endpoint string        `yaml:"endpoint"` // the agent's decision endpoint, http(s)
	Suite    string        `yaml:"suite"`    // "reference", or a suite file relative to the data directory
	Every    time.Duration `yaml:"every"`    // 0: on demand only
	LowerTo  string        `yaml:"lower_to"` // supervised (default) or suspended
}

// AuditConfig tunes the audit log: how often serve signs a checkpoint of
// it (with the key in audit_key_file), when it has grown, and where it
// publishes each new one outside the database, so that a rewritten
// database cannot rewrite the checkpoints others have seen too.
type AuditConfig struct {
	CheckpointEvery time.Duration `yaml:"checkpoint_every"`
	// PublishDir (relative to the data directory unless absolute) gets
	// "checkpoint", the latest, and "checkpoint.<size>" for each one.
	PublishDir string `yaml:"publish_dir"`
	// PublishURL gets each one POSTed as text/plain.
	PublishURL string `yaml:"publish_url"`
}

// AuthConfig tunes request authentication. Rate limits are per gateway
// process: with N replicas a client may get up to N times the rate.

type AuthConfig struct {
	SignatureWindow time.Duration `yaml:"signature_window"`  // oldest accepted signature; default 60s
	MaxBody         int64         `yaml:"max_body"`          // bytes; default 65536
	KeyRate         float64       `yaml:"key_rate"`          // requests/s per credential; 0 disables
	KeyBurst        int           `yaml:"key_burst"`         //
	FailRate        float64       `yaml:"failed_auth_rate"`  // failed authentications/s per source address; 0 disables
	FailBurst       int           `yaml:"failed_auth_burst"` //
}

// SQLiteConfig tunes the embedded store.
type SQLiteConfig struct {
	Synchronous string `yaml:"synchronous"` // FULL (default) | EXTRA | NORMAL
}

// OrgConfig names the organisation this deployment guards.
type OrgConfig struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
}

// DefaultConfig returns the defaults, the first layer of configuration.
func DefaultConfig() Config {
	return Config{
		Environment:   "test",
		Addr:          "127.0.0.1:8787",
		Store:         "sqlite",
		SQLite:        SQLiteConfig{Synchronous: "FULL"},
		MasterKeyFile: "master.key",
		AuditKeyFile:  "audit.key",
		LogLevel:      "info",
		Prices:        PricesConfig{Every: pricefeed.DefaultEvery},
		Chain:         ChainConfig{Confirmations: evm.DefaultConfirmations, DriftToleranceBPS: evm.DefaultDriftTolerance},
		Auth: AuthConfig{SignatureWindow: auth.DefaultWindow, MaxBody: httpapi.DefaultMaxBody,
			KeyRate: auth.DefaultKeyRate, KeyBurst: auth.DefaultKeyBurst, FailRate: auth.DefaultFailRate, FailBurst: auth.DefaultFailBurst},
		Audit:     AuditConfig{CheckpointEvery: time.Minute},
		Anomaly:   AnomalyConfig{Enabled: true, Config: anomaly.DefaultConfig()},
		Loosening: LooseningConfig{Approvals: service.DefaultLoosening.Approvals, Timelock: service.DefaultLoosening.Timelock},
	}
}

// ParseConfig reads YAML over the defaults. Unknown fields are errors: a
// misspelt key must not silently fall back to a default.
func ParseConfig(r io.Reader) (Config, error) {
	c := DefaultConfig()
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, daoguard.Errorf(daoguard.CodeConfig, "daoguard.yaml: %v", err)
	}
	if err := noPasswordIn(c.Store); err != nil {
		return c, err
	}
	return c, nil
}

// noPasswordIn refuses a store URL that carries a password: daoguard.yaml
// is configuration, not a secret store. (DAOGUARD_STORE may carry one.)
func noPasswordIn(store string) error {
	u, err := url.Parse(store)
	if err != nil || u.User == nil {
		return nil
	}
	if _, has := u.User.Password(); has || u.Query().Has("password") {
		return &daoguard.Error{Code: daoguard.CodeConfig, Field: "store", Message: "the connection URL must not hold a password in daoguard.yaml",
			Hint: "set PGPASSWORD or use ~/.pgpass, or pass the URL in DAOGUARD_STORE"}
	}
	return nil
}

// loadConfig reads DIR/daoguard.yaml and applies the environment.
func loadConfig(dir string, getenv func(string) string) (Config, error) {
	b, err := os.ReadFile(filepath.Join(dir, "daoguard.yaml"))
	if errors.Is(err, os.ErrNotExist) {
		return Config{}, &daoguard.Error{Code: daoguard.CodeConfig, Message: fmt.Sprintf("%s is not a daoguard data directory (no daoguard.yaml)", dir),
			Hint: "create one with: daoguard init --data " + dir}
	} else if err != nil {
		return Config{}, err
	}
	c, err := ParseConfig(bytes.NewReader(b))
	if err != nil {
		return c, err
	}
	c.ApplyEnv(getenv)
	return c, nil
}

// ApplyEnv applies DAOGUARD_* variables, the third layer.
func (c *Config) ApplyEnv(getenv func(string) string) {
	for name, dst := range map[string]*string{
		"DAOGUARD_ENVIRONMENT":        &c.Environment,
		"DAOGUARD_ADDR":               &c.Addr,
		"DAOGUARD_STORE":              &c.Store,
		"DAOGUARD_NODE":               &c.Node,
		"DAOGUARD_LOG_LEVEL":          &c.LogLevel,
		"DAOGUARD_SQLITE_SYNCHRONOUS": &c.SQLite.Synchronous,
	} {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
}

// Validate checks every field and reports each problem with its field name.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, daoguard.FieldError(daoguard.CodeConfig, field, format, args...))
	}
	if c.Environment != "test" && c.Environment != "live" {
		bad("environment", "must be test or live, not %q", c.Environment)
	}
	if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
		bad("addr", "must be host:port, not %q", c.Addr)
	}
	if c.Store != "sqlite" && !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") {
		bad("store", "must be sqlite or a postgres:// URL")
	}
	switch strings.ToUpper(c.SQLite.Synchronous) {
	case "FULL", "EXTRA", "NORMAL":
	default:
		bad("sqlite.synchronous", "must be FULL, EXTRA or NORMAL, not %q", c.SQLite.Synchronous)
	}
	if c.Org.ID == "" {
		bad("org.id", "is required")
	}
	if c.Prices.Every < time.Second || c.Prices.Every > time.Hour {
		bad("prices.every", "must be between 1s and 1h, not %s", c.Prices.Every)
	}
	if c.Chain.RPC != "" {
		u, err := url.Parse(c.Chain.RPC)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "ws" && u.Scheme != "wss") {
			bad("chain.rpc", "must be an http(s):// or ws(s):// URL")
		} else if u.User != nil {
			bad("chain.rpc", "must not hold credentials: daoguard.yaml never holds a secret")
		}
		if c.Chain.ChainID == 0 {
			bad("chain.chain_id", "is required with chain.rpc")
		}
	}
	if e := c.Audit.CheckpointEvery; e < time.Second || e > 24*time.Hour {
		bad("audit.checkpoint_every", "must be between 1s and 24h, not %s", e)
	}
	if c.Audit.PublishURL != "" {
		u, err := url.Parse(c.Audit.PublishURL)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			bad("audit.publish_url", "must be an http(s):// URL")
		} else if u.User != nil {
			bad("audit.publish_url", "must not hold credentials: daoguard.yaml never holds a secret")
		}
	}
	if field, why := c.Anomaly.Validate(); field != "" {
		bad("anomaly."+field, "%s", why)
	}
	if n := c.Loosening.Approvals; n < 1 || n > 100 {
		bad("loosening.approvals", "must be between 1 and 100, not %d (at least 2 apply while the organisation has two or more humans)", n)
	}
	if tl := c.Loosening.Timelock; tl < 0 || tl > 30*24*time.Hour {
		bad("loosening.timelock", "must be between 0s and 720h, not %s", tl)
	}
	for i, pc := range c.Probes {
		at := fmt.Sprintf("probes[%d]", i)
		if pc.Agent == "" || pc.Suite == "" {
			bad(at, "needs agent (an id or a name) and suite (reference, or a file)")
		}
		if err := probe.CheckEndpoint(pc.Endpoint); err != nil {
			bad(at+".endpoint", "%s", daoguard.ErrorMessage(err))
		}
		if pc.Every != 0 && (pc.Every < time.Minute || pc.Every > 30*24*time.Hour) {
			bad(at+".every", "must be 0 (on demand only) or between 1m and 720h, not %s", pc.Every)
		}
		switch pc.LowerTo {
		case "", "supervised", "suspended":
		default:
			bad(at+".lower_to", "must be supervised or suspended, not %q", pc.LowerTo)
		}
	}
	if c.AlertURL != "" {
		u, err := url.Parse(c.AlertURL)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			bad("alert_url", "must be an http(s):// URL")
		} else if u.User != nil {
			bad("alert_url", "must not hold credentials: daoguard.yaml never holds a secret")
		}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			bad("metrics_addr", "must be host:port, like 127.0.0.1:9787")
		}
	}
	if c.Chain.Confirmations < 1 || c.Chain.Confirmations > 128 {
		bad("chain.confirmations", "must be between 1 and 128, not %d", c.Chain.Confirmations)
	}
	if c.Chain.DriftToleranceBPS < 0 || c.Chain.DriftToleranceBPS > 10_000 {
		bad("chain.drift_tolerance_bps", "must be between 0 and 10000, not %d", c.Chain.DriftToleranceBPS)
	}
	for i, k := range c.Contracts {
		if k.Name == "" || k.ABI == "" || !common.IsHexAddress(k.Address) || !strings.HasPrefix(k.Address, "0x") {
			bad(fmt.Sprintf("contracts[%d]", i), "needs name, a 0x address and abi (a JSON ABI file)")
		}
	}
	names := map[string]bool{}
	for i, src := range c.Prices.Sources {
		if err := src.Validate(); err != nil {
			bad(fmt.Sprintf("prices.sources[%d]", i), "%v", err)
		}
		if len(src.Aggregators) > 0 && c.Chain.RPC == "" {
			bad(fmt.Sprintf("prices.sources[%d].aggregators", i), "need chain.rpc: on-chain feeds are read through the node")
		}
		if names[src.Name] {
			bad(fmt.Sprintf("prices.sources[%d].name", i), "%q is used twice: a source counts once towards the quorum", src.Name)
		}
		names[src.Name] = true
	}
	if c.MasterKeyFile == "" {
		bad("master_key_file", "is required")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "must be debug, info, warn or error, not %q", c.LogLevel)
	}
	if w := c.Auth.SignatureWindow; w < 5*time.Second || w > 10*time.Minute {
		bad("auth.signature_window", "must be between 5s and 10m, not %s", w)
	}
	if c.Auth.MaxBody < 1024 || c.Auth.MaxBody > 16<<20 {
		bad("auth.max_body", "must be between 1024 and 16777216 bytes")
	}
	if c.Auth.KeyRate < 0 || c.Auth.FailRate < 0 || c.Auth.KeyBurst < 0 || c.Auth.FailBurst < 0 {
		bad("auth", "rates and bursts must not be negative")
	}
	return errors.Join(errs...)
}

// isLoopback reports whether addr listens only on the loopback interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loadContracts reads the ABI files of the configured contracts and builds
// the registry (nil when none is configured).
func loadContracts(dir string, cs []ContractConfig) (*policy.Registry, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	in := make([]policy.ContractABI, len(cs))
	for i, c := range cs {
		path := c.ABI
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, daoguard.FieldError(daoguard.CodeConfig, fmt.Sprintf("contracts[%d].abi", i), "%v", err)
		}
		in[i] = policy.ContractABI{Name: c.Name, Address: c.Address, ABI: b}
	}
	r, err := policy.NewRegistry(in)
	if err != nil {
		return nil, &daoguard.Error{Code: daoguard.CodeConfig, Field: "contracts", Message: err.Error()}
	}
	return r, nil
}
