package httpapi_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/auth"
	"github.com/daoguard/daoguard/internal/storetest"
)

// TestIdempotencyKeyIsSigned: the Idempotency-Key is a covered component
// whenever it is sent, so nobody on the path can turn a retry into a
// second payment by rewriting it, nor add one to a request signed without.
func TestIdempotencyKeyIsSigned(t *testing.T) {
	e := newSQLiteEnv(t)
	agent := e.key("agent_1", daoguard.AlgHMACSHA256, daoguard.AgentScopes, "test", nil)
	build := func(key string, sign func(r *http.Request)) *http.Request {
		body := intentJSON("3")
		r, err := http.NewRequest("POST", agent.URL+"/v1/actions", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/json")
		if key != "" {
			r.Header.Set("Idempotency-Key", key)
		}
		if err := auth.SignRequest(r, body, agent.Signer, agent.Now()); err != nil {
			t.Fatal(err)
		}
		if sign != nil {
			sign(r)
		}
		return r
	}

	// The client signs it, and a retry with the same key is the same action.
	a1, err := agent.Submit(t.Context(), storetest.Transfer("3", storetest.Vendor), "invoice-881")
	if err != nil {
		t.Fatal(err)
	}
	a2, err := agent.Submit(t.Context(), storetest.Transfer("3", storetest.Vendor), "invoice-881")
	if err != nil || a2.ID != a1.ID {
		t.Fatalf("retry: %v %s vs %s", err, a2.ID, a1.ID)
	}
	if r := build("k-1", nil); !bytes.Contains([]byte(r.Header.Get("Signature-Input")), []byte(`"idempotency-key"`)) {
		t.Fatalf("not covered: %s", r.Header.Get("Signature-Input"))
	}

	before, size := e.snapshot(), e.auditSize()
	for name, r := range map[string]*http.Request{
		// Rewritten after signing: a captured retry made into a new payment.
		"ErrRewritten": build("invoice-881", func(r *http.Request) { r.Header.Set("Idempotency-Key", "invoice-882") }),
		// Added to a request signed without one.
		"ErrAdded": build("", func(r *http.Request) { r.Header.Set("Idempotency-Key", "invoice-883") }),
		// Removed from one signed with it.
		"ErrRemoved": build("invoice-884", func(r *http.Request) { r.Header.Del("Idempotency-Key") }),
	} {
		status, p, _ := send(t, r)
		if status != http.StatusUnauthorized || p.Code != string(daoguard.CodeSignatureInvalid) {
			t.Errorf("%s: %d %s", name, status, p.Code)
		}
	}
	if after := e.snapshot(); after != before {
		t.Fatal("a refused request changed the store")
	}
	if n := e.auditSize() - size; n != 3 {
		t.Fatalf("%d audit entries for 3 refusals", n)
	}
}

// An Idempotency-Key with a comma, or sent on two header lines, is
// refused: repeated lines are joined with ", " in the signature base but
// read as the first line by the handler.
func TestIdempotencyKeyOneLine(t *testing.T) {
	e := newSQLiteEnv(t)
	agent := e.key("agent_1", daoguard.AlgHMACSHA256, daoguard.AgentScopes, "test", nil)
	if _, err := agent.Submit(t.Context(), storetest.Transfer("3", storetest.Vendor), "pay-42, retry"); daoguard.ErrorCode(err) != daoguard.CodeInvalid {
		t.Fatalf("a comma: %v", err)
	}
	body := intentJSON("3")
	r, _ := http.NewRequest("POST", agent.URL+"/v1/actions", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header["Idempotency-Key"] = []string{"pay-42", "retry"}
	if err := auth.SignRequest(r, body, agent.Signer, agent.Now()); err != nil {
		t.Fatal(err)
	}
	before := e.snapshot()
	if status, p, _ := send(t, r); status != http.StatusBadRequest || p.Code != string(daoguard.CodeInvalid) {
		t.Fatalf("two lines: %d %s", status, p.Code)
	}
	if e.snapshot() != before {
		t.Fatal("a refused request changed the store")
	}
}
