package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
	"github.com/daoguard/daoguard/internal/probe"
)

// TestProbeCommands follows the README: an operator configures the
// reference suite for an agent in daoguard.yaml, gives the agent the probe
// key (daoguard probe key), and a human runs the probes with the CLI. The
// agent, which takes whatever a message asks, fails; it ends up
// supervised; its risk state shows the run and the move; the audit log
// verifies offline.
func TestProbeCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t)
	if code, _, errs := run(t, nil, "init", "--data", dir, "--url", "http://"+addr); code != 0 {
		t.Fatal(errs)
	}
	code, out, errs := run(t, nil, "probe", "key", "--data", dir)
	var key client.ProbeKey
	if code != 0 || json.Unmarshal([]byte(out), &key) != nil || key.KeyID == "" {
		t.Fatalf("probe key: %d %s %s", code, out, errs)
	}

	// The agent's decision endpoint: it checks daoguard's signature and
	// answers with the first option the suite lists (the attacker's).
	v, err := client.NewProbeVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	first := map[string]probe.Scenario{}
	for _, c := range probe.Reference().Scenarios {
		first[c.Situation] = c
	}
	agentSrv := httptest.NewServer(client.ProbeHandler(v, func(_ context.Context, q client.Question) (client.Answer, error) {
		c := first[q.Situation]
		a := client.Answer{Decision: c.Options[0]}
		if c.Amount != nil {
			a.Amount = fmt.Sprint(c.Amount.Min)
		}
		return a, nil
	}))
	defer agentSrv.Close()

	// The operator's alert receiver checks daoguard's signature too, with
	// the alert key (a signed alert is no probe question, nor the reverse).
	_, out, _ = run(t, nil, "probe", "key", "--data", dir, "--alerts")
	var alertKey client.ProbeKey
	if json.Unmarshal([]byte(out), &alertKey) != nil || alertKey.KeyID == key.KeyID || !strings.HasPrefix(alertKey.KeyID, "daoguard-alert-") {
		t.Fatalf("alert key: %s", out)
	}
	av, err := client.NewProbeVerifier(alertKey)
	if err != nil {
		t.Fatal(err)
	}
	alerts := make(chan map[string]any, 10)
	alertSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := av.Verify(r, b); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var a map[string]any
		json.Unmarshal(b, &a)
		alerts <- a
	}))
	defer alertSrv.Close()
	metricsAddr := freeAddr(t)

	f, err := os.OpenFile(filepath.Join(dir, "daoguard.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "probes:\n  - {agent: trader, endpoint: %q, suite: reference, every: 6h}\nalert_url: %q\nmetrics_addr: %q\n", agentSrv.URL+"/decide", alertSrv.URL, metricsAddr)
	f.Close()

	logs := &lockedWriter{}
	stop := startServe(t, logs, nil, "--data", dir, "--dev", "--addr", addr)
	creds := filepath.Join(dir, "credentials")
	admin, human1 := filepath.Join(creds, "admin.json"), filepath.Join(creds, "human1.json")
	code, out, errs = run(t, nil, "principals", "create", "--credential", admin, "--name", "trader", "--kind", "agent")
	var trader daoguard.Principal
	if code != 0 || json.Unmarshal([]byte(out), &trader) != nil {
		t.Fatalf("create the agent: %d %s %s", code, out, errs)
	}
	wantAlert := func(kind string) {
		t.Helper()
		select {
		case a := <-alerts:
			if a["kind"] != kind || a["agent"] != trader.ID {
				t.Fatalf("alert %v, want %s", a, kind)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s alert", kind)
		}
	}
	// New agents start supervised; a human lets this one act alone.
	// Raising loosens a protection: one human asks, a second agrees.
	if code, out, errs := run(t, nil, "principals", "autonomy", "--credential", human1, "--id", trader.ID, "--level", "autonomous", "--reason", "onboarded"); code != 0 || !strings.Contains(errs, "another human must agree") || !strings.Contains(out, `"autonomy": "supervised"`) {
		t.Fatalf("autonomy, one human: %s %s", out, errs)
	}
	if code, out, errs := run(t, nil, "principals", "autonomy", "--credential", filepath.Join(creds, "human2.json"), "--id", trader.ID, "--level", "autonomous", "--reason", "agreed"); code != 0 || !strings.Contains(out, `"autonomy": "autonomous"`) {
		t.Fatalf("autonomy, two humans: %s %s", out, errs)
	}
	wantAlert("autonomy_raised")

	code, out, errs = run(t, nil, "probe", "run", "--credential", human1, trader.ID)
	if code != exitFailed || !strings.Contains(out, "suite reference: FAILED") || !strings.Contains(out, "freysa-tool-redefinition") ||
		!strings.Contains(out, "moved to supervised") || !strings.Contains(errs, "failed its alignment probes") {
		t.Fatalf("probe run: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = run(t, nil, "risk", "--credential", human1, trader.ID)
	var st client.RiskState
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("risk: %d %s %s", code, out, errs)
	}
	if st.Agent.Autonomy != daoguard.AutonomySupervised || len(st.History) != 3 || st.History[0].Event != "principal.autonomy" || st.History[1].Event != "probe.run" || st.History[2].ActorID == daoguard.ActorSystem {
		t.Fatalf("risk state: %s", out)
	}
	if !strings.Contains(logs.String(), "PROBE_FAILED") {
		t.Fatalf("no PROBE_FAILED alert in the log:\n%s", logs.String())
	}
	wantAlert("probe_failed")
	// The metrics (the alert's count lands just after its delivery).
	lines := []string{
		`daoguard_probe_runs_total{result="failed",suite="reference"} 1`,
		`daoguard_probe_score{agent="` + trader.ID + `",suite="reference"}`,
		`daoguard_agents{autonomy="supervised"} 1`,
		`daoguard_autonomy_changes_total{actor_kind="system",to="supervised"} 1`,
		`daoguard_alerts_total{result="sent"} 2`,
	}
	var missing []string
	for range 100 {
		res, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		missing = missing[:0]
		for _, l := range lines {
			if !strings.Contains(string(body), l) {
				missing = append(missing, l)
			}
		}
		if len(missing) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(missing) > 0 {
		t.Fatalf("metrics lack %v", missing)
	}
	// Two humans move the agent back: alerted too.
	for _, who := range []string{human1, filepath.Join(creds, "human2.json")} {
		if code, out, errs := run(t, nil, "principals", "autonomy", "--credential", who, "--id", trader.ID, "--level", "autonomous", "--reason", "retrained"); code != 0 {
			t.Fatalf("autonomy: %s %s", out, errs)
		}
	}
	wantAlert("autonomy_raised")
	stop()
	if code, out, errs := run(t, nil, "audit", "verify", "--data", dir); code != 0 {
		t.Fatalf("audit verify: %d %s %s", code, out, errs)
	}
}

// Bad input to the probe commands and configuration: usage errors exit 2,
// refused input exits 1 naming the field; nothing runs.
func TestProbeBadInput(t *testing.T) {
	code, out, _ := run(t, nil, "probe", "suite")
	if code != 0 || !strings.Contains(out, "name: reference") {
		t.Fatalf("probe suite: %d", code)
	}
	path := filepath.Join(t.TempDir(), "s.yaml")
	os.WriteFile(path, []byte(out), 0o600)
	if code, out, errs := run(t, nil, "probe", "suite", path); code != 0 || !strings.Contains(out, "suite reference:") {
		t.Fatalf("probe suite FILE: %d %s %s", code, out, errs)
	}
	os.WriteFile(path, []byte("name: s\nscenarios:\n  - {id: a, situation: x, options: [yes, no], expect: [maybe]}\n"), 0o600)
	if code, _, errs := run(t, nil, "probe", "suite", path); code != exitFailed || !strings.Contains(errs, "scenarios[0].expect") {
		t.Fatalf("bad suite: %d %s", code, errs)
	}
	for _, args := range [][]string{{"probe"}, {"probe", "nope"}, {"probe", "run"}, {"probe", "key"}, {"risk"}, {"probe", "suite", "a", "b"}} {
		if code, _, _ := run(t, nil, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	for _, c := range []struct{ yaml, field string }{
		{"probes: [{agent: a, endpoint: 'ftp://x', suite: reference}]", "probes[0].endpoint"},
		{"probes: [{agent: a, endpoint: 'http://u:p@x/', suite: reference}]", "probes[0].endpoint"},
		{"probes: [{agent: a, endpoint: 'http://x/', suite: reference, every: 1s}]", "probes[0].every"},
		{"probes: [{agent: a, endpoint: 'http://x/', suite: reference, lower_to: autonomous}]", "probes[0].lower_to"},
		{"probes: [{endpoint: 'http://x/', suite: reference}]", "probes[0]"},
		{"alert_url: 'file:///etc/passwd'", "alert_url"},
	} {
		cfg, err := ParseConfig(strings.NewReader("org: {id: org_x}\n" + c.yaml + "\n"))
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: %v", c.yaml, err)
		}
	}
	// A suite file that does not parse stops serve before it listens.
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, errs := run(t, nil, "init", "--data", dir); code != 0 {
		t.Fatal(errs)
	}
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("name: s\n"), 0o600)
	f, _ := os.OpenFile(filepath.Join(dir, "daoguard.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintln(f, "probes: [{agent: a, endpoint: 'http://127.0.0.1:1/', suite: bad.yaml}]")
	f.Close()
	if code, _, errs := run(t, nil, "serve", "--data", dir, "--addr", freeAddr(t)); code != exitFailed || !strings.Contains(errs, "probes[0].suite") {
		t.Fatalf("serve with a bad suite: %d %s", code, errs)
	}
}

// TestReportBias: daoguard report bias against an agent on loopback that
// checks daoguard's signature: a fair one passes (exit 0), one that always
// picks the first proposal shown is reported biased (exit 1).
func TestReportBias(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, errs := run(t, nil, "init", "--data", dir); code != 0 {
		t.Fatal(errs)
	}
	_, out, _ := run(t, nil, "probe", "key", "--data", dir)
	var key client.ProbeKey
	json.Unmarshal([]byte(out), &key)
	v, err := client.NewProbeVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	endpoint := func(pick func(first, second string) string) string {
		srv := httptest.NewServer(client.ProbeHandler(v, func(_ context.Context, q client.Question) (client.Answer, error) {
			if len(q.Options) == 3 {
				return client.Answer{Decision: "for"}, nil
			}
			parts := strings.SplitN(q.Situation, "Second: ", 2)
			first := strings.SplitN(strings.SplitN(parts[0], "First: ", 2)[1], "\n", 2)[0]
			second := strings.SplitN(parts[1], "\n", 2)[0]
			return client.Answer{Decision: pick(first, second)}, nil
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	fair := endpoint(func(a, b string) string {
		if a < b {
			return "first"
		}
		return "second"
	})
	firstAlways := endpoint(func(string, string) string { return "first" })
	proposals := "../../testdata/screening-sample/aave_proposals.jsonl"
	code, out, errs := run(t, nil, "report", "bias", "--data", dir, "--endpoint", fair, "--proposals", proposals, "--limit", "20")
	if code != 0 || !strings.Contains(out, "no position bias") || !strings.Contains(out, "no disparity") {
		t.Fatalf("fair agent: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = run(t, nil, "report", "bias", "--data", dir, "--endpoint", firstAlways, "--proposals", proposals, "--limit", "20")
	if code != exitFailed || !strings.Contains(out, "BIASED: the rate of picking the first excludes 50%") || !strings.Contains(errs, "bias") {
		t.Fatalf("first-always agent: exit %d\n%s%s", code, out, errs)
	}
	for _, args := range [][]string{
		{"report"}, {"report", "nope"}, {"report", "bias"},
		{"report", "bias", "--data", dir, "--endpoint", fair},
		{"report", "bias", "--data", dir, "--endpoint", fair, "--proposals", proposals, "--trials", "0"},
	} {
		if code, _, _ := run(t, nil, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, errs := run(t, nil, "report", "bias", "--data", dir, "--endpoint", "ftp://x", "--proposals", proposals); code != exitFailed || !strings.Contains(errs, "http or https") {
		t.Errorf("bad endpoint: %d %s", code, errs)
	}
}

// TestDemo: daoguard demo passes every step on a clean temporary data
// directory, and exits 1 when a step is made to come out otherwise.
func TestDemo(t *testing.T) {
	code, out, errs := run(t, nil, "demo")
	if code != 0 || !strings.Contains(out, "all 14 steps came out as expected") || !strings.Contains(out, "tx hash") {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out, errs)
	}
	for _, step := range []string{"Freysa", "salami", "look-alike", "MultiSend", "delegatecall", "Safe owner", "LIMIT_PROBING", "grant", "vetoed", "BURST", "pause", "audit log"} {
		if !strings.Contains(out, step) {
			t.Errorf("the table has no %q step", step)
		}
	}
	code, out, _ = run(t, map[string]string{"DAOGUARD_DEMO_BREAK": "5"}, "demo")
	if code != exitFailed || !strings.Contains(out, "DIFFERS") || !strings.Contains(out, "1 of 14 steps differ") {
		t.Fatalf("a broken step: exit %d\n%s", code, out)
	}
	if code, _, errs := run(t, map[string]string{"DAOGUARD_DEMO_BREAK": "15"}, "demo"); code != exitUsage {
		t.Fatalf("a step that does not exist: exit %d %s", code, errs)
	}
}
