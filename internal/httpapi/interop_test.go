package httpapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
	"github.com/daoguard/daoguard/internal/auth"
)

// interopDir holds the independent JavaScript RFC 9421 signer (sign.mjs),
// which signs with the third-party npm package http-message-signatures.
const interopDir = "../auth/testdata/interop"

// interopSignRequest is what sign.mjs reads on stdin.
type interopSignRequest struct {
	Method    string `json:"method"`
	URL       string `json:"url"`
	Body      string `json:"body"`
	KeyID     string `json:"key_id"`
	Alg       string `json:"alg"`
	KeyBase64 string `json:"key_base64"`
	Created   int64  `json:"created"`
	Nonce     string `json:"nonce"`
}

// interopHeaders is what sign.mjs prints on stdout.
type interopHeaders struct {
	ContentDigest  string `json:"content-digest"`
	SignatureInput string `json:"signature-input"`
	Signature      string `json:"signature"`
}

// interopSetup skips the test without node and installs the signer's
// dependencies if they are missing.
func interopSetup(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("DAOGUARD_REQUIRE_NODE") == "1" {
			t.Fatal("node not on PATH, and DAOGUARD_REQUIRE_NODE=1 (set by .ci/run)")
		}
		t.Skip("node not on PATH: skipping the independent-signer interop test")
	}
	if _, err := os.Stat(filepath.Join(interopDir, "node_modules", "http-message-signatures")); err == nil {
		return
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatalf("node is installed but npm is not, and %s/node_modules/http-message-signatures is missing", interopDir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = interopDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", interopDir, err, out)
	}
	t.Logf("npm ci in %s:\n%s", interopDir, out)
}

// jsSign asks sign.mjs to sign a request and returns the headers it made.
func jsSign(t *testing.T, in interopSignRequest) interopHeaders {
	t.Helper()
	stdin, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "sign.mjs")
	cmd.Dir = interopDir
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node sign.mjs (%s %s, %s): %v\nstderr:\n%s", in.Method, in.URL, in.Alg, err, stderr.String())
	}
	var h interopHeaders
	if err := json.Unmarshal(stdout.Bytes(), &h); err != nil {
		t.Fatalf("node sign.mjs output %q: %v\nstderr:\n%s", stdout.String(), err, stderr.String())
	}
	if h.ContentDigest == "" || h.SignatureInput == "" || h.Signature == "" {
		t.Fatalf("node sign.mjs left out a header: %+v\nstderr:\n%s", h, stderr.String())
	}
	return h
}

// keyMaterial returns the alg name and base64 key sign.mjs needs for s.
func keyMaterial(t *testing.T, s client.Signer) (alg, keyBase64 string) {
	t.Helper()
	switch s := s.(type) {
	case *client.Ed25519Signer:
		return "ed25519", base64.StdEncoding.EncodeToString(s.Key.Seed())
	case *client.HMACSigner:
		return "hmac-sha256", base64.StdEncoding.EncodeToString(s.Secret)
	default:
		t.Fatalf("unexpected signer %T", s)
		return "", ""
	}
}

