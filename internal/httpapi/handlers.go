package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
	"github.com/daoguard/daoguard/internal/audit"
	"github.com/daoguard/daoguard/internal/screen"
	"github.com/daoguard/daoguard/internal/service"
)

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func viewAction(a *daoguard.Action) client.Action {
	d := client.Decoded{Decoded: a.Decoded}
	if len(a.Decoded.Data) > 0 {
		d.Data = "0x" + hex.EncodeToString(a.Decoded.Data)
	}
	d.Decoded.Data = nil
	v := client.Action{ID: a.ID, State: a.State.String(), PrincipalID: a.PrincipalID, Intent: a.Intent, Decoded: d,
		Decision: client.Decision{Verdict: a.Decision.Verdict.String(), Tier: a.Decision.Tier, Reasons: a.Decision.Reasons,
			RequiredApprovals: a.Decision.RequiredApprovals, ApproverRole: a.Decision.ApproverRole,
			TimelockSeconds: int64(a.Decision.Timelock / time.Second), PolicyVersion: a.Decision.PolicyVersion, Inputs: a.Decision.Inputs},
		ExpiresAt: timeOrNil(a.ExpiresAt), Result: a.Result, Created: a.Created, Updated: a.Updated}
	if a.State == daoguard.StateQueued || a.State == daoguard.StateExecuting || a.State == daoguard.StateExecuted {
		v.Decision.TimelockUntil = timeOrNil(a.RunnableAt)
	}
	if v.Decision.Reasons == nil {
		v.Decision.Reasons = []daoguard.Reason{}
	}
	if a.Logged != nil {
		v.LogIndex = &a.Logged.Seq
	}
	return v
}

func (s *Server) submit(c *call) error { return s.submitIntent(c, *c.in.(*daoguard.Intent)) }

// submitIntent runs one intent through the pipeline for a signed request.
func (s *Server) submitIntent(c *call, in daoguard.Intent) error {
	ctx := c.r.Context()
	var nonce *daoguard.Nonce
	if s.SkipVerification == "" {
		// The nonce commits with the action (one durable commit, not two).
		nonce = c.id.Nonce()
	}
	if len(c.r.Header.Values("Idempotency-Key")) > 1 {
		return daoguard.FieldError(daoguard.CodeInvalid, "Idempotency-Key", "send one Idempotency-Key header line")
	}
	a, err := s.Service.SubmitSigned(ctx, nonce, c.principal(), c.r.Header.Get("Idempotency-Key"), in)
	if daoguard.ErrorCode(err) == daoguard.CodeNonceReused {
		s.Auth.Deny(c.r, c.id, err)
	}
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusCreated, viewAction(a))
	return nil
}

// evaluate is the dry run: the decision a submission would get now,
// without recording an action or spending any window.
func (s *Server) evaluate(c *call) error {
	in := c.in.(*daoguard.Intent)
	ctx := c.r.Context()
	var nonce *daoguard.Nonce
	if s.SkipVerification == "" {
		nonce = c.id.Nonce()
	}
	a, err := s.Service.Evaluate(ctx, nonce, c.principal(), *in)
	if daoguard.ErrorCode(err) == daoguard.CodeNonceReused {
		s.Auth.Deny(c.r, c.id, err)
	}
	if err != nil {
		return err
	}
	v := viewAction(a)
	writeJSON(c.w, http.StatusOK, map[string]any{"decoded": v.Decoded, "decision": v.Decision})
	return nil
}

// proposePolicy submits a policy change: an action of kind policy.
func (s *Server) proposePolicy(c *call) error {
	req := c.in.(*client.PolicyRequest)
	return s.submitIntent(c, daoguard.Intent{Kind: daoguard.KindPolicy.String(), Policy: req.Policy, Rationale: req.Rationale})
}

func (s *Server) getPolicy(c *call) error {
	pv, err := s.Service.CurrentPolicy(c.r.Context(), c.id.Principal.OrgID)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, client.Policy{Version: pv.Version, Digest: pv.Digest, Source: pv.Source, ActionID: pv.ActionID, By: pv.By, Created: pv.Created})
	return nil
}

