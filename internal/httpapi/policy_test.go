package httpapi_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
	"github.com/daoguard/daoguard/internal/decider"
	"github.com/daoguard/daoguard/internal/service"
	"github.com/daoguard/daoguard/internal/storetest"
)

// The policy endpoints over real HTTP with real signatures: dry run,
// proposal, the policy in force, and the refusals.
func TestPolicyEndpoints(t *testing.T) {
	ctx := context.Background()
	e := newSQLiteEnv(t)
	e.svc.Decider = &decider.Policy{}
	agent := e.key("agent_1", daoguard.AlgHMACSHA256, daoguard.AgentScopes, "test", nil)
	human := e.key("human_1", daoguard.AlgEd25519, humanScopes, "test", nil)
	humanHMAC := e.key("human_2", daoguard.AlgHMACSHA256, []string{daoguard.ScopeControlsWrite}, "test", nil)

	// Before any policy: the dry run says NO_POLICY, GET says not found.
	ev, err := agent.Evaluate(ctx, storetest.Transfer("5", storetest.Vendor))
	if err != nil || ev.Decision.Verdict != "deny" || ev.Decision.Reasons[0].Code != daoguard.ReasonNoPolicy {
		t.Fatalf("no policy: %v %+v", err, ev)
	}
	if _, err := human.Policy(ctx); daoguard.ErrorCode(err) != daoguard.CodeNotFound {
		t.Fatalf("GET without a policy: %v", err)
	}
	if _, err := e.svc.LoadFirstPolicy(ctx, "org_test", storetest.PipelinePolicy); err != nil {
		t.Fatal(err)
	}

	// No prices are configured: a USD rule fails closed to approval, and
	// the dry run says so without recording anything.
	before := recorded(t, e)
	ev, err = agent.Evaluate(ctx, storetest.Transfer("5", storetest.Vendor))
	if err != nil || ev.Decision.Verdict != "needs_approval" || ev.Decoded.Amount.String() != "5000000" {
		t.Fatalf("dry run: %v %+v", err, ev)
	}
	if !strings.Contains(reasonCodes(ev.Decision.Reasons), "PRICE_UNAVAILABLE") {
		t.Fatalf("reasons %s", reasonCodes(ev.Decision.Reasons))
	}
	// Bad input is refused as on submit, and changes nothing.
	if _, err := agent.Evaluate(ctx, daoguard.Intent{Account: "ops", Kind: "transfer", Asset: "USDC", To: storetest.Vendor, Amount: "1e3"}); daoguard.ErrorCode(err) != daoguard.CodeInvalidAmount {
		t.Fatalf("bad amount: %v", err)
	}
	if after := recorded(t, e); after != before {
		t.Fatalf("the dry run recorded something: %d actions and ledger entries before, %d after", before, after)
	}

	// The policy in force: for audit:read holders, not agents.
	pv, err := human.Policy(ctx)
	if err != nil || pv.Version != 1 || pv.Source != storetest.PipelinePolicy || pv.By != service.ActorOperator {
		t.Fatalf("GET /v1/policy: %v %+v", err, pv)
	}
	if _, err := agent.Policy(ctx); daoguard.ErrorCode(err) != daoguard.CodeMissingScope {
		t.Fatalf("agent reads the policy: %v", err)
	}

	// Proposals: an invalid document lists every problem with its line.
	_, err = human.ProposePolicy(ctx, client.PolicyRequest{Policy: "version: 1\nname: x\nrules:\n  - tier: maybe\n  - tier: never\n"}, "")
	var de *daoguard.Error
	if daoguard.ErrorCode(err) != daoguard.CodeInvalidPolicy || !errors.As(err, &de) || len(de.Details) < 2 || !strings.HasPrefix(de.Details[0], "line ") {
		t.Fatalf("invalid proposal: %v %+v", err, de)
	}
	// An HMAC key cannot move control.
	if _, err := humanHMAC.ProposePolicy(ctx, client.PolicyRequest{Policy: storetest.PipelinePolicy + "# v2\n"}, ""); daoguard.ErrorCode(err) != daoguard.CodeEd25519Required {
		t.Fatalf("hmac proposal: %v", err)
	}
	// Agents lack the scope altogether.
	if _, err := agent.ProposePolicy(ctx, client.PolicyRequest{Policy: storetest.PipelinePolicy + "# v2\n"}, ""); daoguard.ErrorCode(err) != daoguard.CodeMissingScope {
		t.Fatalf("agent proposal: %v", err)
	}
	a, err := human.ProposePolicy(ctx, client.PolicyRequest{Policy: storetest.PipelinePolicy + "# v2\n", Rationale: "mark it"}, "k1")
	if err != nil || a.State != "awaiting_approval" || a.Decoded.Policy == nil || !strings.Contains(a.Decoded.Policy.Diff, "+# v2") || a.Decision.ApproverRole != "council" {
		t.Fatalf("proposal: %v %+v", err, a)
	}
	again, err := human.ProposePolicy(ctx, client.PolicyRequest{Policy: storetest.PipelinePolicy + "# v2\n", Rationale: "mark it"}, "k1")
	if err != nil || again.ID != a.ID {
		t.Fatalf("idempotent proposal: %v %+v", err, again)
	}
}

func reasonCodes(rs []daoguard.Reason) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(r.Code + " ")
	}
	return b.String()
}

// recorded counts actions and window-ledger entries: what a dry run must
// never add to (it does use a nonce, like every signed request).
func recorded(t *testing.T, e *env) int {
	t.Helper()
	n := 0
	err := e.store.View(context.Background(), func(tx daoguard.Tx) error {
		as, err := tx.FindActions(context.Background(), daoguard.ActionFilter{Limit: daoguard.MaxFindLimit})
		if err != nil {
			return err
		}
		es, err := tx.LedgerTail(context.Background(), "org_test", 0, time.Time{}, 1000)
		n = len(as) + len(es)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
