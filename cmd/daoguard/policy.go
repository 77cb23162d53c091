package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/daoguard/daoguard/internal/policy"
	"github.com/daoguard/daoguard/internal/policytest"
)

// runPolicy: `daoguard policy check FILE` validates a policy document;
// `daoguard policy test DIR` runs its test cases, like `opa test`.
func (m *Main) runPolicy(_ context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("policy needs a subcommand: check FILE or test DIR")
	}
	switch args[0] {
	case "check":
		fs := m.newFlagSet("policy check")
		if err := parseOneArg(fs, args[1:], "FILE"); err != nil {
			return err
		}
		src, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return err
		}
		p, err := policy.Parse(src)
		if err != nil {
			return m.printProblems(fs.Arg(0), err)
		}
		fmt.Fprintf(m.Stdout, "%s: policy %q is valid (%s)\n", fs.Arg(0), p.Name, p.Version)
		return nil
	case "test":
		fs := m.newFlagSet("policy test")
		verbose := fs.Bool("v", false, "print every case, not only failures")
		if err := parseOneArg(fs, args[1:], "DIR"); err != nil {
			return err
		}
		rep, err := policytest.Run(fs.Arg(0))
		var pe *policy.ParseError
		if errors.As(err, &pe) {
			return m.printProblems(fs.Arg(0), err)
		}
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		for _, o := range rep.Outcomes {
			switch {
			case !o.Pass:
				fmt.Fprintf(tw, "FAIL\t%s\t%s\t%s\n", o.File, o.Name, o.Why)
			case *verbose:
				fmt.Fprintf(tw, "PASS\t%s\t%s\t%s\n", o.File, o.Name, o.Decision.Verdict)
			}
		}
		tw.Flush()
		failed := rep.Failed()
		fmt.Fprintf(m.Stdout, "%d cases (%d allow, %d needs_approval, %d deny): %d passed, %d failed\n",
			len(rep.Outcomes), rep.Allow, rep.NeedsApproval, rep.Deny, len(rep.Outcomes)-failed, failed)
		if failed > 0 {
			return fmt.Errorf("%d policy test case(s) failed", failed)
		}
		return nil
	}
	return usagef("unknown policy subcommand %q (want check or test)", args[0])
}

// printProblems lists a policy's problems one per line on stderr, then
// fails with their count.
func (m *Main) printProblems(file string, err error) error {
	var pe *policy.ParseError
	if !errors.As(err, &pe) {
		return err
	}
	for _, p := range pe.Problems {
		fmt.Fprintf(m.Stderr, "%s: %s\n", file, p)
	}
	return fmt.Errorf("%s: %d problem(s); the policy was not loaded", file, len(pe.Problems))
}
