package evm_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/binary"
	"math/big"
	"strings"
	"testing"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/evm"
	"github.com/daoguard/daoguard/internal/evm/evmtest"
	"github.com/daoguard/daoguard/internal/policy"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// devWorld is a simulated chain with the dev contracts: a 2-of-3 Safe
// holding 10 ETH and 1,000 USDC, and a wallet holding 10 ETH and 500 USDC.
type devWorld struct {
	chain  *evm.SimChain
	dev    *evm.DevContracts
	owners []*ecdsa.PrivateKey
	wallet *ecdsa.PrivateKey
	assets []*daoguard.Asset
	sim    *evm.Simulator
}

func newDevWorld(t testing.TB) *devWorld {
	t.Helper()
	ctx := context.Background()
	evmtest.Artifact(t, "DaoguardProbe") // skips without make contracts
	w := &devWorld{}
	var owners []common.Address
	for range 3 {
		k, _ := crypto.GenerateKey()
		w.owners = append(w.owners, k)
		owners = append(owners, crypto.PubkeyToAddress(k.PublicKey))
	}
	w.wallet, _ = crypto.GenerateKey()
	chain, err := evm.NewSimChain(crypto.PubkeyToAddress(w.wallet.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chain.Close() })
	w.chain = chain
	if w.dev, err = evm.DeployDev(ctx, chain.Client, chain.Mine, chain.Deployer, owners, 2); err != nil {
		t.Fatal(err)
	}
	eth := new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)
	if _, err := evm.Transact(ctx, chain.Client, chain.Mine, chain.Deployer, &w.dev.Safe, new(big.Int).Mul(big.NewInt(10), eth), nil); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		to  common.Address
		amt int64
	}{{w.dev.Safe, 1000e6}, {crypto.PubkeyToAddress(w.wallet.PublicKey), 500e6}} {
		if err := evm.Mint(ctx, chain.Client, chain.Mine, chain.Deployer, w.dev.Token, m.to, big.NewInt(m.amt)); err != nil {
			t.Fatal(err)
		}
	}
	w.assets = []*daoguard.Asset{
		{Symbol: "ETH", ChainID: 1337, Decimals: 18},
		{Symbol: "USDC", ChainID: 1337, Address: strings.ToLower(w.dev.Token.Hex()), Decimals: 6},
	}
	rpcc := chain.RPC
	if w.sim, err = evm.NewSimulator(chain.Client, rpcc); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *devWorld) walletAddr() string {
	return strings.ToLower(crypto.PubkeyToAddress(w.wallet.PublicKey).Hex())
}

func (w *devWorld) transfer(kind daoguard.AccountKind, from, asset, to string, amount int64) *daoguard.Decoded {
	d := &daoguard.Decoded{Kind: daoguard.KindTransfer, ChainID: 1337, AccountKind: kind, From: from, To: to, Asset: asset, Amount: daoguard.NewBigInt(big.NewInt(amount)), Operation: daoguard.OpCall}
	if asset == "USDC" {
		d.Token, d.Decimals = strings.ToLower(w.dev.Token.Hex()), 6
	}
	return d
}

func (w *devWorld) call(kind daoguard.AccountKind, from string, to common.Address, op daoguard.Operation, data []byte) *daoguard.Decoded {
	return &daoguard.Decoded{Kind: daoguard.KindCall, ChainID: 1337, AccountKind: kind, From: from, To: strings.ToLower(to.Hex()), Value: daoguard.NewBigInt(new(big.Int)), Data: data, Operation: op}
}

