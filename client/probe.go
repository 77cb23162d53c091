package client

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/auth"
	"github.com/daoguard/daoguard/internal/probe"
)

// Alignment probes, from the agent's side. daoguard POSTs each scenario
// of a suite to the agent's decision endpoint as a Question signed with
// daoguard's probe key (GET /v1/probes/key, daoguard probe key); the agent
// answers 200 with an Answer.
type (
	Question = probe.Question
	Answer   = probe.Answer
	ProbeKey = probe.Key
)

// ProbeVerifier checks that a request comes from daoguard: signed with
// the key given (the probe key for questions; the alert key, `daoguard
// probe key --alerts`, for alerts), fresh, and not seen before (replays
// are refused).
type ProbeVerifier struct {
	KeyID string
	Key   ed25519.PublicKey
	// Agent, if set, is this agent's id: ProbeHandler refuses a question
	// meant for another agent (one replayed here from another agent's
	// endpoint within the signature's minute).
	Agent  string
	Window time.Duration // oldest accepted signature; default 60s
	Now    func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time // nonce → when it may be forgotten
}

// NewProbeVerifier returns a verifier for k.
func NewProbeVerifier(k ProbeKey) (*ProbeVerifier, error) {
	pub, err := base64.StdEncoding.DecodeString(k.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize || k.Alg != daoguard.AlgEd25519 || k.KeyID == "" {
		return nil, &daoguard.Error{Code: daoguard.CodeConfig, Message: "the probe key must be a key_id and the base64 of a 32-byte ed25519 public key"}
	}
	return &ProbeVerifier{KeyID: k.KeyID, Key: pub}, nil
}

// Verify checks r, whose body is body. Errors are *daoguard.Error with the
// codes of auth.VerifyOutgoing, and NONCE_REUSED.
func (v *ProbeVerifier) Verify(r *http.Request, body []byte) error {
	now, window := time.Now(), v.Window
	if v.Now != nil {
		now = v.Now()
	}
	if window <= 0 {
		window = auth.DefaultWindow
	}
	sig, err := auth.VerifyOutgoing(r, body, v.KeyID, v.Key, window, now)
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seen == nil {
		v.seen = map[string]time.Time{}
	}
	for n, until := range v.seen { // a nonce older than the window cannot come back: its signature expired
		if now.After(until) {
			delete(v.seen, n)
		}
	}
	if _, dup := v.seen[sig.Nonce]; dup {
		return &daoguard.Error{Code: daoguard.CodeNonceReused, Message: "this question was already received"}
	}
	v.seen[sig.Nonce] = time.Unix(sig.Created, 0).Add(window + auth.DefaultSkew)
	return nil
}

// ProbeHandler is an agent's decision endpoint: it verifies each question
// and answers with decide's answer. Unsigned, forged, stale or replayed
// questions, and questions for another agent (with v.Agent set), get 401
// and never reach decide.
func ProbeHandler(v *ProbeVerifier, decide func(context.Context, Question) (Answer, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if err := v.Verify(r, body); err != nil {
			http.Error(w, string(daoguard.ErrorCode(err)), http.StatusUnauthorized)
			return
		}
		var q Question
		if err := json.Unmarshal(body, &q); err != nil {
			http.Error(w, "not a question", http.StatusBadRequest)
			return
		}
		if v.Agent != "" && q.Agent != v.Agent {
			http.Error(w, "the question is for another agent", http.StatusUnauthorized)
			return
		}
		a, err := decide(r.Context(), q)
		if err != nil {
			var de *daoguard.Error
			if errors.As(err, &de) {
				http.Error(w, string(de.Code), http.StatusInternalServerError)
				return
			}
			http.Error(w, "decision failed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(a)
	})
}

// RiskState is GET /v1/principals/{id}/risk.
type RiskState struct {
	Agent    *daoguard.Principal `json:"agent"`
	Findings []struct {
		Rule   string `json:"rule"`
		Detail string `json:"detail"`
		Trip   bool   `json:"trip"`
	} `json:"findings"`
	Recent struct {
		Actions  int `json:"actions"`
		Flagged  int `json:"flagged"`
		Denied   int `json:"denied"`
		Escalate int `json:"escalated"`
	} `json:"recent"`
	LastProbe json.RawMessage       `json:"last_probe,omitempty"`
	History   []daoguard.AuditEntry `json:"history"`
}

// ProbeRun is one run of a suite against an agent
// (POST /v1/principals/{id}/probes).
type ProbeRun struct {
	Agent string `json:"agent"`
	probe.Result
	Autonomy daoguard.Autonomy `json:"autonomy"`
	Lowered  bool              `json:"lowered"`
	LogIndex uint64            `json:"log_index"`
}

// ProbeRuns is the answer of POST /v1/principals/{id}/probes.
type ProbeRuns struct {
	Runs []ProbeRun `json:"runs"`
	// Running: the agent was still answering when the server answered
	// (202); each run is recorded when it ends (Risk shows it).
	Running bool   `json:"running,omitempty"`
	Detail  string `json:"detail,omitempty"`
	// Error: some suites could not be run; Runs holds those that were.
	Error string `json:"error,omitempty"`
}

// RunProbes puts the agent's configured probe suites to it now.
func (c *Client) RunProbes(ctx context.Context, agentID string) (*ProbeRuns, error) {
	var out ProbeRuns
	if err := c.Do(ctx, http.MethodPost, "/v1/principals/"+url.PathEscape(agentID)+"/probes", nil, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Risk returns an agent's risk state and history.
func (c *Client) Risk(ctx context.Context, agentID string) (*RiskState, error) {
	var out RiskState
	return &out, c.Do(ctx, http.MethodGet, "/v1/principals/"+url.PathEscape(agentID)+"/risk", nil, nil, nil, &out)
}

// ProbeKey returns daoguard's probe signing key.
func (c *Client) ProbeKey(ctx context.Context) (*ProbeKey, error) {
	var out ProbeKey
	return &out, c.Do(ctx, http.MethodGet, "/v1/probes/key", nil, nil, nil, &out)
}
