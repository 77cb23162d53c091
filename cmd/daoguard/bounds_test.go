package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden bounds files (testdata/policy/*/bounds.golden)")

// TestPolicyBoundsGolden: `daoguard policy bounds DIR` on the golden
// suites prints what each agent and all agents together can move without
// a human; the output is frozen in DIR/bounds.golden (regenerate with
// go test ./cmd/daoguard -run TestPolicyBoundsGolden -update).
func TestPolicyBoundsGolden(t *testing.T) {
	for _, suite := range []string{"golden", "ceilings"} {
		t.Run(suite, func(t *testing.T) {
			dir := filepath.Join("..", "..", "testdata", "policy", suite)
			code, out, errs := run(t, nil, "policy", "bounds", dir)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			golden := filepath.Join(dir, "bounds.golden")
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if out != string(want) {
				t.Fatalf("bounds differ from %s (rerun with -update if the change is meant):\n%s", golden, out)
			}
		})
	}
	// Bad input: exit 2 for usage, 1 for a directory without a policy.
	if code, _, _ := run(t, nil, "policy", "bounds"); code != 2 {
		t.Fatalf("no DIR: exit %d", code)
	}
	if code, _, _ := run(t, nil, "policy", "bounds", t.TempDir()); code != 1 {
		t.Fatalf("an empty DIR: exit %d", code)
	}
}

// TestPolicyDiffBounds: a policy change shows how it moves each agent's
// bounds, before anyone signs it.
func TestPolicyDiffBounds(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "policy", "ceilings")
	src, err := os.ReadFile(filepath.Join(dir, "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	looser := strings.Replace(string(src), `      - {period: 24h, max_usd: "10000"}`, `      - {period: 24h, max_usd: "12000"}`, 1)
	if looser == string(src) {
		t.Fatal("the test's edit did not apply")
	}
	next := filepath.Join(t.TempDir(), "next.yaml")
	if err := os.WriteFile(next, []byte(looser), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, nil, "policy", "diff", filepath.Join(dir, "policy.yaml"), next, "--fixture", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{`+      - {period: 24h, max_usd: "12000"}`, "agent payroll-bot: 24h USD 10,000.00 → 12,000.00", "all agents: 24h USD 30,000.00 → 36,000.00"} {
		if !strings.Contains(out, want) {
			t.Fatalf("diff lacks %q:\n%s", want, out)
		}
	}
}
