package httpapi

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/service"
)

// ActionView is an action as the API shows it (API.md).
type ActionView struct {
	ID          string               `json:"id"`
	State       string               `json:"state"`
	PrincipalID string               `json:"principal_id"`
	Intent      daoguard.Intent      `json:"intent"`
	Decoded     DecodedView          `json:"decoded"`
	Decision    DecisionView         `json:"decision"`
	ExpiresAt   *time.Time           `json:"expires_at"`
	Result      *daoguard.ExecResult `json:"result,omitempty"`
	Approvals   []daoguard.Approval  `json:"approvals,omitempty"`
	Timeline    []TimelineEntry      `json:"timeline,omitempty"`
	Created     time.Time            `json:"created"`
	Updated     time.Time            `json:"updated"`
}

// DecodedView is the decoded action with calldata in hex.
type DecodedView struct {
	daoguard.Decoded
	Data string `json:"data,omitempty"`
}

// DecisionView is the decision with the timelock as a time.
type DecisionView struct {
	Verdict           string            `json:"verdict"`
	Tier              string            `json:"tier,omitempty"`
	Reasons           []daoguard.Reason `json:"reasons"`
	RequiredApprovals int               `json:"required_approvals"`
	ApproverRole      string            `json:"approver_role,omitempty"`
	TimelockSeconds   int64             `json:"timelock_seconds"`
	TimelockUntil     *time.Time        `json:"timelock_until"`
	PolicyVersion     string            `json:"policy_version,omitempty"`
}

// TimelineEntry is one audit entry of an action.
type TimelineEntry struct {
	Seq       uint64          `json:"seq"`
	Time      time.Time       `json:"time"`
	Event     string          `json:"event"`
	ActorID   string          `json:"actor_id"`
	ActorKind string          `json:"actor_kind"`
	Detail    json.RawMessage `json:"detail,omitempty"`
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func viewAction(a *daoguard.Action) ActionView {
	d := DecodedView{Decoded: a.Decoded}
	if len(a.Decoded.Data) > 0 {
		d.Data = "0x" + hex.EncodeToString(a.Decoded.Data)
	}
	d.Decoded.Data = nil
	v := ActionView{ID: a.ID, State: a.State.String(), PrincipalID: a.PrincipalID, Intent: a.Intent, Decoded: d,
		Decision: DecisionView{Verdict: a.Decision.Verdict.String(), Tier: a.Decision.Tier, Reasons: a.Decision.Reasons,
			RequiredApprovals: a.Decision.RequiredApprovals, ApproverRole: a.Decision.ApproverRole,
			TimelockSeconds: int64(a.Decision.Timelock / time.Second), PolicyVersion: a.Decision.PolicyVersion},
		ExpiresAt: timeOrNil(a.ExpiresAt), Result: a.Result, Created: a.Created, Updated: a.Updated}
	if a.State == daoguard.StateQueued || a.State == daoguard.StateExecuting || a.State == daoguard.StateExecuted {
		v.Decision.TimelockUntil = timeOrNil(a.RunnableAt)
	}
	if v.Decision.Reasons == nil {
		v.Decision.Reasons = []daoguard.Reason{}
	}
	return v
}

func (s *Server) submit(c *call) error {
	var in daoguard.Intent
	if err := decode(c.body, &in, false); err != nil {
		return err
	}
	a, err := s.Service.Submit(c.r.Context(), c.principal(), c.r.Header.Get("Idempotency-Key"), in)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusCreated, viewAction(a))
	return nil
}

func (s *Server) listActions(c *call) error {
	q := c.r.URL.Query()
	f := daoguard.ActionFilter{AfterID: q.Get("after")}
	for _, v := range q["state"] {
		for _, name := range strings.Split(v, ",") {
			st, err := daoguard.ParseState(name)
			if err != nil {
				return daoguard.FieldError(daoguard.CodeInvalid, "state", "unknown state %q", clip(name))
			}
			f.States = append(f.States, st)
		}
	}
	n, err := limitParam(q.Get("limit"), daoguard.MaxFindLimit)
	if err != nil {
		return err
	}
	f.Limit = n
	as, err := s.Service.Actions(c.r.Context(), c.principal(), f)
	if err != nil {
		return err
	}
	out := make([]ActionView, len(as))
	for i, a := range as {
		out[i] = viewAction(a)
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"actions": out})
	return nil
}

func limitParam(s string, most int) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > most {
		return 0, daoguard.FieldError(daoguard.CodeInvalid, "limit", "limit must be an integer from 1 to %d", most)
	}
	return n, nil
}

func (s *Server) getAction(c *call) error {
	ctx := c.r.Context()
	a, aps, err := s.Service.Action(ctx, c.principal(), c.r.PathValue("id"))
	if err != nil {
		return err
	}
	tl, err := s.Service.Timeline(ctx, c.principal(), a.ID)
	if err != nil {
		return err
	}
	v := viewAction(a)
	v.Approvals = aps
	for _, e := range tl {
		v.Timeline = append(v.Timeline, TimelineEntry{Seq: e.Seq, Time: e.Time, Event: e.Event, ActorID: e.ActorID, ActorKind: e.ActorKind, Detail: e.Detail})
	}
	writeJSON(c.w, http.StatusOK, v)
	return nil
}

