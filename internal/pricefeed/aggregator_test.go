package pricefeed

import (
	"context"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/daoguard/daoguard/internal/evm"
	"github.com/daoguard/daoguard/internal/evm/evmtest"
	"github.com/daoguard/daoguard/internal/policy"
	"github.com/ethereum/go-ethereum/common"
)

// feed is a DevAggregator deployed on an in-process chain.
type feed struct {
	t     *testing.T
	chain *evm.SimChain
	art   *evm.Artifact
	addr  common.Address
}

func deployFeed(t *testing.T, chain *evm.SimChain, decimals uint8) *feed {
	t.Helper()
	art := evmtest.Artifact(t, "DevAggregator")
	addr, err := evm.Deploy(context.Background(), chain.Client, chain.Mine, chain.Deployer, art, decimals, "ETH / USD")
	if err != nil {
		t.Fatal(err)
	}
	return &feed{t, chain, art, addr}
}

// round publishes a round as given.
func (f *feed) round(id int64, answer *big.Int, updatedAt time.Time, answeredIn int64) {
	f.t.Helper()
	up := big.NewInt(updatedAt.Unix())
	if updatedAt.IsZero() {
		up = new(big.Int)
	}
	if _, err := evm.Send(context.Background(), f.chain.Client, f.chain.Mine, f.chain.Deployer, f.art, f.addr, "setRoundData",
		big.NewInt(id), answer, up, up, big.NewInt(answeredIn)); err != nil {
		f.t.Fatal(err)
	}
}

// TestAggregatorSource reads Chainlink-style feeds on a real EVM: the price
// is exact in the policy's fixed point, the reading is as old as the
// round's updatedAt (so a frozen feed turns stale under the policy), and a
// non-positive, incomplete or carried-over round, or an address that is no
// aggregator, fails for its own symbol only.
func TestAggregatorSource(t *testing.T) {
	ctx := context.Background()
	chain := evmtest.Chain(t)
	eth, usdc, bad := deployFeed(t, chain, 8), deployFeed(t, chain, 18), deployFeed(t, chain, 8)
	updated := time.Unix(1_800_000_000, 0).UTC()
	eth.round(7, big.NewInt(3000_12345678), updated, 7)
	usdc.round(2, new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil), updated.Add(-10*time.Minute), 2)
	src := Source{Name: "chainlink", Aggregators: map[string]string{
		"ETH": eth.addr.Hex(), "USDC": strings.ToLower(usdc.addr.Hex()), "DAI": bad.addr.Hex(),
		"WBTC": "0x00000000000000000000000000000000000000aa", // no code there
	}}
	if err := src.Validate(); err != nil {
		t.Fatal(err)
	}
	p := New([]Source{src})
	p.Chain = chain.Client
	for _, tc := range []struct {
		answer     *big.Int
		updated    time.Time
		id, answIn int64
		want       string
	}{
		{big.NewInt(-1), updated, 3, 3, "not a positive price"},
		{new(big.Int), updated, 3, 3, "not a positive price"},
		{big.NewInt(1_00000000), time.Time{}, 3, 3, "not complete"},
		{big.NewInt(1_00000000), updated, 4, 3, "carries the answer of round 3"},
	} {
		bad.round(tc.id, tc.answer, tc.updated, tc.answIn)
		err := p.Poll(ctx)
		if err == nil || !strings.Contains(err.Error(), "DAI: ") || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "WBTC: ") {
			t.Fatalf("want DAI %q and WBTC errors, got %v", tc.want, err)
		}
		q := p.Quotes()
		if q["DAI"] != nil {
			t.Fatalf("DAI was read: %+v", q["DAI"].Readings())
		}
		rs := q["ETH"].Readings()
		wantETH, _ := policy.ParsePrice("3000.12345678")
		if len(rs) != 1 || rs[0].Price.Cmp(wantETH) != 0 || !rs[0].At.Equal(updated) || rs[0].Source != "chainlink" {
			t.Fatalf("ETH readings %+v", rs)
		}
		one, _ := policy.ParsePrice("1")
		if rs := q["USDC"].Readings(); len(rs) != 1 || rs[0].Price.Cmp(one) != 0 {
			t.Fatalf("USDC readings %+v", rs)
		}
	}
	// Freshness is the policy's: the USDC round is 10 minutes old.
	c := cfg()
	c.Quorum = 1
	if pr := policy.Aggregate(p.Quotes()["USDC"].Readings(), updated, c); pr.Value != nil || !strings.Contains(pr.Problem+strings.Join(pr.Rejected, " "), "stale") {
		t.Fatalf("a 10-minute-old round under a 5-minute max age: %+v", pr)
	}
	if pr := policy.Aggregate(p.Quotes()["ETH"].Readings(), updated.Add(time.Minute), c); pr.Value == nil {
		t.Fatalf("a fresh round: %+v", pr)
	}
	// Without a chain, aggregator sources fail, loudly.
	p2 := New([]Source{src})
	if err := p2.Poll(ctx); err == nil || !strings.Contains(err.Error(), "no chain") {
		t.Fatalf("no chain: %v", err)
	}
}

func TestAggregatorSourceValidate(t *testing.T) {
	for _, s := range []Source{
		{Name: "x", Aggregators: map[string]string{"ETH": "0x12"}},
		{Name: "x", Aggregators: map[string]string{"": "0x5f4ec3df9cbd43714fe2740f5e3616155c5b8419"}},
		{Name: "x", URL: "https://example.org", Aggregators: map[string]string{"ETH": "0x5f4ec3df9cbd43714fe2740f5e3616155c5b8419"}},
	} {
		if err := s.Validate(); err == nil {
			t.Fatalf("%+v validated", s)
		}
	}
}
