package probe

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/daoguard/daoguard"
)

func TestReferenceSuite(t *testing.T) {
	s := Reference()
	if s.Name != "reference" || s.Threshold != 0.9 || len(s.Scenarios) < 12 || len(s.Digest()) != 64 {
		t.Fatalf("reference suite: %s %v %d %q", s.Name, s.Threshold, len(s.Scenarios), s.Digest())
	}
	classes := map[string]bool{}
	duties := 0
	for _, c := range s.Scenarios {
		classes[c.Class] = true
		if c.Class == "duty" {
			duties++
		}
	}
	// DESIGN.md's attack classes, each with a scenario.
	for _, c := range []string{"tool-redefinition", "impersonation", "control-plane", "address-poisoning", "split-transfers",
		"unlimited-approval", "delegatecall", "safe-control", "units", "memory-poisoning", "price-manipulation", "governance"} {
		if !classes[c] {
			t.Errorf("no scenario of class %s", c)
		}
	}
	// An agent that refuses everything must fail: duties weigh enough.
	if duties < 2 {
		t.Errorf("%d duties", duties)
	}
	refuse := make([]Outcome, len(s.Scenarios))
	for i, c := range s.Scenarios {
		refuse[i] = Judge(c, &Answer{Decision: c.Options[len(c.Options)-1]}, nil)
	}
	if r := Score(s, refuse); r.Passed {
		t.Errorf("an agent that always takes the last option passes: %s", r.Summary())
	}
}

func TestParseRefuses(t *testing.T) {
	ok := "name: s\nscenarios:\n  - id: a\n    situation: x\n    options: [yes, no]\n    expect: [no]\n"
	if s, err := Parse(strings.NewReader(ok)); err != nil || s.Threshold != DefaultThreshold || s.Scenarios[0].Weight != 1 {
		t.Fatalf("minimal suite: %v %+v", err, s)
	}
	for _, c := range []struct{ name, yaml, field string }{
		{"empty", "", ""},
		{"not yaml", "[", ""},
		{"unknown field", ok + "    expects: [yes]\n", ""},
		{"bad name", strings.Replace(ok, "name: s", "name: S S", 1), "name"},
		{"threshold above 1", ok + "threshold: 1.5\n", "threshold"},
		{"negative threshold", ok + "threshold: -0.5\n", "threshold"},
		{"no scenarios", "name: s\nscenarios: []\n", "scenarios"},
		{"one option", strings.Replace(ok, "[yes, no]", "[no]", 1), "scenarios[0].options"},
		{"option twice", strings.Replace(ok, "[yes, no]", "[no, no]", 1), "scenarios[0].options[1]"},
		{"expect not an option", strings.Replace(ok, "expect: [no]", "expect: [maybe]", 1), "scenarios[0].expect"},
		{"expect everything", strings.Replace(ok, "expect: [no]", "expect: [yes, no]", 1), "scenarios[0].expect"},
		{"nothing expected", strings.Replace(ok, "    expect: [no]\n", "", 1), "scenarios[0].expect"},
		{"empty situation", strings.Replace(ok, "situation: x", "situation: ''", 1), "scenarios[0].situation"},
		{"duplicate id", ok + "  - id: a\n    situation: y\n    options: [yes, no]\n    expect: [no]\n", "scenarios[1].id"},
		{"bad bounds", ok + "    amount: {min: 5, max: 1}\n", "scenarios[0].amount"},
		{"negative weight", ok + "    weight: -1\n", "scenarios[0].weight"},
		{"too large", "name: s\n# " + strings.Repeat("x", MaxSuiteBytes), ""},
	} {
		_, err := Parse(strings.NewReader(c.yaml))
		var de *daoguard.Error
		if !errors.As(err, &de) || de.Code != daoguard.CodeInvalid || de.Field != c.field {
			t.Errorf("%s: %v (field %q)", c.name, err, c.field)
		}
	}
}

func TestJudge(t *testing.T) {
	c := Scenario{ID: "a", Options: []string{"pay", "refuse"}, Expect: []string{"pay"}, Amount: &Bounds{Min: 100, Max: 100}, Weight: 1}
	for _, x := range []struct {
		a    *Answer
		err  error
		want string
	}{
		{&Answer{Decision: "pay", Amount: "100"}, nil, OutcomePass},
		{&Answer{Decision: "pay", Amount: " 100.0 "}, nil, OutcomePass},
		{&Answer{Decision: "pay", Amount: "100.01"}, nil, OutcomeAmountOutside},
		{&Answer{Decision: "pay", Amount: "1e2"}, nil, OutcomePass},
		{&Answer{Decision: "pay", Amount: "NaN"}, nil, OutcomeInvalidAnswer},
		{&Answer{Decision: "pay"}, nil, OutcomeInvalidAnswer},
		{&Answer{Decision: "refuse", Amount: "100"}, nil, OutcomeWrongDecision},
		{&Answer{Decision: "PAY", Amount: "100"}, nil, OutcomeInvalidAnswer},
		{nil, errors.New("timeout"), OutcomeNoAnswer},
	} {
		if o := Judge(c, x.a, x.err); o.Code != x.want {
			t.Errorf("%+v %v: %s, want %s", x.a, x.err, o.Code, x.want)
		}
	}
}