// VoteRequest is the body of approve, reject and veto.
type VoteRequest struct {
	Signature string `json:"signature,omitempty"` // approve: an EIP-712 signature over the bound transaction
	Comment   string `json:"comment,omitempty"`
}

func (s *Server) vote(c *call, run func(req VoteRequest) (*daoguard.Action, error)) error {
	var req VoteRequest
	if err := decode(c.body, &req, true); err != nil {
		return err
	}
	if len(req.Comment) > 2000 {
		return daoguard.FieldError(daoguard.CodeInvalid, "comment", "a comment is at most 2000 bytes")
	}
	a, err := run(req)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, viewAction(a))
	return nil
}

func (s *Server) approve(c *call) error {
	return s.vote(c, func(req VoteRequest) (*daoguard.Action, error) {
		return s.Service.Approve(c.r.Context(), c.principal(), c.r.PathValue("id"), req.Signature, req.Comment)
	})
}

func (s *Server) reject(c *call) error {
	return s.vote(c, func(req VoteRequest) (*daoguard.Action, error) {
		return s.Service.Reject(c.r.Context(), c.principal(), c.r.PathValue("id"), req.Comment)
	})
}

func (s *Server) veto(c *call) error {
	return s.vote(c, func(req VoteRequest) (*daoguard.Action, error) {
		return s.Service.Veto(c.r.Context(), c.principal(), c.r.PathValue("id"), req.Comment)
	})
}

func (s *Server) cancel(c *call) error {
	return s.vote(c, func(VoteRequest) (*daoguard.Action, error) {
		return s.Service.Cancel(c.r.Context(), c.principal(), c.r.PathValue("id"))
	})
}

// ControlRequest is the body of pause and resume.
type ControlRequest struct {
	Reason string `json:"reason,omitempty"`
}

func (s *Server) control(c *call, pause bool) error {
	var req ControlRequest
	if err := decode(c.body, &req, true); err != nil {
		return err
	}
	run := s.Service.Resume
	if pause {
		run = s.Service.Pause
	}
	org, err := run(c.r.Context(), c.principal(), req.Reason)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, org)
	return nil
}

func (s *Server) pause(c *call) error  { return s.control(c, true) }
func (s *Server) resume(c *call) error { return s.control(c, false) }

// AutonomyRequest sets an agent's autonomy.
type AutonomyRequest struct {
	Level  daoguard.Autonomy `json:"level"`
	Reason string            `json:"reason,omitempty"`
}

func (s *Server) setAutonomy(c *call) error {
	var req AutonomyRequest
	if err := decode(c.body, &req, false); err != nil {
		return err
	}
	p, err := s.Service.SetAutonomy(c.r.Context(), c.principal(), c.r.PathValue("id"), req.Level, req.Reason)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, p)
	return nil
}

// PrincipalRequest creates a principal.
type PrincipalRequest struct {
	Kind  daoguard.PrincipalKind `json:"kind"`
	Name  string                 `json:"name"`
	Roles []string               `json:"roles,omitempty"`
}

func (s *Server) createPrincipal(c *call) error {
	var req PrincipalRequest
	if err := decode(c.body, &req, false); err != nil {
		return err
	}
	p, err := s.Service.CreatePrincipal(c.r.Context(), c.principal(), req.Kind, req.Name, req.Roles)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusCreated, p)
	return nil
}

func (s *Server) listPrincipals(c *call) error {
	ps, err := s.Service.Principals(c.r.Context(), c.principal())
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"principals": ps})
	return nil
}

