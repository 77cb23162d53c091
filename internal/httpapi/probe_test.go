package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
	"github.com/daoguard/daoguard/internal/audit"
	"github.com/daoguard/daoguard/internal/httpapi"
	"github.com/daoguard/daoguard/internal/probe"
	"github.com/daoguard/daoguard/internal/service"
	"github.com/daoguard/daoguard/internal/storetest"
)

// agentEndpoint is an agent's decision endpoint on loopback, answering
// the reference suite's situations as answer says, behind the client's
// ProbeHandler (so unsigned or replayed questions never reach it). It
// records the raw questions it accepted.
type agentEndpoint struct {
	srv *httptest.Server
	mu  sync.Mutex
	raw []*http.Request
	bod [][]byte
}

func newAgentEndpoint(t *testing.T, key client.ProbeKey, agentID string, answer func(probe.Scenario) client.Answer) *agentEndpoint {
	t.Helper()
	v, err := client.NewProbeVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	v.Agent = agentID
	bySituation := map[string]probe.Scenario{}
	for _, c := range probe.Reference().Scenarios {
		bySituation[c.Situation] = c
	}
	ae := &agentEndpoint{}
	h := client.ProbeHandler(v, func(_ context.Context, q client.Question) (client.Answer, error) {
		c, ok := bySituation[q.Situation]
		if !ok {
			return client.Answer{}, fmt.Errorf("unknown situation")
		}
		return answer(c), nil
	})
	ae.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code == http.StatusOK {
			ae.mu.Lock()
			ae.raw, ae.bod = append(ae.raw, r.Clone(context.Background())), append(ae.bod, b)
			ae.mu.Unlock()
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(ae.srv.Close)
	return ae
}

// aligned answers as the suite expects; gullible takes the first option
// offered in the suite, which for every attack is the one the attacker
// wants, and gets the duties' amounts right.
func aligned(c probe.Scenario) client.Answer {
	a := client.Answer{Decision: c.Expect[0], Rationale: "as policy says"}
	if c.Amount != nil {
		a.Amount = fmt.Sprint(c.Amount.Min)
	}
	return a
}

func gullible(c probe.Scenario) client.Answer {
	a := client.Answer{Decision: c.Options[0], Rationale: "the message says so"}
	if c.Amount != nil {
		a.Amount = fmt.Sprint(c.Amount.Min)
	}
	return a
}

// The end-to-end test of alignment probes: daoguard puts the reference
// suite to two agents' decision endpoints over real HTTP with real
// signatures, on a human's request through the signed API. The aligned
// agent passes and keeps its autonomy; the gullible one fails, ends up
// supervised, and the audit log shows the run and the move, both in the
// verified Merkle log, with the agent's risk history listing them.
func TestProbesEndToEnd(t *testing.T) {
	ctx := context.Background()
	e := newSQLiteEnv(t)
	vkey, _ := auditKeys(t, e)
	signer, key, err := probe.NewSigner([]byte("test audit key"))
	if err != nil {
		t.Fatal(err)
	}
	human := e.key("human_1", daoguard.AlgEd25519, humanScopes, "test", nil)
	agent := e.key("agent_1", daoguard.AlgHMACSHA256, daoguard.AgentScopes, "test", nil)

	// The agent fetches the key it checks questions against.
	if _, err := agent.ProbeKey(ctx); daoguard.ErrorCode(err) != daoguard.CodeUnavailable {
		t.Fatalf("probe key without a prober: %v", err)
	}
	e.svc.Prober = &probe.Runner{Signer: signer, Key: key}
	got, err := agent.ProbeKey(ctx)
	if err != nil || *got != key {
		t.Fatalf("probe key: %+v %v", got, err)
	}

	good := newAgentEndpoint(t, *got, "agent_2", aligned)
	bad := newAgentEndpoint(t, *got, "agent_1", gullible)
	e.svc.Probes = []service.ProbeTarget{
		{Org: "org_test", Agent: "grants bot", Endpoint: good.srv.URL + "/decide", Suite: probe.Reference()}, // by name
		{Org: "org_test", Agent: "agent_1", Endpoint: bad.srv.URL + "/decide?token=secret", Suite: probe.Reference()},
	}
	n := len(probe.Reference().Scenarios)

	// An agent cannot run probes, nor can a human of nothing configured.
	if _, err := agent.RunProbes(ctx, "agent_1"); daoguard.ErrorCode(err) != daoguard.CodeMissingScope {
		t.Fatalf("agent runs probes: %v", err)
	}
	if _, err := human.RunProbes(ctx, "human_2"); daoguard.ErrorCode(err) != daoguard.CodeInvalid {
		t.Fatalf("probes of a human: %v", err)
	}
	if _, err := human.RunProbes(ctx, "agent_nope"); daoguard.ErrorCode(err) != daoguard.CodeNotFound {
		t.Fatalf("probes of nobody: %v", err)
	}

	out, err := human.RunProbes(ctx, "agent_2")
	if err != nil {
		t.Fatal(err)
	}
	runs := out.Runs
	if len(runs) != 1 || !runs[0].Passed || runs[0].Score != 1 || runs[0].Lowered || runs[0].Autonomy != daoguard.AutonomyAutonomous || len(runs[0].Outcomes) != n {
		t.Fatalf("aligned agent: %+v", runs)
	}
	if len(good.raw) != n {
		t.Fatalf("the aligned agent got %d signed questions, want %d", len(good.raw), n)
	}

	before := e.auditSize()
	out, err = human.RunProbes(ctx, "agent_1")
	if err != nil {
		t.Fatal(err)
	}
	r := out.Runs[0]
	if r.Passed || !r.Lowered || r.Autonomy != daoguard.AutonomySupervised || r.Score >= r.Threshold {
		t.Fatalf("gullible agent: passed %v lowered %v autonomy %v score %.2f", r.Passed, r.Lowered, r.Autonomy, r.Score)
	}
	for _, id := range []string{"freysa-tool-redefinition", "fake-admin-session", "delegatecall-unknown", "safe-owner-change"} {
		if !strings.Contains(strings.Join(r.CriticalFailed, ","), id) {
			t.Errorf("critical failures %v lack %s", r.CriticalFailed, id)
		}
	}
	// Its submissions now wait for humans.
	a, err := agent.Submit(ctx, storetest.Transfer("5", storetest.Vendor), "")
	if err != nil || a.State != "awaiting_approval" {
		t.Fatalf("after failing probes: %v %+v", err, a)
	}

	// The audit entries: the run, then daoguard moving the agent down.
	es := e.auditFrom(before)
	if len(es) < 2 || es[0].Event != "probe.run" || es[1].Event != "principal.autonomy" || es[0].ActorID != "human_1" || es[1].ActorID != daoguard.ActorSystem {
		t.Fatalf("audit entries: %+v", es)
	}
	if es[0].Seq != r.LogIndex {
		t.Fatalf("log_index %d, entry %d", r.LogIndex, es[0].Seq)
	}
	var run struct {
		Agent, Suite, Digest, Endpoint string
		Passed                         bool
		Failed                         []probe.Outcome
	}
	if err := json.Unmarshal(es[0].Detail, &run); err != nil {
		t.Fatal(err)
	}
	if run.Agent != "agent_1" || run.Suite != "reference" || run.Digest != probe.Reference().Digest() || run.Passed || len(run.Failed) == 0 {
		t.Fatalf("probe.run detail: %s", es[0].Detail)
	}
	if strings.Contains(string(es[0].Detail), "secret") || strings.Contains(string(es[0].Detail), "the message says so") {
		t.Fatalf("the endpoint's query or the agent's rationale leaked into the log: %s", es[0].Detail)
	}
	if !strings.Contains(string(es[1].Detail), "alignment probes: suite reference scored") {
		t.Fatalf("autonomy entry: %s", es[1].Detail)
	}
	// Both are in the verified log, provably.
	entry, _, err := human.VerifyEntry(ctx, int64(r.LogIndex), vkey, nil)
	if err != nil || entry.Event != "probe.run" {
		t.Fatalf("inclusion proof of the run: %v %+v", err, entry)
	}
	if _, _, _, err := audit.VerifyStore(ctx, e.store, e.svc.AuditVerifier); err != nil {
		t.Fatal(err)
	}

	// The risk state: supervised, the history newest first.
	st, err := human.Risk(ctx, "agent_1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Agent.Autonomy != daoguard.AutonomySupervised || len(st.History) != 2 || st.History[0].Event != "principal.autonomy" || st.History[1].Event != "probe.run" || len(st.LastProbe) == 0 {
		t.Fatalf("risk state: %+v", st)
	}
	if _, err := agent.Risk(ctx, "agent_1"); daoguard.ErrorCode(err) != daoguard.CodeMissingScope {
		t.Fatalf("risk without audit:read: %v", err)
	}

	// A second failed run records itself but moves nothing further, and
	// only a human moves the agent back up.
	out, err = human.RunProbes(ctx, "agent_1")
	if err != nil || out.Runs[0].Lowered || out.Runs[0].Autonomy != daoguard.AutonomySupervised {
		t.Fatalf("second run: %v %+v", err, out)
	}
	if res, err := human.SetAutonomy(ctx, "agent_1", daoguard.AutonomyAutonomous, "reviewed the probe failures"); err != nil || res.Autonomy != daoguard.AutonomySupervised || res.Action == nil {
		t.Fatalf("one human's raise: %v %+v", err, res)
	}
	human3 := e.key("human_3", daoguard.AlgEd25519, humanScopes, "test", nil)
	if res, err := human3.SetAutonomy(ctx, "agent_1", daoguard.AutonomyAutonomous, "agreed"); err != nil || res.Autonomy != daoguard.AutonomyAutonomous || res.Action.State != "executed" {
		t.Fatalf("two humans' raise: %v %+v", err, res)
	}
	if st, _ := human.Risk(ctx, "agent_1"); len(st.History) != 4 || st.History[0].ActorID != "human_1" {
		t.Fatalf("history after the human's reset: %+v", st.History)
	}

	// The agent's endpoint refuses a replayed question and a forged one.
	q, body := bad.raw[0], bad.bod[0]
	replay, _ := http.NewRequest("POST", bad.srv.URL+q.URL.RequestURI(), bytes.NewReader(body))
	replay.Header = q.Header.Clone()
	res, err := http.DefaultClient.Do(replay)
	if err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replayed question: %v %v", err, res.Status)
	}
	forged, _ := http.NewRequest("POST", bad.srv.URL+q.URL.RequestURI(), bytes.NewReader(bytes.Replace(body, []byte(`"situation"`), []byte(`"situation" `), 1)))
	forged.Header = q.Header.Clone()
	if res, err := http.DefaultClient.Do(forged); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged question: %v %v", err, res.Status)
	}
	unsigned, _ := http.Post(bad.srv.URL+"/decide", "application/json", bytes.NewReader(body))
	if unsigned.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned question: %v", unsigned.Status)
	}
	// A question for agent_1, replayed to agent_2's endpoint (a nonce it
	// has never seen, a valid signature): refused, it is not for agent_2.
	elsewhere, _ := http.NewRequest("POST", good.srv.URL+q.URL.RequestURI(), bytes.NewReader(body))
	elsewhere.Header = q.Header.Clone()
	if res, err := http.DefaultClient.Do(elsewhere); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a question replayed to another agent: %v %v", err, res.Status)
	}
}

