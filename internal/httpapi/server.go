// Package httpapi is daoguard's HTTP edge: routing, request authentication
// (through internal/auth), JSON decoding, problem+json errors and the one
// table that turns error codes into statuses. Handlers call the service;
// they hold no business rules.
package httpapi

import (
	"context"
	_ "embed"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
	"github.com/daoguard/daoguard/internal/auth"
	"github.com/daoguard/daoguard/internal/service"
)

// DefaultMaxBody bounds a request body. An intent is a few hundred bytes;
// calldata for a large MultiSend batch stays well below this.
const DefaultMaxBody = 64 << 10

// MaxScreenBody bounds the body of POST /v1/screen: a long governance
// proposal in a JSON string.
const MaxScreenBody = 1 << 20

// MaxPolicyBody bounds the body of POST /v1/policy: a policy document (at
// most 4 MiB, like the parser's own limit) in a JSON string.
const MaxPolicyBody = 5 << 20

// Server serves the HTTP API.
type Server struct {
	Store   daoguard.Store
	Service *service.Service
	Auth    *auth.Authenticator
	Logger  *slog.Logger
	MaxBody int64

	// SkipVerification serves /v1 without authentication, as the principal
	// named here. It exists only so that a benchmark can measure what
	// verification costs; cmd never sets it.
	SkipVerification string
}

// route is one endpoint: what it needs of the caller, its request body,
// and its handler.
type route struct {
	method, path string // path in net/http pattern form, which OpenAPI shares
	need         auth.Need
	signed       bool
	handle       func(*call) error
	// in returns a pointer to the request body type; nil: no body allowed.
	in       func() any
	optional bool // the body may be empty
	// ownNonce: the handler records the nonce in its own transaction
	// (auth.Authenticator.UseNonce) instead of the edge doing it first.
	ownNonce bool
}

// call is one authenticated request on its way through a handler.
type call struct {
	w    http.ResponseWriter
	r    *http.Request
	body []byte
	in   any // the decoded body, if the route takes one
	id   *auth.Identity
}

func (c *call) principal() string { return c.id.Principal.ID }

func (s *Server) routes() []route {
	read := func(scope string) auth.Need { return auth.Need{Scope: scope} }
	strong := func(scope string) auth.Need { return auth.Need{Scope: scope, Ed25519: true} }
	return []route{
		{"GET", "/healthz", auth.Need{}, false, s.healthz, nil, false, false},
		{"GET", "/openapi.json", auth.Need{}, false, s.openapi, nil, false, false},
		{"POST", "/v1/actions", read(daoguard.ScopeActionsWrite), true, s.submit, body[daoguard.Intent], false, true},
		{"GET", "/v1/actions", read(daoguard.ScopeActionsRead), true, s.listActions, nil, false, false},
		{"GET", "/v1/actions/{id}", read(daoguard.ScopeActionsRead), true, s.getAction, nil, false, false},
		{"POST", "/v1/actions/{id}/approve", strong(daoguard.ScopeApprovalsWrite), true, s.approve, body[client.VoteRequest], true, false},
		{"POST", "/v1/actions/{id}/reject", strong(daoguard.ScopeApprovalsWrite), true, s.reject, body[client.VoteRequest], true, false},
		{"POST", "/v1/actions/{id}/veto", strong(daoguard.ScopeApprovalsWrite), true, s.veto, body[client.VoteRequest], true, false},
		{"POST", "/v1/actions/{id}/cancel", read(daoguard.ScopeActionsWrite), true, s.cancel, nil, false, false},
		{"POST", "/v1/controls/pause", strong(daoguard.ScopeControlsWrite), true, s.pause, body[client.ControlRequest], true, false},
		{"POST", "/v1/controls/resume", strong(daoguard.ScopeControlsWrite), true, s.resume, body[client.ControlRequest], true, false},
		{"POST", "/v1/principals/{id}/autonomy", strong(daoguard.ScopeControlsWrite), true, s.setAutonomy, body[client.AutonomyRequest], false, false},
		{"GET", "/v1/principals", read(daoguard.ScopeAdmin), true, s.listPrincipals, nil, false, false},
		{"POST", "/v1/principals", strong(daoguard.ScopeAdmin), true, s.createPrincipal, body[client.PrincipalRequest], false, false},
		{"GET", "/v1/keys", read(daoguard.ScopeAdmin), true, s.listKeys, nil, false, false},
		{"POST", "/v1/keys", strong(daoguard.ScopeAdmin), true, s.createKey, body[client.KeyRequest], false, false},
		{"POST", "/v1/keys/{id}/rotate", strong(daoguard.ScopeAdmin), true, s.rotateKey, body[client.RotateRequest], true, false},
		// No scope here: any key may revoke itself (a compromised agent's
		// operator can always pull it); revoking another key needs admin
		// and ed25519, checked in the handler.
		{"POST", "/v1/keys/{id}/revoke", auth.Need{}, true, s.revokeKey, body[client.RevokeRequest], true, false},
		{"GET", "/v1/audit/entries", read(daoguard.ScopeAuditRead), true, s.auditEntries, nil, false, false},
		{"GET", "/v1/audit/checkpoint", read(daoguard.ScopeAuditRead), true, s.auditCheckpoint, nil, false, false},
		{"GET", "/v1/audit/proof/{index}", read(daoguard.ScopeAuditRead), true, s.auditProof, nil, false, false},
		{"GET", "/v1/audit/consistency", read(daoguard.ScopeAuditRead), true, s.auditConsistency, nil, false, false},
		// Risk controls: an agent's risk state and history (humans, or the
		// agent itself), alignment probes run now (humans: a failed run
		// lowers the agent), and the key probe questions are signed with.
		{"GET", "/v1/principals/{id}/risk", read(daoguard.ScopeAuditRead), true, s.risk, nil, false, false},
		{"POST", "/v1/principals/{id}/probes", strong(daoguard.ScopeControlsWrite), true, s.runProbes, nil, false, false},
		{"GET", "/v1/probes/key", read(daoguard.ScopeActionsRead), true, s.probeKey, nil, false, false},
		// Screening is a pure function of the text: nothing is recorded.
		{"POST", "/v1/screen", read(daoguard.ScopeActionsRead), true, s.screen, body[client.ScreenRequest], false, false},
		// The dry run: agents may ask what would pass (it is audited).
		{"POST", "/v1/policy/evaluate", read(daoguard.ScopeActionsRead), true, s.evaluate, body[daoguard.Intent], false, true},
		// The policy in force is for humans and auditors: an agent that
		// reads the exact limits can aim just under them.
		{"GET", "/v1/policy", read(daoguard.ScopeAuditRead), true, s.getPolicy, nil, false, false},
		// Bounds tell exactly how far below each limit an agent can go:
		// like the policy itself, they are for audit:read holders.
		{"GET", "/v1/policy/bounds", read(daoguard.ScopeAuditRead), true, s.policyBounds, nil, false, false},
		// A policy change moves control: ed25519 and controls:write; it
		// becomes an action the council approves.
		{"POST", "/v1/policy", strong(daoguard.ScopeControlsWrite), true, s.proposePolicy, body[client.PolicyRequest], false, true},
	}
}

