package evm

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/eth"
	"github.com/ethereum/go-ethereum/eth/catalyst"
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/node"
	"github.com/ethereum/go-ethereum/p2p"
	"github.com/ethereum/go-ethereum/params"
	"github.com/ethereum/go-ethereum/rpc"
)

// SimChainID is the in-process chain's id (go-ethereum's dev chain).
const SimChainID = 1337

// SimChain is an in-process chain: a go-ethereum node on the dev chain
// config with a simulated beacon that seals a block per Mine. It is what
// go-ethereum's ethclient/simulated package builds, assembled here so that
// daoguard keeps the node's raw RPC client (for eth_call state overrides)
// and may serve it over HTTP to other processes (the dev environment, the
// crash tests).
type SimChain struct {
	Client Client
	RPC    *rpc.Client
	// Deployer is funded at genesis and deploys the chain's contracts.
	Deployer *ecdsa.PrivateKey

	stack  *node.Node
	beacon *catalyst.SimulatedBeacon
	mu     sync.Mutex // Mine and Close
	closed bool
}

// SimOptions configure a SimChain.
type SimOptions struct {
	// HTTP, if set (host:port; port 0 picks one), serves JSON-RPC there.
	HTTP string
	// Fund lists addresses given 10^24 wei (a million ETH) at genesis.
	Fund []common.Address
	// Deployer is the funded deployer's key; nil: a fresh one. A fixed
	// deployer deploys the same contracts at the same addresses on every
	// new chain.
	Deployer *ecdsa.PrivateKey
}

// NewSimChain starts a chain whose genesis funds the deployer and every
// address of fund.
func NewSimChain(fund ...common.Address) (*SimChain, error) {
	return StartSimChain(SimOptions{Fund: fund})
}

// StartSimChain starts a chain with opts.
func StartSimChain(opts SimOptions) (*SimChain, error) {
	key := opts.Deployer
	if key == nil {
		var err error
		if key, err = crypto.GenerateKey(); err != nil {
			return nil, err
		}
	}
	rich := new(big.Int).Exp(big.NewInt(10), big.NewInt(24), nil)
	alloc := core.SystemContractAllocs() // the forks' system contracts, present from genesis
	maps.Copy(alloc, types.GenesisAlloc{crypto.PubkeyToAddress(key.PublicKey): {Balance: rich}})
	for _, a := range opts.Fund {
		alloc[a] = types.Account{Balance: rich}
	}
	nodeConf := node.DefaultConfig
	nodeConf.DataDir = ""
	nodeConf.P2P = p2p.Config{NoDiscovery: true, MaxPeers: 0, ListenAddr: ""}
	nodeConf.HTTPHost, nodeConf.HTTPPort, nodeConf.WSHost = "", 0, ""
	nodeConf.HTTPModules = []string{"eth", "net", "web3"}
	if opts.HTTP != "" {
		host, port, err := splitHostPort(opts.HTTP)
		if err != nil {
			return nil, err
		}
		nodeConf.HTTPHost, nodeConf.HTTPPort = host, port
		nodeConf.HTTPVirtualHosts = []string{"*"}
	}
	// Mainnet's rules: every fork up to the current one. go-ethereum's dev
	// config also enables a fork still in development (Bogota), whose gas
	// schedule made an ERC-20 transfer cost ~146k gas instead of ~51k.
	chainConf := *params.AllDevChainProtocolChanges
	chainConf.BogotaTime = nil
	ethConf := ethconfig.Defaults
	ethConf.Genesis = &core.Genesis{Config: &chainConf, GasLimit: ethconfig.Defaults.Miner.GasCeil, Alloc: alloc}
	ethConf.SyncMode = ethconfig.FullSync
	ethConf.TxPool.NoLocals = true
	ethConf.LogNoHistory = true
	stack, err := node.New(&nodeConf)
	if err != nil {
		return nil, err
	}
	backend, err := eth.New(stack, &ethConf)
	if err != nil {
		stack.Close()
		return nil, err
	}
	if err := stack.Start(); err != nil {
		stack.Close()
		return nil, err
	}
	beacon, err := catalyst.NewSimulatedBeacon(0, common.Address{}, backend)
	if err != nil {
		stack.Close()
		return nil, err
	}
	if err := beacon.Fork(backend.BlockChain().GetCanonicalHash(0)); err != nil {
		stack.Close()
		return nil, err
	}
	rpcc := stack.Attach()
	return &SimChain{Client: ethclient.NewClient(rpcc), RPC: rpcc, Deployer: key, stack: stack, beacon: beacon}, nil
}

// HTTPEndpoint is the URL the chain serves JSON-RPC on ("" if it does not).
func (s *SimChain) HTTPEndpoint() string { return s.stack.HTTPEndpoint() }

// Mine seals the pending transactions into a block.
func (s *SimChain) Mine() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.beacon.Commit()
	}
}

// AutoMine seals a block whenever transactions are pending, checking
// every period, until ctx ends: a node that mines on its own, as a real
// chain does, for the dev environment.
func (s *SimChain) AutoMine(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var pending hexutil.Uint
		if err := s.RPC.CallContext(ctx, &pending, "eth_getBlockTransactionCountByNumber", "pending"); err != nil {
			continue
		}
		if pending > 0 {
			s.Mine()
		}
	}
}

// Close stops the chain.
func (s *SimChain) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.RPC.Close()
	return errors.Join(s.beacon.Stop(), s.stack.Close())
}

func splitHostPort(hp string) (string, int, error) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", hp)
	}
	return host, p, nil
}
