package httpapi_test

import (
	"context"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
	"github.com/daoguard/daoguard/internal/decider"
	"github.com/daoguard/daoguard/internal/storetest"
)

// GET /v1/policy/bounds over real HTTP: humans see every agent's bounds
// and all agents together, an agent its own; the holdings less what open
// actions reserved bound them; a policy change shows how it moves them.
func TestPolicyBoundsEndpoint(t *testing.T) {
	ctx := context.Background()
	e := newSQLiteEnv(t)
	hold := &storetest.SetHoldings{}
	hold.Set(time.Time{}, map[string]*big.Int{"USDC": big.NewInt(3000_000000), "ETH": new(big.Int).Mul(big.NewInt(10), big.NewInt(1e18))})
	e.svc.Decider = &decider.Policy{Prices: storetest.ClockPrices{Clock: e.clock}, Holdings: hold}
	agent := e.key("agent_1", daoguard.AlgHMACSHA256, daoguard.AgentScopes, "test", nil)
	human := e.key("human_1", daoguard.AlgEd25519, humanScopes, "test", nil)

	if _, err := human.PolicyBounds(ctx); daoguard.ErrorCode(err) != daoguard.CodeNotFound {
		t.Fatalf("before any policy: %v", err)
	}
	doc := strings.Replace(storetest.ExposurePolicy, "%s", "100", 1)
	doc = strings.Replace(doc, "%s", "1000", 1)
	if _, err := e.svc.LoadFirstPolicy(ctx, "org_test", doc); err != nil {
		t.Fatal(err)
	}
	find := func(bs []daoguard.Bound, who, asset string) *daoguard.Bound {
		for i, b := range bs {
			if b.Principal == who && b.Asset == asset && b.Period == "24h" {
				return &bs[i]
			}
		}
		return nil
	}
	all, err := human.PolicyBounds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b := find(all, "agent_1", "USDC"); b == nil || b.Amount != "1000" || !strings.Contains(b.By, "agent-vendor-payments") {
		t.Fatalf("agent_1 USDC: %+v", b)
	}
	if b := find(all, "agent_2", "USDC"); b == nil || b.Amount != "1000" {
		t.Fatalf("agent_2 USDC: %+v", b)
	}
	// Both agents together: 2,000 by their windows, less than the 3,000 held.
	if b := find(all, "", "USDC"); b == nil || b.Amount != "2000" {
		t.Fatalf("all agents USDC: %+v", b)
	}
	// Like the policy, bounds show an agent how far under each limit it
	// may go: not for a plain agent key.
	if _, err := agent.PolicyBounds(ctx); daoguard.ErrorCode(err) != daoguard.CodeMissingScope {
		t.Fatalf("an agent read the bounds: %v", err)
	}
	// A policy change shows how it moves the bounds before anyone signs.
	looser := strings.Replace(doc, `asset: USDC, max_amount: "1000"`, `asset: USDC, max_amount: "5000"`, 1)
	a, err := human.ProposePolicy(ctx, client.PolicyRequest{Policy: looser, Rationale: "bigger invoices"}, "")
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(a.Decoded.Policy.Bounds, "\n")
	if !strings.Contains(joined, "agent payroll bot (agent_1): 24h USDC 1000 → 3000") || !strings.Contains(joined, "all agents: 24h USDC 2000 → 3000") {
		t.Fatalf("bound changes:\n%s", joined)
	}
	// Open actions' reservations lower the holdings that bound: 2,500 of
	// the 3,000 reserved by a human's payment awaiting approval.
	if a, err := e.svc.Submit(ctx, "human_1", "", storetest.Transfer("2500", storetest.Vendor)); err != nil || a.State != daoguard.StateAwaitingApproval {
		t.Fatalf("human payment: %v %+v", err, a)
	}
	all, _ = human.PolicyBounds(ctx)
	if b := find(all, "", "USDC"); b == nil || b.Amount != "500" || b.By != "holdings" {
		t.Fatalf("all agents USDC with 2,500 reserved: %+v", b)
	}
}