// body returns a constructor of a request body of type T.
func body[T any]() any { return new(T) }

// Handler returns the routed handler.
func (s *Server) Handler() http.Handler {
	if s.MaxBody == 0 {
		s.MaxBody = DefaultMaxBody
	}
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.Handle(rt.method+" "+rt.path, s.serve(rt))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, s.Logger, daoguard.Errorf(daoguard.CodeNotFound, "no route for %s %s", r.Method, clip(r.URL.Path)))
	})
	return mux
}

// serve wraps a handler with the edge's fixed sequence: source limit,
// bounded body, media type, authentication and authorization, then the
// handler; any error becomes one problem+json answer.
func (s *Server) serve(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{w: w, r: r}
		if err := s.prepare(c, rt); err != nil {
			s.problem(w, r, err)
			return
		}
		if err := rt.handle(c); err != nil {
			// The service's authorization refusals (an agent suspended, a
			// submitter approving their own action, not a human...) are
			// audited like the edge's.
			if c.id != nil && c.id.Credential.KeyID != "" && StatusOf(daoguard.ErrorCode(err)) == http.StatusForbidden {
				s.Auth.Deny(r, c.id, err)
			}
			s.problem(w, r, err)
		}
	})
}

func (s *Server) prepare(c *call, rt route) error {
	if !rt.signed {
		return nil
	}
	r := c.r
	limit := s.MaxBody
	if rt.method == "POST" && rt.path == "/v1/policy" {
		// A policy with a large allowlist is far bigger than an intent.
		limit = max(limit, MaxPolicyBody)
	}
	if rt.method == "POST" && rt.path == "/v1/screen" {
		limit = max(limit, MaxScreenBody) // a proposal's body, not an intent
	}
	if r.ContentLength > limit { // refused whole, before any work
		return bodyTooLarge(limit)
	}
	read := func() ([]byte, error) {
		body, err := readBody(c.w, r, limit)
		if err == nil && len(body) > 0 && !isJSON(r.Header.Get("Content-Type")) {
			err = &daoguard.Error{Code: daoguard.CodeUnsupportedMedia, Message: "the body must be application/json"}
		}
		return body, err
	}
	if s.SkipVerification != "" {
		body, err := read()
		if err != nil {
			return err
		}
		c.body = body
		p, err := s.principalFor(r.Context(), s.SkipVerification)
		if err != nil {
			return err
		}
		c.id = &auth.Identity{Principal: p, Credential: &daoguard.Credential{Alg: daoguard.AlgEd25519, Scopes: daoguard.Scopes}}
		return s.decodeInto(c, rt)
	}
	// The body is read only once the signature and the key's scope check
	// out: see Authenticate.
	var err error
	c.id, c.body, err = s.Auth.Authenticate(r.Context(), r, read, rt.need)
	if err != nil {
		return err
	}
	// Every audit entry the request causes names its key and digest.
	c.r = r.WithContext(daoguard.WithRequest(r.Context(), daoguard.Request{KeyID: c.id.Credential.KeyID, Digest: c.id.RequestDigest}))
	setRateHeaders(c.w.Header(), c.id.Limit)
	if err := s.decodeInto(c, rt); err != nil {
		return err
	}
	// Authentic, authorized and well-formed: only now is the nonce used up.
	if rt.ownNonce {
		return nil
	}
	return s.Auth.Consume(r.Context(), r, c.id)
}

