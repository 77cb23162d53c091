package httpapi_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
	"github.com/daoguard/daoguard/internal/auth"
)

// TestFailedAuthenticationLimit: a source that keeps failing is answered
// 429 with Retry-After and its failures are counted instead of written one
// by one; a correctly signed request from the same address still passes
// (one bad client behind a proxy cannot lock the humans out).
func TestFailedAuthenticationLimit(t *testing.T) {
	e := newSQLiteEnv(t)
	e.authn.FailLimit = auth.NewLimiter("failed-auth", 0.001, 3)
	human := e.key("human_1", daoguard.AlgEd25519, humanScopes, "test", nil)
	forger := e.client(&client.HMACSigner{ID: human.Signer.KeyID(), Secret: make([]byte, 32)})
	size := e.auditSize()
	for i := range 3 {
		if status, p, _ := send(t, signed(t, forger, "GET", "/v1/actions", nil)); status != 401 {
			t.Fatalf("failure %d: %d %s", i, status, p.Code)
		}
	}
	status, p, h := send(t, signed(t, forger, "GET", "/v1/actions", nil))
	if status != 429 || p.Code != string(daoguard.CodeRateLimited) {
		t.Fatalf("4th failure: %d %s", status, p.Code)
	}
	if ra, err := strconv.Atoi(h.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", h.Get("Retry-After"))
	}
	if n := e.auditSize() - size; n != 3 {
		t.Fatalf("%d audit entries for 3 written failures and 1 limited", n)
	}
	// The honest key from the same address is not locked out.
	if _, err := human.Pause(context.Background(), "incident"); err != nil {
		t.Fatalf("a valid request from the limited address: %v", err)
	}
	if err := e.authn.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	es := e.auditFrom(size)
	last := es[len(es)-1]
	var d struct {
		Count    int
		ByReason map[string]int `json:"by_reason"`
	}
	json.Unmarshal(last.Detail, &d)
	if last.Event != "auth.failures_suppressed" || d.Count != 1 || d.ByReason["ALG_MISMATCH"] != 1 {
		t.Fatalf("suppressed entry %s %s", last.Event, last.Detail)
	}
}

// TestKeyRateLimit: a key over its rate gets 429 with RateLimit headers,
// and every accepted answer carries them too.
func TestKeyRateLimit(t *testing.T) {
	e := newSQLiteEnv(t)
	e.authn.KeyLimit = auth.NewLimiter("key", 0.001, 2)
	agent := e.key("agent_1", daoguard.AlgHMACSHA256, daoguard.AgentScopes, "test", nil)
	for i := range 2 {
		status, _, h := send(t, signed(t, agent, "GET", "/v1/actions", nil))
		if status != 200 || h.Get("RateLimit-Policy") != `"key";q=2;w=2000` || h.Get("RateLimit") == "" {
			t.Fatalf("request %d: %d policy %q limit %q", i, status, h.Get("RateLimit-Policy"), h.Get("RateLimit"))
		}
	}
	before := e.snapshot()
	status, p, h := send(t, signed(t, agent, "GET", "/v1/actions", nil))
	if status != 429 || p.Code != string(daoguard.CodeRateLimited) || h.Get("Retry-After") == "" || h.Get("RateLimit") == "" {
		t.Fatalf("over the limit: %d %s %v", status, p.Code, h)
	}
	if e.snapshot() != before {
		t.Fatal("a rate-limited request changed the store (its nonce must not be used)")
	}
}

// TestOneSourceCannotSilenceOthers: a source past its own failure budget
// does not spend the global audit budget, so another address's failure is
// still written with its source and reason.
func TestOneSourceCannotSilenceOthers(t *testing.T) {
	e := newSQLiteEnv(t)
	e.authn.FailLimit = auth.NewLimiter("failed-auth", 0.001, 3)
	e.authn.AuditLimit = auth.NewLimiter("failed-auth-audit", 0.001, 5)
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	unsigned := func(hc *http.Client) int {
		res, err := hc.Get(e.srv.URL + "/v1/actions")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	flood := from("127.0.0.1")
	for range 50 {
		unsigned(flood)
	}
	size := e.auditSize()
	if status := unsigned(from("127.0.0.2")); status != 401 {
		t.Fatalf("the other address: %d", status)
	}
	es := e.auditFrom(size)
	// The address is recorded as its keyed hash, never in clear.
	if len(es) != 1 || !strings.Contains(string(es[0].Detail), `"source":"`+e.authn.Pseudonyms.Of("source", "127.0.0.2")+`"`) || strings.Contains(string(es[0].Detail), "127.0.0.2") {
		t.Fatalf("the other address's failure was not written: %+v", es)
	}
}
