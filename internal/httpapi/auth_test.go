package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
	"github.com/daoguard/daoguard/internal/auth"
	"github.com/daoguard/daoguard/internal/httpapi"
)

// signCustom signs r with an arbitrary Signature-Input (for requests that
// break the profile while carrying a valid signature).
func signCustom(t *testing.T, r *http.Request, body []byte, s client.Signer, input string) {
	t.Helper()
	r.Header.Set("Content-Digest", auth.ContentDigest(body))
	r.Header.Set("Signature-Input", "sig1="+input)
	r.Header.Set("Signature", "sig1=::")
	sig, err := auth.ParseSignature(r.Header, "sig1")
	if err != nil {
		t.Fatal(err)
	}
	base, err := sig.Base(r)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Signature", "sig1=:"+b64(s.Sign(base))+":")
}

// TestRefusedRequests sends every kind of bad request and checks the
// documented status and code, that the store is unchanged, and that the
// audit log gained exactly one entry with the reason (or none, for what is
// refused before authentication).
func TestRefusedRequests(t *testing.T) {
	e := newSQLiteEnv(t)
	now := e.clock.Now()
	agent := e.key("agent_1", daoguard.AlgHMACSHA256, daoguard.AgentScopes, "test", nil)
	human := e.key("human_1", daoguard.AlgEd25519, humanScopes, "test", nil)
	submitter := e.key("human_3", daoguard.AlgEd25519, []string{daoguard.ScopeActionsWrite}, "test", nil)
	human3 := e.key("human_3", daoguard.AlgEd25519, humanScopes, "test", nil)       // a second human: resuming needs two
	humanHMAC := e.key("human_2", daoguard.AlgHMACSHA256, humanScopes, "test", nil) // never issued by the API; planted in the store
	live := e.key("agent_1", daoguard.AlgHMACSHA256, daoguard.AgentScopes, "live", nil)
	revoked := e.key("agent_1", daoguard.AlgHMACSHA256, daoguard.AgentScopes, "test", func(c *daoguard.Credential) { c.RevokedAt = now.Add(-time.Minute) })
	expired := e.key("agent_1", daoguard.AlgHMACSHA256, daoguard.AgentScopes, "test", func(c *daoguard.Credential) { c.ExpiresAt = now.Add(-time.Second) })
	rotated := e.key("agent_1", daoguard.AlgHMACSHA256, daoguard.AgentScopes, "test", func(c *daoguard.Credential) {
		c.ExpiresAt, c.ReplacedBy = now.Add(-time.Second), "dg_test_successor"
	})
	unknown := e.client(&client.HMACSigner{ID: auth.NewKeyID("test"), Secret: bytes.Repeat([]byte{7}, 32)})
	old, future := *agent, *agent
	old.Now = func() time.Time { return e.clock.Now().Add(-61 * time.Second) }
	future.Now = func() time.Time { return e.clock.Now().Add(6 * time.Second) }
	humanKey := human.Signer.(*client.Ed25519Signer)

	// An action awaiting approval, for the approval cases.
	pending, err := submitter.Submit(context.Background(), daoguard.Intent{Account: "ops", Kind: "transfer", Asset: "USDC", To: "0x1111111111111111111111111111111111111111", Amount: "5000"}, "")
	if err != nil || pending.State != "awaiting_approval" {
		t.Fatalf("setup: %v %+v", err, pending)
	}
	approve := "/v1/actions/" + pending.ID + "/approve"
	ok := intentJSON("10")

	params := func(s client.Signer) string {
		return fmt.Sprintf(`;created=%d;nonce="%s";keyid="%s";alg="%s"`, now.Unix(), auth.NewNonce(now), s.KeyID(), s.Alg())
	}
	for _, tc := range []struct {
		name    string
		req     func() *http.Request
		status  int
		code    daoguard.Code
		audited bool
	}{
		{"ErrMissingSignature", func() *http.Request {
			r := signed(t, agent, "POST", "/v1/actions", ok)
			r.Header.Del("Signature")
			r.Header.Del("Signature-Input")
			return r
		}, 401, daoguard.CodeSignatureMissing, true},
		{"ErrFlippedSignatureByte", func() *http.Request {
			r := signed(t, agent, "POST", "/v1/actions", ok)
			sig, _ := auth.ParseSignature(r.Header, "sig1")
			sig.Value[3] ^= 0x01
			r.Header.Set("Signature", "sig1=:"+b64(sig.Value)+":")
			return r
		}, 401, daoguard.CodeSignatureInvalid, true},
		{"ErrBodySwappedAfterSigning", func() *http.Request {
			r := signed(t, agent, "POST", "/v1/actions", ok)
			swapped := intentJSON("99")
			r.Body, r.ContentLength = ioNop(swapped), int64(len(swapped))
			return r
		}, 401, daoguard.CodeDigestMismatch, true},
		{"ErrQueryDiffersFromSigned", func() *http.Request {
			r := signed(t, agent, "GET", "/v1/actions?state=queued", nil)
			r.URL.RawQuery = "state=denied"
			return r
		}, 401, daoguard.CodeSignatureInvalid, true},
		{"ErrTargetSmuggledIntoQuery", func() *http.Request {
			// Signed for another action; the approval is redirected to
			// pending by a target whose query looks like a URL.
			r := signed(t, human, "POST", "/v1/actions/act_other/approve", []byte(`{}`))
			u, _ := url.Parse(e.srv.URL + approve + "?://x/v1/actions/act_other/approve")
			r.URL = u
			return r
		}, 401, daoguard.CodeSignatureInvalid, true},
		{"ErrCreatedTooOld", func() *http.Request { return signed(t, &old, "POST", "/v1/actions", ok) }, 401, daoguard.CodeSignatureExpired, true},
		{"ErrCreatedInFuture", func() *http.Request { return signed(t, &future, "POST", "/v1/actions", ok) }, 401, daoguard.CodeSignatureFuture, true},
		{"ErrUnknownKey", func() *http.Request { return signed(t, unknown, "POST", "/v1/actions", ok) }, 401, daoguard.CodeUnknownKey, true},
		{"ErrRevokedKey", func() *http.Request { return signed(t, revoked, "POST", "/v1/actions", ok) }, 401, daoguard.CodeKeyRevoked, true},
		{"ErrExpiredKey", func() *http.Request { return signed(t, expired, "POST", "/v1/actions", ok) }, 401, daoguard.CodeKeyExpired, true},
		{"ErrKeyPastRotationOverlap", func() *http.Request { return signed(t, rotated, "POST", "/v1/actions", ok) }, 401, daoguard.CodeKeyExpired, true},
		{"ErrAlgDiffersFromKey", func() *http.Request {
			// The human's ed25519 key id, with an hmac signature claiming alg hmac-sha256.
			forger := &client.HMACSigner{ID: humanKey.ID, Secret: bytes.Repeat([]byte{1}, 32)}
			return signed(t, e.client(forger), "GET", "/v1/actions", nil)
		}, 401, daoguard.CodeAlgMismatch, true},
		{"ErrContentDigestNotCovered", func() *http.Request {
			r, _ := http.NewRequest("POST", e.srv.URL+"/v1/actions", bytes.NewReader(ok))
			r.Header.Set("Content-Type", "application/json")
			signCustom(t, r, ok, agent.Signer, `("@method" "@path" "@query")`+params(agent.Signer)+`;tag="daoguard"`)
			return r
		}, 401, daoguard.CodeSignatureInvalid, true},
		{"ErrTagMissing", func() *http.Request {
			r, _ := http.NewRequest("POST", e.srv.URL+"/v1/actions", bytes.NewReader(ok))
			r.Header.Set("Content-Type", "application/json")
			signCustom(t, r, ok, agent.Signer, `("@method" "@path" "@query" "content-digest")`+params(agent.Signer))
			return r
		}, 401, daoguard.CodeSignatureInvalid, true},
		{"ErrWrongEnvironment", func() *http.Request { return signed(t, live, "POST", "/v1/actions", ok) }, 403, daoguard.CodeWrongEnvironment, true},
		{"ErrMissingScope", func() *http.Request { return signed(t, agent, "GET", "/v1/audit/entries", nil) }, 403, daoguard.CodeMissingScope, true},
		{"ErrAgentApproving", func() *http.Request { return signed(t, agent, "POST", approve, []byte(`{}`)) }, 403, daoguard.CodeMissingScope, true},
		{"ErrHMACCredentialApproving", func() *http.Request { return signed(t, humanHMAC, "POST", approve, []byte(`{}`)) }, 403, daoguard.CodeEd25519Required, true},
		{"ErrOversizedBody", func() *http.Request {
			big := []byte(`{"account":"ops","rationale":"` + strings.Repeat("a", 70<<10) + `"}`)
			return signed(t, agent, "POST", "/v1/actions", big)
		}, 413, daoguard.CodeBodyTooLarge, false},
		{"ErrMalformedJSON", func() *http.Request { return signed(t, agent, "POST", "/v1/actions", []byte(`{"account":`)) }, 400, daoguard.CodeInvalid, false},
		{"ErrUnknownField", func() *http.Request {
			return signed(t, agent, "POST", "/v1/actions", []byte(`{"account":"ops","kind":"transfer","asset":"USDC","to":"0x1111111111111111111111111111111111111111","amount":"1","admin":true}`))
		}, 400, daoguard.CodeInvalid, false},
		{"ErrFloatAmount", func() *http.Request {
			return signed(t, agent, "POST", "/v1/actions", []byte(`{"account":"ops","kind":"transfer","asset":"USDC","to":"0x1111111111111111111111111111111111111111","amount":1.5}`))
		}, 400, daoguard.CodeInvalidAmount, false},
		{"ErrNotJSONMediaType", func() *http.Request {
			r := signed(t, agent, "POST", "/v1/actions", ok)
			r.Header.Set("Content-Type", "text/plain")
			return r
		}, 415, daoguard.CodeUnsupportedMedia, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.req()
			before, size := e.snapshot(), e.auditSize()
			status, p, h := send(t, r)
			if status != tc.status || p.Code != string(tc.code) || p.Status != status {
				t.Fatalf("got %d %s (%s), want %d %s", status, p.Code, p.Detail, tc.status, tc.code)
			}
			if after := e.snapshot(); after != before {
				t.Fatalf("the store changed:\nbefore %s\nafter  %s", before, after)
			}
			es := e.auditFrom(size)
			if !tc.audited {
				if len(es) != 0 {
					t.Fatalf("unexpected audit entries %+v", es)
				}
				return
			}
			if len(es) != 1 || !strings.HasPrefix(es[0].Event, "auth.") {
				t.Fatalf("want one auth audit entry, got %+v", es)
			}
			var d map[string]string
			json.Unmarshal(es[0].Detail, &d)
			if d["reason"] != string(tc.code) || d["source"] == "" {
				t.Fatalf("audit detail %v", d)
			}
			// Only a refusal that the key's owner must have sent speaks
			// for them; a swapped body or a bad signature is anyone's.
			if tc.code == daoguard.CodeDigestMismatch || tc.code == daoguard.CodeSignatureInvalid {
				if es[0].ActorKind != "anonymous" || es[0].Event != "auth.failed" {
					t.Fatalf("%s attributed: %s by %s (%s)", tc.code, es[0].Event, es[0].ActorID, es[0].ActorKind)
				}
			}
			if status == 401 && tc.code == daoguard.CodeSignatureMissing && h.Get("Accept-Signature") == "" {
				t.Fatal("no Accept-Signature on a missing signature")
			}
		})
	}

	t.Run("ErrReplayedNonce", func(t *testing.T) {
		r := signed(t, agent, "POST", "/v1/actions", ok)
		body := ok
		if status, p, _ := send(t, r); status != 201 {
			t.Fatalf("first send: %d %+v", status, p)
		}
		before, size := e.snapshot(), e.auditSize()
		r2, _ := http.NewRequest("POST", r.URL.String(), bytes.NewReader(body))
		r2.Header = r.Header.Clone()
		status, p, _ := send(t, r2)
		if status != 401 || p.Code != string(daoguard.CodeNonceReused) {
			t.Fatalf("replay: %d %s", status, p.Code)
		}
		if e.snapshot() != before {
			t.Fatal("the replay changed the store")
		}
		if es := e.auditFrom(size); len(es) != 1 || !strings.Contains(string(es[0].Detail), "NONCE_REUSED") {
			t.Fatalf("replay audit: %+v", es)
		}
	})

	t.Run("ErrRefusedWhilePausedThenReplayedAfterResume", func(t *testing.T) {
		// A submission refused by the kill switch must not pass when the
		// captured request is replayed after humans resume.
		if _, err := human.Pause(context.Background(), "drill"); err != nil {
			t.Fatal(err)
		}
		r := signed(t, agent, "POST", "/v1/actions", intentJSON("7"))
		if status, p, _ := send(t, r); status != 423 || p.Code != string(daoguard.CodeOrgPaused) {
			t.Fatalf("while paused: %d %s", status, p.Code)
		}
		if _, err := human.Resume(context.Background(), "drill over"); err != nil {
			t.Fatal(err)
		}
		if res, err := human3.Resume(context.Background(), "agreed"); err != nil || res.Paused {
			t.Fatalf("two humans' resume: %v %+v", err, res)
		}
		before := e.snapshot()
		r2, _ := http.NewRequest("POST", r.URL.String(), ioNop(intentJSON("7")))
		r2.Header = r.Header.Clone()
		if status, p, _ := send(t, r2); status != 401 || p.Code != string(daoguard.CodeNonceReused) {
			t.Fatalf("replay after resume: %d %s", status, p.Code)
		}
		if e.snapshot() != before {
			t.Fatal("the replay changed the store")
		}
	})

	t.Run("ErrServiceRefusalIsAudited", func(t *testing.T) {
		// The submitter approving its own action: FORBIDDEN from the service.
		approver := e.key("human_3", daoguard.AlgEd25519, humanScopes, "test", nil)
		size := e.auditSize()
		_, err := approver.Approve(context.Background(), pending.ID, "", "")
		if daoguard.ErrorCode(err) != daoguard.CodeForbidden {
			t.Fatalf("self-approval: %v", err)
		}
		es := e.auditFrom(size)
		if len(es) != 1 || es[0].Event != "auth.denied" || es[0].ActorID != "human_3" || !strings.Contains(string(es[0].Detail), `"reason":"FORBIDDEN"`) {
			t.Fatalf("audit: %+v", es)
		}
	})

	t.Run("OK_SignedRequestsPass", func(t *testing.T) {
		a, err := agent.Submit(context.Background(), daoguard.Intent{Account: "ops", Kind: "transfer", Asset: "USDC", To: "0x1111111111111111111111111111111111111111", Amount: "1"}, "k1")
		if err != nil || a.State != "queued" || a.Decoded.Amount.String() != "1000000" {
			t.Fatalf("agent submit: %v %+v", err, a)
		}
		if _, err := human.Approve(context.Background(), pending.ID, "", "ok"); err != nil {
			t.Fatalf("human approve: %v", err)
		}
	})
}