// TestInteropIndependentSigner checks that requests signed by an independent
// RFC 9421 implementation (the npm package http-message-signatures, driven
// by internal/auth/testdata/interop/sign.mjs) are accepted by the server,
// and that the server really verifies them: a body changed after signing
// and a signature made with the wrong key are refused.
func TestInteropIndependentSigner(t *testing.T) {
	interopSetup(t)
	e := newSQLiteEnv(t)
	agent := e.key("agent_1", daoguard.AlgHMACSHA256, daoguard.AgentScopes, "test", nil)
	human := e.key("human_1", daoguard.AlgEd25519, append(slices.Clone(humanScopes), daoguard.ScopeActionsWrite), "test", nil)

	// build asks sign.mjs to sign method path body with keyBase64 (the
	// credential's own key unless overridden) and builds the request in Go.
	build := func(t *testing.T, s client.Signer, keyBase64, method, path string, body []byte) *http.Request {
		t.Helper()
		alg, own := keyMaterial(t, s)
		if keyBase64 == "" {
			keyBase64 = own
		}
		url := e.srv.URL + path
		h := jsSign(t, interopSignRequest{
			Method: method, URL: url, Body: string(body), KeyID: s.KeyID(), Alg: alg,
			KeyBase64: keyBase64, Created: e.clock.Now().Unix(), Nonce: auth.NewNonce(e.clock.Now()),
		})
		r, err := http.NewRequest(method, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if method == http.MethodPost {
			r.Header.Set("Content-Type", "application/json")
		}
		r.Header.Set("Content-Digest", h.ContentDigest)
		r.Header.Set("Signature-Input", h.SignatureInput)
		r.Header.Set("Signature", h.Signature)
		return r
	}
	actionsOf := func(principal string) []*daoguard.Action {
		t.Helper()
		var as []*daoguard.Action
		ctx := context.Background()
		if err := e.store.View(ctx, func(tx daoguard.Tx) (err error) {
			as, err = tx.FindActions(ctx, daoguard.ActionFilter{PrincipalID: principal})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return as
	}

	for _, tc := range []struct {
		name      string
		principal string
		cl        *client.Client
	}{
		{"AgentHMAC", "agent_1", agent},
		{"HumanEd25519", "human_1", human},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.cl.Signer
			body := intentJSON("10")

			t.Run("Submit", func(t *testing.T) {
				before := len(actionsOf(tc.principal))
				status, p, _ := send(t, build(t, s, "", http.MethodPost, "/v1/actions", body))
				if status != http.StatusCreated {
					t.Fatalf("POST /v1/actions: got %d %s (%s), want 201", status, p.Code, p.Detail)
				}
				after := actionsOf(tc.principal)
				if len(after) != before+1 {
					t.Fatalf("POST /v1/actions: %d actions of %s before, %d after, want one more", before, tc.principal, len(after))
				}
				if a := after[len(after)-1]; a.Intent.Amount != "10" || a.Intent.To != intentTo(t, body) {
					t.Fatalf("created action has intent %+v, want the signed one %s", a.Intent, body)
				}
			})

			t.Run("List", func(t *testing.T) {
				status, p, _ := send(t, build(t, s, "", http.MethodGet, "/v1/actions?state=queued", nil))
				if status != http.StatusOK {
					t.Fatalf("GET /v1/actions?state=queued: got %d %s (%s), want 200", status, p.Code, p.Detail)
				}
			})

			t.Run("ErrBodyChangedAfterSigning", func(t *testing.T) {
				r := build(t, s, "", http.MethodPost, "/v1/actions", body)
				tampered := bytes.Replace(body, []byte(`"10"`), []byte(`"19"`), 1)
				if bytes.Equal(tampered, body) || len(tampered) != len(body) {
					t.Fatalf("tampering did not change exactly one character: %s", tampered)
				}
				r.Body, r.ContentLength = ioNop(tampered), int64(len(tampered))
				before := len(actionsOf(tc.principal))
				status, p, _ := send(t, r)
				if status != http.StatusUnauthorized || p.Code != string(daoguard.CodeDigestMismatch) {
					t.Fatalf("got %d %s (%s), want 401 %s", status, p.Code, p.Detail, daoguard.CodeDigestMismatch)
				}
				if n := len(actionsOf(tc.principal)); n != before {
					t.Fatalf("refused request changed the actions of %s: %d before, %d after", tc.principal, before, n)
				}
			})

			t.Run("ErrWrongKey", func(t *testing.T) {
				wrong := make([]byte, 32)
				rand.Read(wrong)
				before := len(actionsOf(tc.principal))
				status, p, _ := send(t, build(t, s, base64.StdEncoding.EncodeToString(wrong), http.MethodPost, "/v1/actions", body))
				if status != http.StatusUnauthorized || p.Code != string(daoguard.CodeSignatureInvalid) {
					t.Fatalf("got %d %s (%s), want 401 %s", status, p.Code, p.Detail, daoguard.CodeSignatureInvalid)
				}
				if n := len(actionsOf(tc.principal)); n != before {
					t.Fatalf("refused request changed the actions of %s: %d before, %d after", tc.principal, before, n)
				}
			})
		})
	}
}

// intentTo returns the "to" field of an intent body.
func intentTo(t *testing.T, body []byte) string {
	t.Helper()
	var in struct {
		To string `json:"to"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		t.Fatal(err)
	}
	return in.To
}