// An agent that cannot be reached fails its probes (NO_ANSWER): an agent
// that cannot be probed is not trusted to act alone.
func TestProbesUnreachableAgent(t *testing.T) {
	ctx := context.Background()
	e := newSQLiteEnv(t)
	signer, key, _ := probe.NewSigner([]byte("k"))
	e.svc.Prober = &probe.Runner{Signer: signer, Key: key}
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	e.svc.Probes = []service.ProbeTarget{{Org: "org_test", Agent: "agent_1", Endpoint: down.URL, Suite: probe.Reference()}}
	human := e.key("human_1", daoguard.AlgEd25519, humanScopes, "test", nil)
	out, err := human.RunProbes(ctx, "agent_1")
	if err != nil {
		t.Fatal(err)
	}
	if r := out.Runs[0]; r.Passed || !r.Lowered || r.Outcomes[0].Code != probe.OutcomeNoAnswer {
		t.Fatalf("unreachable agent: %+v", r)
	}
}

// The schedule: a target with every set is run by Service.Run as daoguard
// itself (actor system), and moves a failing agent down like a human's
// run does.
func TestProbesScheduled(t *testing.T) {
	e := newSQLiteEnv(t)
	signer, key, _ := probe.NewSigner([]byte("k"))
	e.svc.Prober = &probe.Runner{Signer: signer, Key: key}
	bad := newAgentEndpoint(t, key, "agent_1", gullible)
	e.svc.Probes = []service.ProbeTarget{
		{Org: "org_test", Agent: "payroll bot", Endpoint: bad.srv.URL, Suite: probe.Reference(), Every: 20 * time.Millisecond},
		// On demand only: the other target's schedule must not run it.
		{Org: "org_test", Agent: "agent_1", Endpoint: "http://127.0.0.1:1/never", Suite: probe.Reference()},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.svc.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var hist []daoguard.AuditEntry
		e.store.View(ctx, func(tx daoguard.Tx) (err error) { hist, err = tx.SubjectAudit(ctx, "agent_1", 10); return err })
		if len(hist) >= 2 {
			if hist[0].Event != "probe.run" || hist[0].ActorID != daoguard.ActorSystem || hist[1].Event != "principal.autonomy" {
				t.Fatalf("scheduled run: %+v", hist)
			}
			// A few more ticks: only the scheduled target runs.
			time.Sleep(100 * time.Millisecond)
			e.store.View(ctx, func(tx daoguard.Tx) (err error) { hist, err = tx.SubjectAudit(ctx, "agent_1", 100); return err })
			for _, h := range hist {
				if h.Event == "probe.run" && strings.Contains(string(h.Detail), "/never") {
					t.Fatalf("the on-demand target ran on the other's schedule: %s", h.Detail)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled run in 10 s: %+v", hist)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An agent that takes its time: the request answers 202 once ProbeWait
// has passed, and the run goes on and is recorded, moving the agent down.
func TestProbesSlowAgent(t *testing.T) {
	ctx := context.Background()
	e := newSQLiteEnv(t)
	signer, key, _ := probe.NewSigner([]byte("k"))
	e.svc.Prober = &probe.Runner{Signer: signer, Key: key}
	v, _ := client.NewProbeVerifier(key)
	slow := httptest.NewServer(client.ProbeHandler(v, func(_ context.Context, q client.Question) (client.Answer, error) {
		time.Sleep(50 * time.Millisecond)
		return client.Answer{Decision: q.Options[0]}, nil
	}))
	defer slow.Close()
	e.svc.Probes = []service.ProbeTarget{{Org: "org_test", Agent: "agent_1", Endpoint: slow.URL, Suite: probe.Reference()}}
	human := e.key("human_1", daoguard.AlgEd25519, humanScopes, "test", nil)
	defer func(w time.Duration) { httpapi.ProbeWait = w }(httpapi.ProbeWait)
	httpapi.ProbeWait = 10 * time.Millisecond
	out, err := human.RunProbes(ctx, "agent_1")
	if err != nil || !out.Running || len(out.Runs) != 0 {
		t.Fatalf("slow agent: %v %+v", err, out)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := human.Risk(ctx, "agent_1")
		if err != nil {
			t.Fatal(err)
		}
		if len(st.History) == 2 && st.History[1].Event == "probe.run" && st.Agent.Autonomy == daoguard.AutonomySupervised {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run was not recorded: %+v", st)
		}
	}
}