func b64(b []byte) string { return base64Std.EncodeToString(b) }

// countingBody counts what the gateway's handler read of a request body.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestBodyReadOnlyAfterAuthentication: the policy route takes bodies of up
// to 5 MiB, but nobody without a valid key can make the gateway read one.
// The signature covers Content-Digest, so it is verified before the body
// is read: a streamed (chunked) body of almost 5 MiB under a forged
// signature, or signed by a key without the scope, is refused with none of
// it read.
func TestBodyReadOnlyAfterAuthentication(t *testing.T) {
	e := newSQLiteEnv(t)
	var read atomic.Int64
	h := (&httpapi.Server{Store: e.store, Service: e.svc, Auth: e.authn, Logger: slog.New(slog.DiscardHandler)}).Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = countingBody{r.Body, &read}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	at := func(cl *client.Client) *client.Client { c := *cl; c.URL = srv.URL; return &c }
	human := at(e.key("human_1", daoguard.AlgEd25519, humanScopes, "test", nil))
	agent := at(e.key("agent_1", daoguard.AlgEd25519, daoguard.AgentScopes, "test", nil))
	forger := at(e.client(&client.Ed25519Signer{ID: human.Signer.KeyID(), Key: ed25519.NewKeyFromSeed(make([]byte, 32))}))
	big := bytes.Repeat([]byte(" "), httpapi.MaxPolicyBody-1024)
	for _, tc := range []struct {
		name string
		cl   *client.Client
		code daoguard.Code
	}{
		{"forged signature", forger, daoguard.CodeSignatureInvalid},
		{"key without the scope", agent, daoguard.CodeMissingScope},
	} {
		t.Run(tc.name, func(t *testing.T) {
			read.Store(0)
			// Signed for a small body; a large one of unknown length is sent.
			r := signed(t, tc.cl, "POST", "/v1/policy", []byte(`{}`))
			r.Body, r.ContentLength = ioNop(big), -1
			status, p, _ := send(t, r)
			if status != 401 && status != 403 || p.Code != string(tc.code) {
				t.Fatalf("got %d %s, want %s", status, p.Code, tc.code)
			}
			if n := read.Load(); n != 0 {
				t.Fatalf("the gateway read %d bytes of a refused body", n)
			}
		})
	}
	// An authentic request's body is read, and checked against its digest.
	read.Store(0)
	r := signed(t, human, "POST", "/v1/policy", []byte(`{"document":"x"}`))
	r.Body = ioNop([]byte(`{"document":"y"}`))
	if status, p, _ := send(t, r); status != 401 || p.Code != string(daoguard.CodeDigestMismatch) {
		t.Fatalf("swapped body: %d %s", status, p.Code)
	}
	if read.Load() == 0 {
		t.Fatal("the authentic request's body was not read")
	}
}