func (s *Server) policyBounds(c *call) error {
	bs, err := s.Service.PolicyBounds(c.r.Context(), c.principal())
	if err != nil {
		return err
	}
	if bs == nil {
		bs = []daoguard.Bound{}
	}
	writeJSON(c.w, http.StatusOK, client.Bounds{Bounds: bs})
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
	out := make([]client.Action, len(as))
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
		v.Timeline = append(v.Timeline, client.TimelineEntry{Seq: e.Seq, Time: e.Time, Event: e.Event, ActorID: e.ActorID, ActorKind: e.ActorKind, Detail: e.Detail})
	}
	if len(tl) > 0 {
		v.LogIndex = &tl[len(tl)-1].Seq
	}
	writeJSON(c.w, http.StatusOK, v)
	return nil
}

func (s *Server) vote(c *call, run func(req client.VoteRequest) (*daoguard.Action, error)) error {
	req := *c.in.(*client.VoteRequest)
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
	return s.vote(c, func(req client.VoteRequest) (*daoguard.Action, error) {
		return s.Service.Approve(c.r.Context(), c.principal(), c.r.PathValue("id"), req.Signature, req.Comment)
	})
}

func (s *Server) reject(c *call) error {
	return s.vote(c, func(req client.VoteRequest) (*daoguard.Action, error) {
		return s.Service.Reject(c.r.Context(), c.principal(), c.r.PathValue("id"), req.Comment)
	})
}

func (s *Server) veto(c *call) error {
	return s.vote(c, func(req client.VoteRequest) (*daoguard.Action, error) {
		return s.Service.Veto(c.r.Context(), c.principal(), c.r.PathValue("id"), req.Comment)
	})
}

func (s *Server) cancel(c *call) error {
	a, err := s.Service.Cancel(c.r.Context(), c.principal(), c.r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, viewAction(a))
	return nil
}

func (s *Server) pause(c *call) error {
	req := *c.in.(*client.ControlRequest)
	org, err := s.Service.Pause(c.r.Context(), c.principal(), req.Reason)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, org)
	return nil
}

