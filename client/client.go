// Package client is the Go SDK for daoguard's API: what an agent or an
// operator tool imports. It reads a credential file (API.md), signs every
// request with RFC 9421 as the server requires, and turns problem+json
// answers into *daoguard.Error values whose Code callers branch on.
//
//	c, err := client.Load("credentials/agent.json")
//	a, err := c.Submit(ctx, daoguard.Intent{Account: "ops", Kind: "transfer", Asset: "USDC", To: "0x…", Amount: "25.00"}, "invoice-881")
package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/auth"
)

// CredentialFile is the JSON file a client signs requests with (API.md).
type CredentialFile struct {
	URL        string `json:"url"`
	KeyID      string `json:"key_id"`
	Alg        string `json:"alg"`
	PrivateKey string `json:"private_key,omitempty"` // ed25519: base64 of the 32-byte seed
	Secret     string `json:"secret,omitempty"`      // hmac-sha256: base64 of the shared secret
}

// Client calls one daoguard deployment with one credential.
type Client struct {
	URL    string
	Signer auth.Signer
	HTTP   *http.Client
	Now    func() time.Time
}

// New returns a client for the API at baseURL that signs with s.
func New(baseURL string, s auth.Signer) *Client {
	hc := &http.Client{
		Timeout: 30 * time.Second,
		// Never follow a redirect: it would carry the signed headers (and
		// the body's intent) to wherever the answer points.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Client{URL: strings.TrimRight(baseURL, "/"), Signer: s, HTTP: hc, Now: time.Now}
}

// Load reads a credential file. It refuses a file that others can read:
// the file holds a private key or a shared secret.
func Load(path string) (*Client, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, &daoguard.Error{Code: daoguard.CodeConfig, Message: fmt.Sprintf("cannot read credential file: %v", err)}
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, &daoguard.Error{Code: daoguard.CodeConfig, Message: fmt.Sprintf("credential file %s is readable by others (mode %v)", path, fi.Mode().Perm()), Hint: "chmod 600 " + path}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cf CredentialFile
	if err := json.Unmarshal(b, &cf); err != nil {
		return nil, &daoguard.Error{Code: daoguard.CodeConfig, Message: fmt.Sprintf("credential file %s is not valid JSON", path)}
	}
	return FromFile(cf)
}

// FromFile returns a client for a parsed credential file.
func FromFile(cf CredentialFile) (*Client, error) {
	bad := func(what string) error {
		return &daoguard.Error{Code: daoguard.CodeConfig, Message: "credential file: " + what}
	}
	if _, err := auth.ParseKeyID(cf.KeyID); err != nil {
		return nil, bad("key_id is not a daoguard key id")
	}
	u, err := url.Parse(cf.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, bad("url must be an http or https URL")
	}
	switch cf.Alg {
	case daoguard.AlgEd25519:
		seed, err := base64.StdEncoding.DecodeString(cf.PrivateKey)
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, bad("private_key must be the base64 of a 32-byte ed25519 seed")
		}
		return New(cf.URL, &auth.Ed25519Signer{ID: cf.KeyID, Key: ed25519.NewKeyFromSeed(seed)}), nil
	case daoguard.AlgHMACSHA256:
		secret, err := base64.StdEncoding.DecodeString(cf.Secret)
		if err != nil || len(secret) < 32 {
			return nil, bad("secret must be the base64 of at least 32 bytes")
		}
		return New(cf.URL, &auth.HMACSigner{ID: cf.KeyID, Secret: secret}), nil
	}
	return nil, bad("alg must be ed25519 or hmac-sha256")
}

// Do sends one signed request: in (if not nil) as the JSON body, and the
// JSON answer decoded into out (if not nil; a *[]byte gets the answer's
// bytes as they are). A problem answer becomes a
// *daoguard.Error.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, header http.Header, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	u := c.URL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if err := auth.SignRequest(req, body, c.Signer, c.Now()); err != nil {
		return err
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return &daoguard.Error{Code: daoguard.CodeUnavailable, Message: fmt.Sprintf("cannot reach daoguard at %s: %v", c.URL, err)}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return &daoguard.Error{Code: daoguard.CodeUnavailable, Message: "reading the answer: " + err.Error()}
	}
	if res.StatusCode >= 300 {
		return problem(res, b)
	}
	if raw, ok := out.(*[]byte); ok { // a text answer (a checkpoint), as is
		*raw = b
		return nil
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decoding the answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}