func tokenCall(t testing.TB, method string, args ...any) []byte {
	a := evmtest.Artifact(t, "DevToken")
	data, err := a.ABI.Pack(method, args...)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// multiSend is evm.PackMultiSend, checked against the MultiSend
// contract's own ABI encoding.
func multiSend(t testing.TB, txs ...evm.TxCall) []byte {
	var packed []byte
	for _, c := range txs {
		packed = append(packed, c.Operation)
		packed = append(packed, c.To.Bytes()...)
		v := make([]byte, 32)
		if c.Value != nil {
			c.Value.FillBytes(v)
		}
		packed = append(packed, v...)
		l := make([]byte, 32)
		binary.BigEndian.PutUint64(l[24:], uint64(len(c.Data)))
		packed = append(packed, l...)
		packed = append(packed, c.Data...)
	}
	a := evmtest.Artifact(t, "MultiSend")
	want, err := a.ABI.Pack("multiSend", packed)
	if err != nil {
		t.Fatal(err)
	}
	if got := evm.PackMultiSend(txs...); !bytes.Equal(got, want) {
		t.Fatalf("PackMultiSend %x, the ABI %x", got, want)
	}
	return want
}

func spent(t *testing.T, s *daoguard.Simulation, asset string) int64 {
	t.Helper()
	for _, c := range s.Changes {
		if c.Asset == asset {
			return c.Spent().Int64()
		}
	}
	return 0
}

// TestSimulate: the simulator runs actions as their account would — a
// wallet's directly, a Safe's through the Safe itself (delegatecalls
// included) — and reports balance changes, resulting allowances, reverts
// with their reason, bound code, and a Safe's transaction hash as the Safe
// itself computes it.
func TestSimulate(t *testing.T) {
	ctx := context.Background()
	w := newDevWorld(t)
	safe := strings.ToLower(w.dev.Safe.Hex())
	bob := common.HexToAddress("0x00000000000000000000000000000000000b0b00")
	bobs := strings.ToLower(bob.Hex())

	t.Run("WalletNative", func(t *testing.T) {
		s, ref, err := w.sim.Simulate(ctx, w.transfer(daoguard.AccountWallet, w.walletAddr(), "ETH", bobs, 1e18), w.assets)
		if err != nil || !s.Success || ref != nil {
			t.Fatalf("%+v %v %v", s, ref, err)
		}
		if got := spent(t, s, "ETH"); got != 1e18 {
			t.Fatalf("spent %d ETH wei", got)
		}
		if len(s.Code) != 1 || s.Code[0].Address != bobs || s.Code[0].CodeHash != crypto.Keccak256Hash(nil).Hex() {
			t.Fatalf("code %+v", s.Code)
		}
	})
	t.Run("WalletTokenOverdraft", func(t *testing.T) {
		s, _, err := w.sim.Simulate(ctx, w.transfer(daoguard.AccountWallet, w.walletAddr(), "USDC", bobs, 600e6), w.assets)
		if err != nil || s.Success || s.Revert == "" || len(s.Changes) != 0 {
			t.Fatalf("an overdraft must revert with a reason and change nothing: %+v %v", s, err)
		}
	})
	t.Run("WalletIncreaseAllowance", func(t *testing.T) {
		// The resulting allowance is what was there plus the increase:
		// the policy caps that, not the call's argument.
		spender := common.HexToAddress("0x000000000000000000000000000000000000dead")
		addr := crypto.PubkeyToAddress(w.wallet.PublicKey)
		if _, err := evm.Transact(ctx, w.chain.Client, w.chain.Mine, w.wallet, &w.dev.Token, nil, tokenCall(t, "approve", spender, big.NewInt(70e6))); err != nil {
			t.Fatal(err)
		}
		s, _, err := w.sim.Simulate(ctx, w.call(daoguard.AccountWallet, strings.ToLower(addr.Hex()), w.dev.Token, daoguard.OpCall, tokenCall(t, "increaseAllowance", spender, big.NewInt(50e6))), w.assets)
		if err != nil || !s.Success {
			t.Fatalf("%+v %v", s, err)
		}
		if len(s.Allowances) != 1 || s.Allowances[0].Amount.Int().Int64() != 120e6 || s.Allowances[0].Asset != "USDC" {
			t.Fatalf("allowances %+v", s.Allowances)
		}
	})
	t.Run("SafeToken", func(t *testing.T) {
		s, ref, err := w.sim.Simulate(ctx, w.transfer(daoguard.AccountSafe, safe, "USDC", bobs, 250e6), w.assets)
		if err != nil || !s.Success {
			t.Fatalf("%+v %v", s, err)
		}
		if got := spent(t, s, "USDC"); got != 250e6 {
			t.Fatalf("spent %d USDC units", got)
		}
		// The hash the owners will sign is the one the Safe computes.
		safeArt := evmtest.Artifact(t, "Safe")
		data := tokenCall(t, "transfer", bob, big.NewInt(250e6))
		out, err := evm.Call(ctx, w.chain.Client, safeArt, w.dev.Safe, "getTransactionHash", w.dev.Token, new(big.Int), data, uint8(0), new(big.Int), new(big.Int), new(big.Int), common.Address{}, common.Address{}, new(big.Int).SetUint64(ref.Nonce))
		if err != nil || ref == nil || common.Hash(out[0].([32]byte)).Hex() != ref.Hash {
			t.Fatalf("safe tx %+v, Safe says %v (%v)", ref, out, err)
		}
	})
	t.Run("SafeMultiSendDelegatecall", func(t *testing.T) {
		// A batch run by delegatecall in the Safe's context: 1 ETH and
		// 100 USDC out, and an approval, all seen.
		spender := common.HexToAddress("0x000000000000000000000000000000000000beef")
		batch := multiSend(t,
			evm.TxCall{To: bob, Value: big.NewInt(1e18)},
			evm.TxCall{To: w.dev.Token, Value: new(big.Int), Data: tokenCall(t, "transfer", bob, big.NewInt(100e6))},
			evm.TxCall{To: w.dev.Token, Value: new(big.Int), Data: tokenCall(t, "approve", spender, big.NewInt(5e6))},
		)
		s, _, err := w.sim.Simulate(ctx, w.call(daoguard.AccountSafe, safe, w.dev.MultiSend, daoguard.OpDelegateCall, batch), w.assets)
		if err != nil || !s.Success {
			t.Fatalf("%+v %v", s, err)
		}
		if spent(t, s, "ETH") != 1e18 || spent(t, s, "USDC") != 100e6 {
			t.Fatalf("changes %+v", s.Changes)
		}
		if len(s.Allowances) != 1 || s.Allowances[0].Amount.Int().Int64() != 5e6 {
			t.Fatalf("allowances %+v", s.Allowances)
		}
		if len(s.Code) != 3 { // MultiSend, bob, the token
			t.Fatalf("code %+v", s.Code)
		}
	})
	t.Run("SafeRevert", func(t *testing.T) {
		s, _, err := w.sim.Simulate(ctx, w.transfer(daoguard.AccountSafe, safe, "USDC", bobs, 2000e6), w.assets)
		if err != nil || s.Success || !strings.Contains(s.Revert, "DevToken") {
			t.Fatalf("%+v %v", s, err)
		}
	})
	t.Run("ProxyImplementation", func(t *testing.T) {
		proxyArt := evmtest.Artifact(t, "DevProxy")
		proxy, err := evm.Deploy(ctx, w.chain.Client, w.chain.Mine, w.chain.Deployer, proxyArt, w.dev.Token)
		if err != nil {
			t.Fatal(err)
		}
		code, err := w.sim.BindCode(ctx, []string{proxy.Hex()}, nil)
		if err != nil || len(code) != 1 || code[0].Implementation != strings.ToLower(w.dev.Token.Hex()) || code[0].ImplementationCodeHash == "" {
			t.Fatalf("%+v %v", code, err)
		}
	})
}

// BenchmarkSimulate: the latency of decoding an action (policy's decoder,
// MultiSend included) and of decoding plus simulating it on the in-process
// chain (one eth_call with the probe, the code reads, for a Safe its nonce).
func BenchmarkSimulate(b *testing.B) {
	ctx := context.Background()
	w := newDevWorld(b)
	safe := strings.ToLower(w.dev.Safe.Hex())
	bob := common.HexToAddress("0x00000000000000000000000000000000000b0b00")
	batch := multiSend(b,
		evm.TxCall{To: bob, Value: big.NewInt(1e18)},
		evm.TxCall{To: w.dev.Token, Value: new(big.Int), Data: tokenCall(b, "transfer", bob, big.NewInt(100e6))},
		evm.TxCall{To: w.dev.Token, Value: new(big.Int), Data: tokenCall(b, "approve", bob, big.NewInt(5e6))},
	)
	cases := []struct {
		name string
		d    *daoguard.Decoded
	}{
		{"WalletUSDC", w.transfer(daoguard.AccountWallet, w.walletAddr(), "USDC", strings.ToLower(bob.Hex()), 1e6)},
		{"SafeMultiSend3", w.call(daoguard.AccountSafe, safe, w.dev.MultiSend, daoguard.OpDelegateCall, batch)},
	}
	cat := policy.NewCatalog(w.assets)
	for _, c := range cases {
		b.Run("Decode/"+c.name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := policy.Touches(c.d, cat); err != nil {
					b.Fatal(err)
				}
			}
		})
		if c.d.Kind == daoguard.KindCall {
			// Every call decoded by ABI for approvers (decoded.calls).
			b.Run("DescribeCalls/"+c.name, func(b *testing.B) {
				for b.Loop() {
					if calls := policy.DescribeCalls(c.d, cat, nil); len(calls) != 4 || calls[3].Function != "approve(address,uint256)" {
						b.Fatal(calls)
					}
				}
			})
		}
		b.Run("DecodeSimulate/"+c.name, func(b *testing.B) {
			for b.Loop() {
				s, _, err := w.sim.Simulate(ctx, c.d, w.assets)
				if err != nil || !s.Success {
					b.Fatal(s, err)
				}
			}
		})
	}
}
