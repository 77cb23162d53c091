package main

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/devchain"
	"github.com/daoguard/daoguard/internal/evm"
	"github.com/daoguard/daoguard/internal/secrets"
	"github.com/daoguard/daoguard/internal/service"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"
)

// node is the chain serve works on: a node over JSON-RPC, or the
// in-process dev chain.
type chainNode struct {
	eth     evm.Client
	sim     *evm.Simulator
	mine    evm.Miner // the dev chain's sealer
	chainID uint64
	dev     *devchain.Env
	close   func()
}

// wire gives the service the chain: simulation before deciding, owner
// signatures checked at approval, and the executor; the relayer key is
// created on first start and its address logged (fund it; add it as a
// Safe owner where it should sign).
func (n *chainNode) wire(ctx context.Context, log *slog.Logger, st daoguard.Store, keyring *secrets.Keyring, orgID string, c ChainConfig, svc *service.Service) error {
	exec, err := evm.NewExecutor(st, keyring, n.eth, n.sim)
	if err != nil {
		return err
	}
	exec.Mine, exec.Confirmations, exec.DriftTolerance = n.mine, c.Confirmations, c.DriftToleranceBPS
	signatures, err := evm.NewSafeApprovals(n.eth)
	if err != nil {
		return err
	}
	relayer, err := evm.EnsureSigner(ctx, st, keyring, orgID, evm.RelayerName)
	if err != nil {
		return err
	}
	svc.Simulator, svc.Signatures, svc.Executor = n.sim, signatures, exec
	log.Info("executor ready", "chain_id", n.chainID, "relayer", relayer.Address)
	return nil
}

// connect dials the configured node.
func connect(ctx context.Context, c ChainConfig) (*chainNode, error) {
	eth, err := dialChain(ctx, c)
	if err != nil {
		return nil, err
	}
	sim, err := evm.NewSimulator(eth, eth.Client())
	if err != nil {
		eth.Close()
		return nil, &daoguard.Error{Code: daoguard.CodeConfig, Message: err.Error(), Hint: "build with make (it compiles the contracts)"}
	}
	return &chainNode{eth: eth, sim: sim, chainID: c.ChainID, close: eth.Close}, nil
}

// startDev starts the chain of API.md's --dev environment and provisions
// it. Without rpcURL it is the in-process chain, serving JSON-RPC on a
// loopback port; with one it is a local development node (anvil, hardhat
// node, ganache) over JSON-RPC, whose first unlocked account funds the
// deployer. The deployer and the humans' owner keys are kept in DIR, so
// that each restart deploys the same contracts at the same addresses on an
// empty chain and the humans keep their keys; on a node that still has the
// contracts of DIR/dev.json, they are used as they are.
func startDev(ctx context.Context, log *slog.Logger, st daoguard.Store, keyring *secrets.Keyring, orgID, dir, rpcURL string) (*chainNode, error) {
	deployer, err := loadOrCreateKey(filepath.Join(dir, "dev", "deployer.key"))
	if err != nil {
		return nil, err
	}
	humans := map[string]*ecdsa.PrivateKey{}
	for _, h := range devchain.HumanNames {
		if humans[h], err = loadOrCreateKey(filepath.Join(dir, "credentials", h+".owner.key")); err != nil {
			return nil, err
		}
	}
	n := &chainNode{}
	var rpcc *rpc.Client
	var endpoint string
	if rpcURL == "" {
		chain, err := evm.StartSimChain(evm.SimOptions{HTTP: "127.0.0.1:0", Deployer: deployer})
		if err != nil {
			return nil, err
		}
		mctx, stop := context.WithCancel(ctx)
		go chain.AutoMine(mctx, 100*time.Millisecond)
		n.eth, n.mine, n.close = chain.Client, chain.Mine, func() { stop(); chain.Close() }
		rpcc, endpoint = chain.RPC, chain.HTTPEndpoint()
	} else {
		eth, err := ethclient.DialContext(ctx, rpcURL)
		if err != nil { // a ws:// node that does not answer
			return nil, &daoguard.Error{Code: daoguard.CodeUnavailable, Message: "--dev-rpc: " + err.Error(),
				Hint: "--dev-rpc is for a local development node (anvil, hardhat node, ganache) with a funded, unlocked account"}
		}
		n.eth, n.close, rpcc, endpoint = eth, eth.Close, eth.Client(), rpcURL
	}
	env, err := provisionDev(ctx, st, keyring, orgID, dir, n.eth, rpcc, n.mine, deployer, humans, rpcURL != "")
	if err != nil {
		n.close()
		return nil, err
	}
	if n.sim, err = evm.NewSimulator(n.eth, rpcc); err != nil {
		n.close()
		return nil, err
	}
	if err := writeDevJSON(filepath.Join(dir, "dev.json"), env, endpoint); err != nil {
		n.close()
		return nil, err
	}
	n.chainID, n.dev = env.ChainID, env
	log.Info("dev chain ready", "rpc", endpoint, "chain_id", env.ChainID, "treasury", env.Contracts.Safe.Hex(), "ops", env.Ops.Address, "usdc", env.Contracts.Token.Hex())
	return n, nil
}