// problem turns an error answer into a *daoguard.Error.
func problem(res *http.Response, b []byte) error {
	var p struct {
		Code, Detail, Hint, Field string
		Errors                    []string
	}
	if json.Unmarshal(b, &p) != nil || p.Code == "" {
		return &daoguard.Error{Code: daoguard.CodeUnavailable, Message: fmt.Sprintf("unexpected answer %s", res.Status)}
	}
	e := &daoguard.Error{Code: daoguard.Code(p.Code), Message: p.Detail, Hint: p.Hint, Field: p.Field, Details: p.Errors}
	if ra := res.Header.Get("Retry-After"); ra != "" && e.Hint == "" {
		if n, err := strconv.Atoi(ra); err == nil {
			e.Hint = fmt.Sprintf("retry after %d s", n)
		}
	}
	return e
}

// Submit proposes an intent. idemKey, if not empty, makes a retry return
// the first answer instead of submitting twice.
func (c *Client) Submit(ctx context.Context, in daoguard.Intent, idemKey string) (*Action, error) {
	var h http.Header
	if idemKey != "" {
		h = http.Header{"Idempotency-Key": {idemKey}}
	}
	var a Action
	return &a, c.Do(ctx, "POST", "/v1/actions", nil, h, in, &a)
}

// Action returns one action with its approvals and timeline.
func (c *Client) Action(ctx context.Context, id string) (*Action, error) {
	var a Action
	return &a, c.Do(ctx, "GET", "/v1/actions/"+url.PathEscape(id), nil, nil, nil, &a)
}

// Actions lists actions, optionally in the given states.
func (c *Client) Actions(ctx context.Context, states []string, after string, limit int) ([]Action, error) {
	q := url.Values{}
	if len(states) > 0 {
		q.Set("state", strings.Join(states, ","))
	}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct{ Actions []Action }
	return out.Actions, c.Do(ctx, "GET", "/v1/actions", q, nil, nil, &out)
}

func (c *Client) vote(ctx context.Context, id, verb string, req VoteRequest) (*Action, error) {
	var a Action
	return &a, c.Do(ctx, "POST", "/v1/actions/"+url.PathEscape(id)+"/"+verb, nil, nil, req, &a)
}

// Approve approves an action (ed25519 keys with approvals:write).
func (c *Client) Approve(ctx context.Context, id, signature, comment string) (*Action, error) {
	return c.vote(ctx, id, "approve", VoteRequest{Signature: signature, Comment: comment})
}

// Reject rejects an action.
func (c *Client) Reject(ctx context.Context, id, comment string) (*Action, error) {
	return c.vote(ctx, id, "reject", VoteRequest{Comment: comment})
}

// Veto stops a queued action during its timelock.
func (c *Client) Veto(ctx context.Context, id, comment string) (*Action, error) {
	return c.vote(ctx, id, "veto", VoteRequest{Comment: comment})
}

// Cancel withdraws an action.
func (c *Client) Cancel(ctx context.Context, id string) (*Action, error) {
	var a Action
	return &a, c.Do(ctx, "POST", "/v1/actions/"+url.PathEscape(id)+"/cancel", nil, nil, nil, &a)
}

// Pause turns the organisation's kill switch on.
func (c *Client) Pause(ctx context.Context, reason string) (*daoguard.Organisation, error) {
	var o daoguard.Organisation
	return &o, c.Do(ctx, "POST", "/v1/controls/pause", nil, nil, ControlRequest{Reason: reason}, &o)
}

// Resume asks to turn the kill switch off. Loosening needs k humans: the
// first asks (their request is their approval), each other one's Resume
// approves; the answer's Action says where the request stands, and the
// organisation is resumed when it is executed.
func (c *Client) Resume(ctx context.Context, reason string) (*ControlResponse, error) {
	var o ControlResponse
	return &o, c.Do(ctx, "POST", "/v1/controls/resume", nil, nil, ControlRequest{Reason: reason}, &o)
}

// CreatePrincipal adds an agent or a human (admin).
func (c *Client) CreatePrincipal(ctx context.Context, req PrincipalRequest) (*daoguard.Principal, error) {
	var p daoguard.Principal
	return &p, c.Do(ctx, "POST", "/v1/principals", nil, nil, req, &p)
}

// Principals lists the organisation's principals (admin).
func (c *Client) Principals(ctx context.Context) ([]daoguard.Principal, error) {
	var out struct{ Principals []daoguard.Principal }
	return out.Principals, c.Do(ctx, "GET", "/v1/principals", nil, nil, nil, &out)
}