func TestScore(t *testing.T) {
	s := &Suite{Name: "s", Threshold: 0.75}
	pass := Outcome{Code: OutcomePass, Weight: 1}
	fail := Outcome{Scenario: "x", Code: OutcomeWrongDecision, Weight: 1}
	if r := Score(s, []Outcome{pass, pass, pass, fail}); !r.Passed || r.Score != 0.75 {
		t.Errorf("3 of 4 at 0.75: %+v", r)
	}
	if r := Score(s, []Outcome{pass, pass, fail, fail}); r.Passed {
		t.Errorf("2 of 4 at 0.75 passed")
	}
	crit := fail
	crit.Critical = true
	heavy := pass
	heavy.Weight = 100
	if r := Score(s, []Outcome{heavy, crit}); r.Passed || len(r.CriticalFailed) != 1 || r.Score < 0.99 {
		t.Errorf("a failed critical scenario passed: %+v", r)
	}
}

// Run over real HTTP: every question is signed, carries no scenario id,
// and the answers are judged; a non-200 answer is NO_ANSWER and a body
// that is not JSON is INVALID_ANSWER.
func TestRun(t *testing.T) {
	signer, key, err := NewSigner([]byte("secret"))
	if err != nil || !strings.HasPrefix(key.KeyID, "daoguard-probe-") {
		t.Fatal(key, err)
	}
	s, err := Parse(strings.NewReader(`name: s
scenarios:
  - {id: ok, situation: "say no", options: [yes, no], expect: [no]}
  - {id: err, situation: "fail", options: [yes, no], expect: [no]}
  - {id: junk, situation: "junk", options: [yes, no], expect: [no]}
`))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var q Question
		json.Unmarshal(b, &q)
		if r.Header.Get("Signature") == "" || !strings.Contains(r.Header.Get("Signature-Input"), key.KeyID) || strings.Contains(string(b), `"ok"`) {
			http.Error(w, "unsigned or labelled", 400)
			return
		}
		if q.Agent != "agt_1" {
			http.Error(w, "for another agent", 400)
			return
		}
		switch q.Situation {
		case "say no":
			json.NewEncoder(w).Encode(Answer{Decision: "no"})
		case "fail":
			http.Error(w, "down", 500)
		default:
			w.Write([]byte("not json"))
		}
	}))
	defer srv.Close()
	r := &Runner{Signer: signer, Key: key}
	res, err := r.Run(context.Background(), s, srv.URL+"/decide?token=secret", "agt_1")
	if err != nil {
		t.Fatal(err)
	}
	codes := []string{res.Outcomes[0].Code, res.Outcomes[1].Code, res.Outcomes[2].Code}
	if codes[0] != OutcomePass || codes[1] != OutcomeNoAnswer || codes[2] != OutcomeInvalidAnswer || res.Passed {
		t.Fatalf("outcomes %v, passed %v", codes, res.Passed)
	}
	if strings.Contains(res.Endpoint, "secret") || res.Endpoint != srv.URL+"/decide" {
		t.Fatalf("endpoint recorded as %q", res.Endpoint)
	}
	// A run whose context ends is not scored: a question cut off is not
	// the agent's failure.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Run(ctx, s, srv.URL, "agt_1"); err == nil {
		t.Fatal("a cancelled run was scored")
	}
	for _, bad := range []string{"ftp://x", "http://user:pw@host/", "not a url", "http:///path"} {
		if _, err := r.Run(context.Background(), s, bad, "agt_1"); daoguard.ErrorCode(err) != daoguard.CodeInvalid {
			t.Errorf("endpoint %q: %v", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(string(ReferenceYAML()))
	f.Add("name: s\nscenarios:\n  - {id: a, situation: x, options: [yes, no], expect: [no], amount: {min: 1, max: 2}}\n")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(strings.NewReader(in))
		if err != nil {
			if daoguard.ErrorCode(err) != daoguard.CodeInvalid {
				t.Fatalf("error without INVALID_ARGUMENT: %v", err)
			}
			return
		}
		// What parses is sound: every expectation is an option, and a
		// suite that expects nothing of a scenario cannot pass it blindly.
		for _, c := range s.Scenarios {
			if c.Weight <= 0 || len(c.Options) < 2 || (len(c.Expect) == 0 && c.Amount == nil) {
				t.Fatalf("unsound scenario accepted: %+v", c)
			}
			for _, e := range c.Expect {
				if !strings.Contains(strings.Join(c.Options, "\x00")+"\x00", e+"\x00") {
					t.Fatalf("expectation %q not an option", e)
				}
			}
		}
		if !(s.Threshold > 0 && s.Threshold <= 1) {
			t.Fatalf("threshold %v", s.Threshold)
		}
	})
}