func (s *Server) resume(c *call) error {
	req := *c.in.(*client.ControlRequest)
	org, a, err := s.Service.Resume(c.r.Context(), c.principal(), req.Reason)
	if err != nil {
		return err
	}
	out := client.ControlResponse{Organisation: *org}
	if a != nil {
		v := viewAction(a)
		out.Action = &v
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

func (s *Server) setAutonomy(c *call) error {
	req := *c.in.(*client.AutonomyRequest)
	p, a, err := s.Service.SetAutonomy(c.r.Context(), c.principal(), c.r.PathValue("id"), req.Level, req.Reason)
	if err != nil {
		return err
	}
	out := client.AutonomyResponse{Principal: *p}
	if a != nil {
		v := viewAction(a)
		out.Action = &v
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

func (s *Server) createPrincipal(c *call) error {
	req := *c.in.(*client.PrincipalRequest)
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

func viewKey(k *daoguard.Credential) client.Key {
	v := client.Key{KeyID: k.KeyID, PrincipalID: k.PrincipalID, Alg: k.Alg, Scopes: k.Scopes, Environment: k.Environment, Created: k.Created,
		ExpiresAt: timeOrNil(k.ExpiresAt), RevokedAt: timeOrNil(k.RevokedAt), ReplacedBy: k.ReplacedBy, LastUsed: timeOrNil(k.LastUsed)}
	if k.PublicKey != nil {
		v.PublicKey = base64.StdEncoding.EncodeToString(k.PublicKey)
	}
	return v
}

func newKeyResponse(nk *service.NewKey) client.NewKey {
	out := client.NewKey{Key: viewKey(nk.Credential)}
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
	req := *c.in.(*client.KeyRequest)
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

func (s *Server) rotateKey(c *call) error {
	req := *c.in.(*client.RotateRequest)
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

func (s *Server) revokeKey(c *call) error {
	req := *c.in.(*client.RevokeRequest)
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
	out := make([]client.Key, len(ks))
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

// auditCheckpoint answers the latest signed checkpoint as the C2SP text
// itself, what tlog tooling reads.
func (s *Server) auditCheckpoint(c *call) error {
	msg, err := s.Service.Checkpoint(c.r.Context(), c.principal())
	if err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	c.w.Header().Set("Cache-Control", "no-store")
	_, err = c.w.Write(msg)
	return err
}

func (s *Server) auditProof(c *call) error {
	raw := c.r.PathValue("index")
	index, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || index < 0 || strconv.FormatInt(index, 10) != raw { // one spelling per entry: no sign, no leading zeros

		return daoguard.FieldError(daoguard.CodeInvalid, "index", "an entry index is a non-negative integer")
	}
	p, err := s.Service.AuditProof(c.r.Context(), c.principal(), index)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, client.AuditProof{Index: index, Entry: p.Entry, Leaf: audit.Leaf(&p.Entry), Checkpoint: string(p.Checkpoint), Proof: proofBytes(p.Proof)})
	return nil
}

func (s *Server) auditConsistency(c *call) error {
	q := c.r.URL.Query()
	from, err := strconv.ParseInt(q.Get("from"), 10, 64)
	if err != nil || from < 1 {
		return daoguard.FieldError(daoguard.CodeInvalid, "from", "from is the size of an earlier checkpoint: a positive integer")
	}
	var to int64
	if v := q.Get("to"); v != "" {
		if to, err = strconv.ParseInt(v, 10, 64); err != nil || to < from {
			return daoguard.FieldError(daoguard.CodeInvalid, "to", "to is the size of a later checkpoint: at least from")
		}
	}
	p, err := s.Service.AuditConsistency(c.r.Context(), c.principal(), from, to)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, client.AuditConsistency{From: p.From, To: p.To, Checkpoint: string(p.Checkpoint), Proof: proofBytes(p.Proof)})
	return nil
}

func proofBytes[H ~[32]byte](hs []H) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

// screen screens a text (an agent may check a proposal it is about to act
// on); the same as daoguard screen.
func (s *Server) screen(c *call) error {
	req := c.in.(*client.ScreenRequest)
	if req.Text == "" {
		return daoguard.FieldError(daoguard.CodeInvalid, "text", "text is required")
	}
	writeJSON(c.w, http.StatusOK, ScreenResult(screen.Text(req.Text)))
	return nil
}

// ScreenResult is a screening result as the API shows it.
func ScreenResult(r screen.Result) client.ScreenResult {
	out := client.ScreenResult{Flagged: r.Flagged, Score: r.Score, Labels: r.Labels, Spans: make([]client.ScreenSpan, len(r.Spans))}
	for i, sp := range r.Spans {
		out.Spans[i] = client.ScreenSpan(sp)
	}
	return out
}

func (s *Server) risk(c *call) error {
	st, err := s.Service.RiskState(c.r.Context(), c.principal(), c.r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, st)
	return nil
}

// ProbeWait is how long POST /v1/principals/{id}/probes waits for the
// runs before it answers 202: an agent that takes seconds per answer must
// not make the request outlive the server's write timeout. The runs go on
// (bounded by ProbeTimeout) and are recorded either way.
var (
	ProbeWait    = 20 * time.Second
	ProbeTimeout = 10 * time.Minute
)

func (s *Server) runProbes(c *call) error {
	type outcome struct {
		runs []*service.ProbeRun
		err  error
	}
	done := make(chan outcome, 1)
	// Detached from the request: a client that gives up does not cut a
	// run short, which would leave it unrecorded.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.r.Context()), ProbeTimeout)
	go func() {
		defer cancel()
		runs, err := s.Service.RunProbes(ctx, c.principal(), c.r.PathValue("id"))
		done <- outcome{runs, err}
	}()
	select {
	case o := <-done:
		if o.err != nil && len(o.runs) == 0 {
			return o.err
		}
		out := map[string]any{"runs": o.runs}
		if o.err != nil { // some suites ran and were recorded, others could not run
			out["error"] = daoguard.ErrorMessage(o.err)
		}
		writeJSON(c.w, http.StatusOK, out)
	case <-time.After(ProbeWait):
		writeJSON(c.w, http.StatusAccepted, map[string]any{"runs": []any{}, "running": true,
			"detail": "the agent is still answering; each run is recorded when it ends: daoguard risk AGENT shows it"})
	}
	return nil
}

func (s *Server) probeKey(c *call) error {
	if s.Service.Prober == nil {
		return daoguard.Errorf(daoguard.CodeUnavailable, "alignment probes are not configured")
	}
	writeJSON(c.w, http.StatusOK, s.Service.Prober.Key)
	return nil
}