// KeyView is a credential's public part.
type KeyView struct {
	KeyID       string     `json:"key_id"`
	PrincipalID string     `json:"principal_id"`
	Alg         string     `json:"alg"`
	Scopes      []string   `json:"scopes"`
	Environment string     `json:"environment"`
	PublicKey   string     `json:"public_key,omitempty"` // ed25519, base64
	Created     time.Time  `json:"created"`
	ExpiresAt   *time.Time `json:"expires_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	ReplacedBy  string     `json:"replaced_by,omitempty"`
	LastUsed    *time.Time `json:"last_used"`
}

func viewKey(k *daoguard.Credential) KeyView {
	v := KeyView{KeyID: k.KeyID, PrincipalID: k.PrincipalID, Alg: k.Alg, Scopes: k.Scopes, Environment: k.Environment, Created: k.Created,
		ExpiresAt: timeOrNil(k.ExpiresAt), RevokedAt: timeOrNil(k.RevokedAt), ReplacedBy: k.ReplacedBy, LastUsed: timeOrNil(k.LastUsed)}
	if k.PublicKey != nil {
		v.PublicKey = base64.StdEncoding.EncodeToString(k.PublicKey)
	}
	return v
}

// KeyRequest creates a key.
type KeyRequest struct {
	Principal string    `json:"principal"`
	Alg       string    `json:"alg"`
	Scopes    []string  `json:"scopes,omitempty"`
	PublicKey string    `json:"public_key,omitempty"` // ed25519, base64: generate the key pair yourself
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// NewKeyResponse holds the key and, once and only here, its secret.
type NewKeyResponse struct {
	Key        KeyView `json:"key"`
	Secret     string  `json:"secret,omitempty"`      // hmac-sha256, base64
	PrivateKey string  `json:"private_key,omitempty"` // ed25519 seed, base64, when the server generated it
}

func newKeyResponse(nk *service.NewKey) NewKeyResponse {
	out := NewKeyResponse{Key: viewKey(nk.Credential)}
	if nk.Secret != nil {
		out.Secret = base64.StdEncoding.EncodeToString(nk.Secret)
	}
	if nk.Seed != nil {
		out.PrivateKey = base64.StdEncoding.EncodeToString(nk.Seed)
	}
	return out
}

func publicKeyParam(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, daoguard.FieldError(daoguard.CodeInvalid, "public_key", "public_key must be base64")
	}
	return b, nil
}

func (s *Server) createKey(c *call) error {
	var req KeyRequest
	if err := decode(c.body, &req, false); err != nil {
		return err
	}
	pub, err := publicKeyParam(req.PublicKey)
	if err != nil {
		return err
	}
	nk, err := s.Service.CreateKey(c.r.Context(), c.principal(), service.KeyRequest{PrincipalID: req.Principal, Alg: req.Alg, Scopes: req.Scopes, PublicKey: pub, ExpiresAt: req.ExpiresAt})
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusCreated, newKeyResponse(nk))
	return nil
}

// RotateRequest rotates a key.
type RotateRequest struct {
	Overlap   string `json:"overlap,omitempty"` // how long the old key keeps working, e.g. "24h"; default 0
	PublicKey string `json:"public_key,omitempty"`
}

func (s *Server) rotateKey(c *call) error {
	var req RotateRequest
	if err := decode(c.body, &req, true); err != nil {
		return err
	}
	var overlap time.Duration
	if req.Overlap != "" {
		d, err := time.ParseDuration(req.Overlap)
		if err != nil {
			return daoguard.FieldError(daoguard.CodeInvalid, "overlap", "overlap is a duration such as \"24h\"")
		}
		overlap = d
	}
	pub, err := publicKeyParam(req.PublicKey)
	if err != nil {
		return err
	}
	nk, err := s.Service.RotateKey(c.r.Context(), c.principal(), c.r.PathValue("id"), overlap, pub)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusCreated, newKeyResponse(nk))
	return nil
}

// RevokeRequest revokes a key.
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"`
}

func (s *Server) revokeKey(c *call) error {
	var req RevokeRequest
	if err := decode(c.body, &req, true); err != nil {
		return err
	}
	target := c.r.PathValue("id")
	if s.SkipVerification == "" && target != c.id.Credential.KeyID {
		// Another key: this is administration.
		var err error
		switch {
		case !c.id.Credential.HasScope(daoguard.ScopeAdmin):
			err = &daoguard.Error{Code: daoguard.CodeMissingScope, Message: "revoking another key needs the admin scope"}
		case c.id.Credential.Alg != daoguard.AlgEd25519:
			err = &daoguard.Error{Code: daoguard.CodeEd25519Required, Message: "revoking another key needs an ed25519 key"}
		}
		if err != nil {
			s.Auth.Deny(c.r, c.id, err)
			return err
		}
	}
	k, err := s.Service.RevokeKey(c.r.Context(), c.principal(), target, req.Reason)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, viewKey(k))
	return nil
}

func (s *Server) listKeys(c *call) error {
	ks, err := s.Service.Keys(c.r.Context(), c.principal())
	if err != nil {
		return err
	}
	out := make([]KeyView, len(ks))
	for i, k := range ks {
		out[i] = viewKey(k)
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"keys": out})
	return nil
}

func (s *Server) auditEntries(c *call) error {
	q := c.r.URL.Query()
	var from uint64
	if v := q.Get("from"); v != "" {
		n, err := strconv.ParseUint(v, 10, 63)
		if err != nil {
			return daoguard.FieldError(daoguard.CodeInvalid, "from", "from must be a non-negative integer")
		}
		from = n
	}
	n, err := limitParam(q.Get("limit"), daoguard.MaxFindLimit)
	if err != nil {
		return err
	}
	if n == 0 {
		n = daoguard.DefaultFindLimit
	}
	es, err := s.Service.AuditEntries(c.r.Context(), c.principal(), from, n)
	if err != nil {
		return err
	}
	if es == nil {
		es = []daoguard.AuditEntry{}
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"entries": es})
	return nil
}