// CreateKey issues a credential (admin). The answer holds the secret or
// private key, shown this once.
func (c *Client) CreateKey(ctx context.Context, req KeyRequest) (*NewKey, error) {
	var k NewKey
	return &k, c.Do(ctx, "POST", "/v1/keys", nil, nil, req, &k)
}

// Keys lists the organisation's credentials (admin).
func (c *Client) Keys(ctx context.Context) ([]Key, error) {
	var out struct{ Keys []Key }
	return out.Keys, c.Do(ctx, "GET", "/v1/keys", nil, nil, nil, &out)
}

// RotateKey issues a successor; the old key works until overlap ends.
func (c *Client) RotateKey(ctx context.Context, keyID string, req RotateRequest) (*NewKey, error) {
	var k NewKey
	return &k, c.Do(ctx, "POST", "/v1/keys/"+url.PathEscape(keyID)+"/rotate", nil, nil, req, &k)
}

// RevokeKey ends a key at once (admin, or the key itself).
func (c *Client) RevokeKey(ctx context.Context, keyID, reason string) (*Key, error) {
	var k Key
	return &k, c.Do(ctx, "POST", "/v1/keys/"+url.PathEscape(keyID)+"/revoke", nil, nil, RevokeRequest{Reason: reason}, &k)
}

// SetAutonomy changes an agent's autonomy (controls:write): lowering at
// once; raising, like Resume, once k humans asked for it.
func (c *Client) SetAutonomy(ctx context.Context, principalID string, level daoguard.Autonomy, reason string) (*AutonomyResponse, error) {
	var p AutonomyResponse
	return &p, c.Do(ctx, "POST", "/v1/principals/"+url.PathEscape(principalID)+"/autonomy", nil, nil, AutonomyRequest{Level: level, Reason: reason}, &p)
}

// AuditEntries reads the audit log from index from.
func (c *Client) AuditEntries(ctx context.Context, from uint64, limit int) ([]daoguard.AuditEntry, error) {
	q := url.Values{"from": {strconv.FormatUint(from, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct{ Entries []daoguard.AuditEntry }
	return out.Entries, c.Do(ctx, "GET", "/v1/audit/entries", q, nil, nil, &out)
}

// Signers: a Client signs with one of these (Load picks it from the file).
type (
	Signer        = auth.Signer
	Ed25519Signer = auth.Ed25519Signer
	HMACSigner    = auth.HMACSigner
)

// Evaluation is a dry run's answer.
type Evaluation struct {
	Decoded  Decoded  `json:"decoded"`
	Decision Decision `json:"decision"`
}

// Evaluate asks what the policy in force would decide on in now, without
// submitting it: nothing is recorded and no window budget is spent.
func (c *Client) Evaluate(ctx context.Context, in daoguard.Intent) (*Evaluation, error) {
	var ev Evaluation
	if err := c.Do(ctx, http.MethodPost, "/v1/policy/evaluate", nil, nil, in, &ev); err != nil {
		return nil, err
	}
	return &ev, nil
}

// ProposePolicy submits a new policy document as an action of kind policy.
func (c *Client) ProposePolicy(ctx context.Context, req PolicyRequest, idemKey string) (*Action, error) {
	var h http.Header
	if idemKey != "" {
		h = http.Header{"Idempotency-Key": {idemKey}}
	}
	var a Action
	if err := c.Do(ctx, http.MethodPost, "/v1/policy", nil, h, req, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// PolicyBounds returns what each agent (and all agents together) can move
// without a human under the policy in force (an agent: its own).
func (c *Client) PolicyBounds(ctx context.Context) ([]daoguard.Bound, error) {
	var b Bounds
	if err := c.Do(ctx, http.MethodGet, "/v1/policy/bounds", nil, nil, nil, &b); err != nil {
		return nil, err
	}
	return b.Bounds, nil
}

// Policy returns the policy in force.
func (c *Client) Policy(ctx context.Context) (*Policy, error) {
	var p Policy
	if err := c.Do(ctx, http.MethodGet, "/v1/policy", nil, nil, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Screen screens a text for prompt injection (POST /v1/screen).
func (c *Client) Screen(ctx context.Context, text string) (*ScreenResult, error) {
	var out ScreenResult
	return &out, c.Do(ctx, "POST", "/v1/screen", nil, nil, ScreenRequest{Text: text}, &out)
}