func (s *Server) decodeInto(c *call, rt route) error {
	if rt.in == nil {
		if len(c.body) > 0 {
			return daoguard.Errorf(daoguard.CodeInvalid, "this endpoint takes no body")
		}
		return nil
	}
	c.in = rt.in()
	return decode(c.body, c.in, rt.optional)
}

func (s *Server) principalFor(ctx context.Context, id string) (p *daoguard.Principal, err error) {
	err = s.Store.View(ctx, func(tx daoguard.Tx) error { p, err = tx.Principal(ctx, id); return err })
	return p, err
}

// readBody reads at most max bytes: a larger body is refused whole, before
// any of it is parsed or verified.
func bodyTooLarge(max int64) error {
	return &daoguard.Error{Code: daoguard.CodeBodyTooLarge, Message: "the request body exceeds " + strconv.FormatInt(max, 10) + " bytes"}
}

func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	tooLarge := bodyTooLarge(max)
	if r.ContentLength > max {
		return nil, tooLarge
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, tooLarge
	} else if err != nil {
		return nil, daoguard.Errorf(daoguard.CodeInvalid, "the request body could not be read")
	}
	return b, nil
}

func isJSON(ct string) bool {
	return ct == "application/json" || (len(ct) > 16 && ct[:16] == "application/json" && (ct[16] == ';' || ct[16] == ' '))
}

// problem writes err, with Retry-After and RateLimit headers for 429.
func (s *Server) problem(w http.ResponseWriter, r *http.Request, err error) {
	var le *auth.LimitError
	if errors.As(err, &le) {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(le.RetryAfter, time.Second).Seconds()))))
		if le.State.Policy != "" {
			setRateHeaders(w.Header(), le.State)
		}
	}
	if daoguard.ErrorCode(err) == daoguard.CodeSignatureMissing || daoguard.ErrorCode(err) == daoguard.CodeSignatureInvalid {
		// RFC 9421 §5.1: tell the client what signature is wanted.
		w.Header().Set("Accept-Signature", `sig1=("@method" "@path" "@query" "content-digest");tag="daoguard"`)
	}
	writeProblem(w, r, s.Logger, err)
}

// setRateHeaders writes the IETF RateLimit fields
// (draft-ietf-httpapi-ratelimit-headers).
func setRateHeaders(h http.Header, st auth.State) {
	if st.Policy == "" {
		return
	}
	h.Set("RateLimit-Policy", st.Policy)
	h.Set("RateLimit", strconv.Quote(st.Name)+";r="+strconv.Itoa(st.Remaining)+";t="+strconv.Itoa(int(math.Ceil(st.Reset.Seconds()))))
}

// healthz answers 200 only if the store answers a read: a gateway that
// cannot reach its store must be taken out of a load balancer's rotation.
func (s *Server) healthz(c *call) error {
	ctx, cancel := context.WithTimeout(c.r.Context(), 2*time.Second)
	defer cancel()
	err := s.Store.View(ctx, func(tx daoguard.Tx) error { _, err := tx.AuditSize(ctx); return err })
	if err != nil {
		s.Logger.Error("health check: store unreachable", "err", err)
		return &daoguard.Error{Code: daoguard.CodeUnavailable, Message: "the store is unreachable"}
	}
	writeJSON(c.w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

//go:embed openapi.json
var openapiDoc []byte

func (s *Server) openapi(c *call) error {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Write(openapiDoc)
	return nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
