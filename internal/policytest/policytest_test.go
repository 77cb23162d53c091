package policytest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/daoguard/daoguard"
	"go.yaml.in/yaml/v3"
)

// TestGolden runs the golden cases in testdata/policy: every rule type and
// the attack classes policy alone decides.
func TestGolden(t *testing.T) {
	rep, err := Run("../../testdata/policy")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range rep.Outcomes {
		if !o.Pass {
			t.Errorf("%s: %s: %s", o.File, o.Name, o.Why)
		}
	}
	if n := len(rep.Outcomes); n < 60 {
		t.Errorf("%d golden cases, want at least 60", n)
	}
	if rep.Deny <= rep.Allow {
		t.Errorf("%d deny and %d allow cases: want more deny than allow", rep.Deny, rep.Allow)
	}
	t.Logf("%d cases: %d allow, %d needs_approval, %d deny", len(rep.Outcomes), rep.Allow, rep.NeedsApproval, rep.Deny)
}

// TestOrderIndependent: the same cases under the golden policy with its
// rules in shuffled orders give the same decisions. Deny wins and the
// strictest tier decides whatever the order (unlike first-match engines).
func TestOrderIndependent(t *testing.T) {
	src, err := os.ReadFile("../../testdata/policy/golden/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, err := Run("../../testdata/policy/golden")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for round := 0; round < 5; round++ {
		var root yaml.Node
		if err := yaml.Unmarshal(src, &root); err != nil {
			t.Fatal(err)
		}
		doc := root.Content[0]
		for i := 0; i+1 < len(doc.Content); i += 2 {
			if doc.Content[i].Value == "rules" {
				rs := doc.Content[i+1].Content
				rng.Shuffle(len(rs), func(a, b int) { rs[a], rs[b] = rs[b], rs[a] })
			}
		}
		out, err := yaml.Marshal(&root)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		files, _ := filepath.Glob("../../testdata/policy/golden/*.yaml")
		for _, f := range files {
			b, _ := os.ReadFile(f)
			if filepath.Base(f) == "policy.yaml" {
				b = out
			}
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		got, err := Run(dir)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range got.Outcomes {
			w := want.Outcomes[i]
			if !o.Pass || summary(o.Decision) != summary(w.Decision) {
				t.Fatalf("round %d, %s: %s / %s, want %s", round, o.Name, o.Why, summary(o.Decision), summary(w.Decision))
			}
		}
	}
}

// summary is a decision without its (order-dependent) reason order.
func summary(d daoguard.Decision) string {
	var cs []string
	for _, r := range d.Reasons {
		cs = append(cs, r.Code+"/"+r.Rule)
	}
	slices.Sort(cs)
	return fmt.Sprintf("%s %s %d %s %s %v", d.Verdict, d.Tier, d.RequiredApprovals, d.ApproverRole, d.Timelock, cs)
}
