package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/alert"
	"github.com/daoguard/daoguard/internal/auth"
	"github.com/daoguard/daoguard/internal/decider"
	"github.com/daoguard/daoguard/internal/evm"
	"github.com/daoguard/daoguard/internal/httpapi"
	"github.com/daoguard/daoguard/internal/metrics"
	"github.com/daoguard/daoguard/internal/postgres"
	"github.com/daoguard/daoguard/internal/pricefeed"
	"github.com/daoguard/daoguard/internal/probe"
	"github.com/daoguard/daoguard/internal/secrets"
	"github.com/daoguard/daoguard/internal/service"
	"github.com/daoguard/daoguard/internal/sqlite"
	"github.com/ethereum/go-ethereum/ethclient"
)

// runServe loads the configuration (defaults → daoguard.yaml → environment
// → flags), opens the store, starts the background runner and serves HTTP
// until interrupted.
func (m *Main) runServe(ctx context.Context, args []string) error {
	fs := m.newFlagSet("serve")
	dir := fs.String("data", "", "data directory made by 'daoguard init' (required)")
	addr := fs.String("addr", "", "listen address (default from daoguard.yaml, 127.0.0.1:8787)")
	store := fs.String("store", "", "sqlite, or a postgres:// URL (default from daoguard.yaml)")
	dev := fs.Bool("dev", false, "development mode: the in-process chain and dev credentials (loopback only)")
	devRPC := fs.String("dev-rpc", "", "with --dev: provision the dev environment on this local node (anvil, hardhat node, ganache; loopback URL) instead of the in-process chain")
	tlsCert := fs.String("tls-cert", "", "TLS certificate file (PEM)")
	tlsKey := fs.String("tls-key", "", "TLS private key file (PEM)")
	insecure := fs.Bool("insecure-listen", false, "allow plain HTTP on a non-loopback address (behind a TLS-terminating proxy only)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usagef("serve needs --data DIR")
	}
	cfg, err := loadConfig(*dir, m.Getenv)
	if err != nil {
		return err
	}
	if *addr != "" {
		cfg.Addr = *addr
	}
	if *store != "" {
		cfg.Store = *store
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if *dev && !isLoopback(cfg.Addr) {
		return usagef("--dev listens on loopback addresses only, not %s", cfg.Addr)
	}
	if *devRPC != "" {
		if !*dev {
			return usagef("--dev-rpc goes with --dev")
		}
		// The node's unlocked account pays for the dev environment: only a
		// development node on this machine may be used that way.
		u, err := url.Parse(*devRPC)
		if err != nil || (u.Scheme != "http" && u.Scheme != "ws") || u.User != nil || !isLoopback(net.JoinHostPort(u.Hostname(), "0")) {
			return usagef("--dev-rpc takes a loopback http:// or ws:// URL of a local development node, not %q", *devRPC)
		}
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	useTLS := *tlsCert != ""
	// Signed requests resist tampering and replay, but a request's content
	// (intents, rationales) is still readable on the wire: plain HTTP is for
	// loopback, or behind a proxy that terminates TLS (--insecure-listen).
	if !useTLS && !isLoopback(cfg.Addr) && !*insecure {
		return usagef("plain HTTP on %s is refused: give --tls-cert and --tls-key, or --insecure-listen behind a TLS-terminating proxy", cfg.Addr)
	}
	keyring, err := secrets.LoadKeyring(filepath.Join(*dir, cfg.MasterKeyFile), "DAOGUARD_MASTER_KEY", m.Getenv)
	if err != nil {
		return err
	}
	// One serve per data directory: two processes with one node name could
	// each take the other's execution leases for their own.
	unlock, err := lockDir(*dir)
	if err != nil {
		return err
	}
	defer unlock()
	log := newLogger(m, cfg.LogLevel)
	st, err := openStore(cfg, *dir)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.View(ctx, func(tx daoguard.Tx) error { _, err := tx.Org(ctx, cfg.Org.ID); return err }); err != nil {
		return &daoguard.Error{Code: daoguard.CodeConfig, Message: "organisation " + cfg.Org.ID + " is not in the store: " + daoguard.ErrorMessage(err),
			Hint: "the store does not belong to this data directory; check --store"}
	}

	// The audit log's checkpoints are signed with DIR's key while serving.
	auditKey, pseudonyms, err := auditSigner(*dir, cfg)
	if err != nil {
		return err
	}
	auditPub, err := auditVerifier(*dir)
	if err != nil {
		return err
	}
	node := cfg.Node
	if node == "" {
		// Unique among processes sharing a PostgreSQL store: one serve per
		// directory (the lock above), and the host tells directories apart.
		host, _ := os.Hostname()
		abs, _ := filepath.Abs(*dir)
		node = host + ":" + abs
	}
	// The policy engine decides; until a policy is loaded ('daoguard policy
	// apply') it denies everything. With a chain (chain.rpc, or --dev's
	// in-process one) actions are simulated before they are decided and
	// executed once due; without one, nothing can move funds.
	prices := pricefeed.New(cfg.Prices.Sources)
	prices.Every, prices.Logger = cfg.Prices.Every, log
	contracts, err := loadContracts(*dir, cfg.Contracts)
	if err != nil {
		return err
	}
	decider := &decider.Policy{Contracts: contracts}
	if len(cfg.Prices.Sources) > 0 {
		decider.Prices = prices
	}
	var chain *chainNode
	switch {
	case *dev:
		if cfg.Chain.RPC != "" {
			log.Warn("--dev provisions its own chain (in process, or the --dev-rpc node); chain.rpc is not used")
		}
		if chain, err = startDev(ctx, log, st, keyring, cfg.Org.ID, *dir, *devRPC); err != nil {
			return err
		}
	case cfg.Chain.RPC != "":
		if chain, err = connect(ctx, cfg.Chain); err != nil {
			return err
		}
		prices.Chain = chain.eth
	}
	var holdings *evm.HoldingsPoller
	if chain != nil {
		defer chain.close()
		orgID := cfg.Org.ID
		holdings = evm.NewHoldingsPoller(chain.eth, chain.chainID, func(ctx context.Context) (acc []*daoguard.Account, as []*daoguard.Asset, err error) {
			err = st.View(ctx, func(tx daoguard.Tx) error {
				if acc, err = tx.Accounts(ctx, orgID); err != nil {
					return err
				}
				as, err = tx.Assets(ctx, orgID)
				return err
			})
			return acc, as, err
		})
		holdings.Logger = log
		if chain.dev != nil {
			holdings.Every = 2 * time.Second
		}
		decider.Holdings = holdings
	}
	svc := service.New(st, decider, nil, node)
	svc.Logger, svc.Keyring, svc.Environment, svc.Contracts = log, keyring, cfg.Environment, contracts
	svc.AuditSigner, svc.AuditVerifier = auditKey, auditPub
	svc.Loosening = service.Loosening{Approvals: cfg.Loosening.Approvals, Timelock: cfg.Loosening.Timelock}
	if cfg.Anomaly.Enabled { // the breaker: agents moved to supervised on a tripping finding
		anomalies := cfg.Anomaly.Config
		svc.Anomaly = &anomalies
	}
	// Alignment probes, signed with a key derived from the audit key.
	if svc.Probes, err = loadProbes(*dir, cfg); err != nil {
		return err
	}
	probeKey, probeID, err := probeSigner(*dir, cfg)
	if err != nil {
		return err
	}
	svc.Prober = &probe.Runner{Signer: probeKey, Key: probeID}
	// Metrics for everything the risk controls do, and alerts (signed
	// with a key of their own) to alert_url.
	met := metrics.New(st, cfg.Org.ID)
	observers := service.Observers{met}
	var alerts *alert.Sender
	if cfg.AlertURL != "" {
		alertKey, _, err := alertSigner(*dir, cfg)
		if err != nil {
			return err
		}
		alerts = alert.NewSender(cfg.AlertURL, alertKey, log)
		alerts.Count = func(result string) { met.AlertsSent.WithLabelValues(result).Inc() }
		observers = append(observers, alerts)
	}
	svc.Observer = observers
	pub := newPublisher(*dir, cfg, log, svc)
	if pub != nil {
		svc.Published = pub.offer
	}
	authn := auth.New(st, keyring, cfg.Environment)
	authn.Pseudonyms = pseudonyms
	authn.Logger, authn.Window = log, cfg.Auth.SignatureWindow
	authn.KeyLimit = auth.NewLimiter("key", cfg.Auth.KeyRate, cfg.Auth.KeyBurst)
	authn.FailLimit = auth.NewLimiter("failed-auth", cfg.Auth.FailRate, cfg.Auth.FailBurst)
	scheme := "http"
	if useTLS {
		scheme = "https"
	}
	if chain != nil {
		if err := chain.wire(ctx, log, st, keyring, cfg.Org.ID, cfg.Chain, svc); err != nil {
			return err
		}
	}
	if *dev {
		if err := writeDevCredentials(ctx, st, keyring, cfg, *dir, scheme+"://"+cfg.Addr); err != nil {
			return err
		}
		if err := loadDevPolicy(ctx, svc, cfg.Org.ID, chain.dev); err != nil {
			return err
		}
		log.Warn("development mode: dev credentials and owner keys are in DIR/credentials, the dev chain's addresses in DIR/dev.json")
	}
	srv := &http.Server{
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12},
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn), // TLS handshake errors and the like, as JSON
		Handler:           (&httpapi.Server{Store: st, Service: svc, Auth: authn, Logger: log, MaxBody: cfg.Auth.MaxBody}).Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	// The windows and the policy in force are loaded before the gateway
	// listens: ready means decisions can be made, without a rebuild on the
	// first one.
	warmed := time.Now()
	if err := decider.Warm(ctx, st, cfg.Org.ID); err != nil {
		return err
	}
	log.Info("windows loaded", "took", time.Since(warmed).Round(time.Millisecond).String())
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return &daoguard.Error{Code: daoguard.CodeUnavailable, Message: "cannot listen on " + cfg.Addr + ": " + err.Error(), Hint: "is another daoguard running? use --addr"}
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{}, 6)
	workers := 5 // goroutines that signal done; the publisher adds one
	go func() { svc.Run(runCtx); done <- struct{}{} }()
	go func() { authn.Run(runCtx, auth.DefaultFlushEvery); done <- struct{}{} }()
	go func() {
		// The windows are stored every minute once 10,000 entries were
		// added (and at a stop), so a start reads at most about that many.
		decider.RunSnapshots(runCtx, st, time.Minute, 10_000, func(err error) {
			log.Warn("cannot store the window snapshot; the next start reads more of the ledger", "err", err.Error())
		})
		done <- struct{}{}
	}()
	go func() {
		if len(cfg.Prices.Sources) > 0 {
			prices.Run(runCtx)
		}
		done <- struct{}{}
	}()
	if holdings != nil {
		go holdings.Run(runCtx) // stops with runCtx; reads only
	}
	if alerts != nil {
		go alerts.Run(runCtx) // stops with runCtx; the audit log is the record
	}
	var metricsSrv *http.Server
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return &daoguard.Error{Code: daoguard.CodeUnavailable, Message: "cannot listen on metrics_addr " + cfg.MetricsAddr + ": " + err.Error()}
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", met.Handler())
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
		go metricsSrv.Serve(mln)
		log.Info("metrics serving", "url", "http://"+mln.Addr().String()+"/metrics")
	}
	if pub != nil {
		// The latest checkpoint first: one signed just before the last
		// stop may not have been published.
		if _, msg, err := svc.LatestCheckpoint(ctx); err == nil && msg != nil {
			pub.offer(ctx, msg)
		}
		workers++
		go func() {
			pub.run(runCtx)
			done <- struct{}{}
		}()
	}
	go func() {
		checkpoints(runCtx, log, svc, cfg.Audit.CheckpointEvery)
		done <- struct{}{}
	}()
	log.Info("daoguard serving", "url", scheme+"://"+ln.Addr().String(), "store", storeName(cfg), "environment", cfg.Environment, "node", node, "version", daoguard.Version)

	errc := make(chan error, 1)
	go func() {
		if useTLS {
			errc <- srv.ServeTLS(ln, *tlsCert, *tlsKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	err = srv.Shutdown(sctx)
	if metricsSrv != nil {
		metricsSrv.Shutdown(sctx)
	}
	cancel()
	for range workers {
		<-done
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// lockDir takes an exclusive, non-blocking lock on DIR/serve.lock for the
// life of the process; the kernel releases it if the process dies.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "serve.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, &daoguard.Error{Code: daoguard.CodeConflict, Message: "another daoguard serve is running with " + dir,
			Hint: "stop it, or give each process a data directory of its own"}
	}
	return func() { f.Close() }, nil
}

// openStore opens the configured store.
func openStore(cfg Config, dir string) (daoguard.Store, error) {
	return openStoreMode(cfg, dir, false)
}

// openStoreMode opens the store, read-only if asked: then it must exist
// and be current, and nothing is written to it.
func openStoreMode(cfg Config, dir string, readOnly bool) (daoguard.Store, error) {
	if cfg.Store == "sqlite" {
		db := sqlite.NewDB(filepath.Join(dir, "data.db"))
		db.Synchronous, db.ReadOnly = cfg.SQLite.Synchronous, readOnly
		return db, db.Open()
	}
	db := postgres.NewDB(cfg.Store)
	db.ReadOnly = readOnly
	return db, db.Open()
}

// storeName describes the store for logs without the connection string,
// which may carry a password.
func storeName(cfg Config) string {
	if cfg.Store == "sqlite" {
		return "sqlite (synchronous=" + cfg.SQLite.Synchronous + ")"
	}
	return "postgres"
}

func newLogger(m *Main, level string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level)) // validated already
	return slog.New(slog.NewJSONHandler(m.Stderr, &slog.HandlerOptions{Level: l}))
}

// dialChain connects to the configured node. A node that answers with
// another chain id is refused: balances read there would be another
// chain's. A node that does not answer yet is only logged, by the pollers:
// holdings stay unknown (approval) until it does.
func dialChain(ctx context.Context, c ChainConfig) (*ethclient.Client, error) {
	node, err := ethclient.DialContext(ctx, c.RPC)
	if err != nil {
		return nil, &daoguard.Error{Code: daoguard.CodeConfig, Message: "chain.rpc: " + err.Error()}
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if id, err := node.ChainID(cctx); err == nil && id.Uint64() != c.ChainID {
		node.Close()
		return nil, &daoguard.Error{Code: daoguard.CodeConfig, Message: fmt.Sprintf("chain.rpc is chain %s, but chain.chain_id is %d", id, c.ChainID),
			Hint: "point chain.rpc at a node of the accounts' chain"}
	}
	return node, nil
}