// provisionDev reattaches to the contracts of DIR/dev.json on an external
// node that still has them, and otherwise funds the deployer from the
// node's unlocked account (external node) and provisions anew.
func provisionDev(ctx context.Context, st daoguard.Store, keyring *secrets.Keyring, orgID, dir string, eth evm.Client, rpcc *rpc.Client, mine evm.Miner, deployer *ecdsa.PrivateKey, humans map[string]*ecdsa.PrivateKey, external bool) (*devchain.Env, error) {
	if !external {
		return devchain.Provision(ctx, st, keyring, orgID, eth, mine, deployer, humans)
	}
	id, err := eth.ChainID(ctx)
	if err != nil {
		return nil, &daoguard.Error{Code: daoguard.CodeUnavailable, Message: "--dev-rpc: " + err.Error(),
			Hint: "--dev-rpc is for a local development node (anvil, hardhat node, ganache) with a funded, unlocked account"}
	}
	if c, chainID, ok := readDevContracts(filepath.Join(dir, "dev.json")); ok && chainID == id.Uint64() {
		env, err := devchain.Reattach(ctx, st, keyring, orgID, eth, c, humans)
		if !errors.Is(err, devchain.ErrGone) {
			return env, err
		}
	}
	if err := devchain.FundFromNode(ctx, rpcc, eth, crypto.PubkeyToAddress(deployer.PublicKey), devchain.DeployerFunds); err != nil {
		return nil, &daoguard.Error{Code: daoguard.CodeUnavailable, Message: "--dev-rpc: " + err.Error(),
			Hint: "--dev-rpc is for a local development node (anvil, hardhat node, ganache) with a funded, unlocked account"}
	}
	return devchain.Provision(ctx, st, keyring, orgID, eth, mine, deployer, humans)
}

// loadOrCreateKey reads a hex secp256k1 key from path, creating it (mode
// 0600) the first time.
func loadOrCreateKey(path string) (*ecdsa.PrivateKey, error) {
	k, err := crypto.LoadECDSA(path)
	if err == nil {
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, &daoguard.Error{Code: daoguard.CodeConfig, Message: path + ": " + err.Error()}
	}
	if k, err = crypto.GenerateKey(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	return k, crypto.SaveECDSA(path, k) // writes with mode 0600
}

// devJSON is DIR/dev.json (API.md): what external scripts need to build
// calls against the dev chain. Addresses are EIP-55.
type devJSON struct {
	ChainID    uint64            `json:"chain_id"`
	RPC        string            `json:"rpc"`
	Accounts   map[string]string `json:"accounts"`
	Assets     map[string]string `json:"assets"`
	Contracts  map[string]string `json:"contracts"`
	Humans     map[string]string `json:"humans"`
	OwnerKeys  map[string]string `json:"owner_keys"` // files with the humans' owner keys
	Recipients []string          `json:"allowlisted_recipients"`
}

// readDevContracts reads the contracts of an earlier dev.json.
func readDevContracts(path string) (*evm.DevContracts, uint64, bool) {
	var d devJSON
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &d) != nil {
		return nil, 0, false
	}
	c := &evm.DevContracts{}
	for _, f := range []struct {
		dst *common.Address
		v   string
	}{
		{&c.Singleton, d.Contracts["safe_singleton"]}, {&c.Factory, d.Contracts["safe_proxy_factory"]}, {&c.Handler, d.Contracts["fallback_handler"]},
		{&c.MultiSend, d.Contracts["multisend"]}, {&c.MultiSendCallOnly, d.Contracts["multisend_call_only"]},
		{&c.Safe, d.Accounts["treasury"]}, {&c.Token, d.Assets["USDC"]},
	} {
		if !common.IsHexAddress(f.v) {
			return nil, 0, false
		}
		*f.dst = common.HexToAddress(f.v)
	}
	return c, d.ChainID, true
}

func writeDevJSON(path string, env *devchain.Env, rpc string) error {
	d := devJSON{
		ChainID: env.ChainID, RPC: rpc,
		Accounts: map[string]string{"treasury": env.Contracts.Safe.Hex(), "ops": common.HexToAddress(env.Ops.Address).Hex()},
		Assets:   map[string]string{"USDC": env.Contracts.Token.Hex()},
		Contracts: map[string]string{"multisend": env.Contracts.MultiSend.Hex(), "multisend_call_only": env.Contracts.MultiSendCallOnly.Hex(),
			"safe_singleton": env.Contracts.Singleton.Hex(), "safe_proxy_factory": env.Contracts.Factory.Hex(), "fallback_handler": env.Contracts.Handler.Hex()},
		Humans: map[string]string{}, OwnerKeys: map[string]string{},
	}
	for _, h := range devchain.HumanNames {
		d.Humans[h] = crypto.PubkeyToAddress(env.Humans[h].PublicKey).Hex()
		d.OwnerKeys[h] = filepath.Join(filepath.Dir(path), "credentials", h+".owner.key")
	}
	d.Humans["daoguard"] = common.HexToAddress(env.Relayer.Address).Hex()
	for _, r := range env.Recipients {
		d.Recipients = append(d.Recipients, r.Hex())
	}
	return writeJSONFile(path, d, 0o644)
}

// loadDevPolicy loads the dev policy if no policy is in force yet.
func loadDevPolicy(ctx context.Context, svc *service.Service, orgID string, env *devchain.Env) error {
	if _, err := svc.CurrentPolicy(ctx, orgID); err == nil {
		return nil
	} else if !daoguard.IsNotFound(err) {
		return err
	}
	_, err := svc.LoadFirstPolicy(ctx, orgID, env.Policy())
	return err
}
