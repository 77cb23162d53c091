package bias

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/probe"
)

func loadSample(t *testing.T, n int) []Proposal {
	t.Helper()
	f, err := os.Open("../../testdata/screening-sample/aave_proposals.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ps, err := LoadProposals(f, n)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// agent answers as decide says, over real HTTP; it sees only the signed
// question, as a real agent would.
func agent(t *testing.T, decide func(q probe.Question) string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var q probe.Question
		json.Unmarshal(b, &q)
		json.NewEncoder(w).Encode(probe.Answer{Decision: decide(q)})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// merit judges content only: a vote from the proposal's title, and of two
// proposals the one with the shorter title.
func meritVote(q probe.Question) string {
	title := q.Situation[strings.Index(q.Situation, `"`)+1:]
	title = title[:strings.Index(title, `"`)]
	if len(title)%3 == 0 {
		return "against"
	}
	return "for"
}

func meritPick(q probe.Question) string {
	parts := strings.SplitN(q.Situation, "Second: ", 2)
	first := strings.SplitN(strings.SplitN(parts[0], "First: ", 2)[1], "\n", 2)[0]
	second := strings.SplitN(parts[1], "\n", 2)[0]
	if len(first) <= len(second) {
		return "first"
	}
	return "second"
}

func TestReport(t *testing.T) {
	ctx := context.Background()
	props := loadSample(t, 40)
	signer, key, _ := probe.NewSigner([]byte("k"))
	ask := &probe.Runner{Signer: signer, Key: key}

	fair := agent(t, func(q probe.Question) string {
		if len(q.Options) == 2 {
			return meritPick(q)
		}
		return meritVote(q)
	})
	rep, err := Run(ctx, ask, fair, props, Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() || rep.Flips.K != 0 || rep.Flips.N != 40 || rep.Consistent.K != rep.Consistent.N || rep.Consistent.N != 20 || rep.Unanswered != 0 {
		var b strings.Builder
		rep.Write(&b)
		t.Fatalf("a fair agent:\n%s", b.String())
	}

	// Against newcomers, and the first shown always wins.
	biased := agent(t, func(q probe.Question) string {
		if len(q.Options) == 2 {
			return "first"
		}
		if strings.Contains(q.Situation, "first-time proposer") {
			return "against"
		}
		return meritVote(q)
	})
	rep, err = Run(ctx, ask, biased, props, Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	rep.Write(&out)
	if !rep.ProposerBias || !rep.PositionBias || rep.FirstPicked.K != 40 || rep.Consistent.K != 0 || !strings.Contains(rep.Largest.A+rep.Largest.B, "first-time") {
		t.Fatalf("a biased agent:\n%s", out.String())
	}
	for _, d := range rep.Flagged {
		if !strings.Contains(d.A+d.B, "first-time") {
			t.Errorf("flagged a pair without the newcomer: %+v", d)
		}
	}
	if !strings.Contains(out.String(), "BIASED") {
		t.Fatalf("report:\n%s", out.String())
	}

	// An agent that answers nothing valid fails, incomplete, not fair.
	mute := agent(t, func(probe.Question) string { return "maybe" })
	rep, err = Run(ctx, ask, mute, props[:4], Config{})
	if err != nil || rep.Unanswered != 4*len(DefaultProposers)+4 || rep.Flips.N != 0 || !rep.Incomplete || !rep.Failed() {
		t.Fatalf("mute agent: %v %+v", err, rep)
	}
	// Nor can an agent hide its bias by declining to answer for one
	// proposer.
	coy := agent(t, func(q probe.Question) string {
		if strings.Contains(q.Situation, "first-time proposer") {
			return "no comment"
		}
		if len(q.Options) == 2 {
			return meritPick(q)
		}
		return meritVote(q)
	})
	rep, err = Run(ctx, ask, coy, props, Config{Seed: 1})
	if err != nil || !rep.Failed() || !rep.Incomplete || rep.Proposers[2].Unanswered != 40 {
		t.Fatalf("an agent silent on one proposer: %v %+v", err, rep)
	}
}

func TestLoadProposalsRefuses(t *testing.T) {
	for _, in := range []string{
		"",
		"not json\n",
		`{"id": "a", "title": "t"}` + "\n",
		strings.Repeat(`{"id": "a", "title": "t", "body": "b"}`+"\n", 3),
	} {
		if _, err := LoadProposals(strings.NewReader(in), 0); daoguard.ErrorCode(err) != daoguard.CodeInvalid {
			t.Errorf("%q: %v", in, err)
		}
	}
	ps := loadSample(t, 5)
	if len(ps) != 5 || ps[0].Title != "GHO Steward Update" || strings.Contains(ps[0].Body, "author:") || strings.HasPrefix(ps[0].Body, "---") {
		t.Fatalf("front matter: %+v", ps[0])
	}
}
