package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
	"github.com/daoguard/daoguard/internal/policy"
	"github.com/daoguard/daoguard/internal/policytest"
	"github.com/daoguard/daoguard/internal/service"
)

const policyUsage = "check FILE, test DIR, diff OLD NEW [--fixture DIR], bounds DIR | bounds --credential FILE, apply --data DIR FILE, show --data DIR, replay --data DIR --candidate FILE, evaluate, or propose FILE"

// runPolicy: `daoguard policy check FILE` validates a policy document;
// `daoguard policy test DIR` runs its test cases, like `opa test`; the
// others compare, load, show, replay and propose policies.
func (m *Main) runPolicy(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("policy needs a subcommand: %s", policyUsage)
	}
	switch args[0] {
	case "diff":
		fs := m.newFlagSet("policy diff")
		fixture := fs.String("fixture", "", "a directory with fixture.yaml (principals, holdings, prices): also show how the change moves each agent's bounds")
		files, err := parseArgs(fs, args[1:])
		if err != nil {
			return err
		}
		if len(files) != 2 {
			return usagef("policy diff takes OLD and NEW")
		}
		old, err := os.ReadFile(files[0])
		if err != nil {
			return err
		}
		next, err := os.ReadFile(files[1])
		if err != nil {
			return err
		}
		fmt.Fprint(m.Stdout, policy.Diff(string(old), string(next)))
		if *fixture == "" {
			return nil
		}
		op, err := policy.Parse(old)
		if err != nil {
			return m.printProblems(files[0], err)
		}
		np, err := policy.Parse(next)
		if err != nil {
			return m.printProblems(files[1], err)
		}
		w, err := policytest.WorldOf(np, filepath.Join(*fixture, "fixture.yaml"))
		if err != nil {
			return err
		}
		changes := policy.BoundChanges(op, np, w)
		fmt.Fprintf(m.Stdout, "\nbounds (what agents move without a human):\n")
		if len(changes) == 0 {
			fmt.Fprintln(m.Stdout, "  unchanged")
		}
		for _, c := range changes {
			fmt.Fprintln(m.Stdout, "  "+c)
		}
		return nil
	case "bounds":
		fs := m.newFlagSet("policy bounds")
		cred := fs.String("credential", "", "ask the server for the policy in force (a credential file); otherwise give DIR")
		dirs, err := parseArgs(fs, args[1:])
		if err != nil {
			return err
		}
		if *cred != "" {
			if len(dirs) != 0 {
				return usagef("policy bounds takes DIR or --credential, not both")
			}
			c, err := m.loadClient(*cred)
			if err != nil {
				return err
			}
			bs, err := c.PolicyBounds(ctx)
			if err != nil {
				return err
			}
			return m.printBounds(bs)
		}
		if len(dirs) != 1 {
			return usagef("policy bounds takes DIR (with policy.yaml and fixture.yaml) or --credential FILE")
		}
		p, w, err := policytest.World(dirs[0])
		var pe *policy.ParseError
		if errors.As(err, &pe) {
			return m.printProblems(filepath.Join(dirs[0], "policy.yaml"), err)
		}
		if err != nil {
			return err
		}
		return m.printBounds(p.Bounds(w))
	case "apply":
		return m.runPolicyApply(ctx, args[1:])
	case "show":
		return m.runPolicyShow(ctx, args[1:])
	case "replay":
		return m.runPolicyReplay(ctx, args[1:])
	case "evaluate":
		fs := m.newFlagSet("policy evaluate")
		cred := m.credentialFlag(fs)
		in := intentFlags(fs)
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if in.Account == "" || in.To == "" {
			return usagef("policy evaluate needs --account and --to")
		}
		return m.do(*cred, func(c *client.Client) (any, error) { return c.Evaluate(ctx, *in) })
	case "propose":
		fs := m.newFlagSet("policy propose")
		cred := m.credentialFlag(fs)
		why := fs.String("rationale", "", "why the change is made (the approvers read it)")
		key := fs.String("idempotency-key", "", "makes a retry return the first answer")
		if err := parseOneArg(fs, args[1:], "FILE"); err != nil {
			return err
		}
		src, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return err
		}
		return m.do(*cred, func(c *client.Client) (any, error) {
			return c.ProposePolicy(ctx, client.PolicyRequest{Policy: string(src), Rationale: *why}, *key)
		})
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
	return usagef("unknown policy subcommand %q (want %s)", args[0], policyUsage)
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

// openData opens the data directory's store for an operator command.
func (m *Main) openData(dir string) (Config, daoguard.Store, error) {
	if dir == "" {
		return Config{}, nil, usagef("give --data DIR")
	}
	cfg, err := loadConfig(dir, m.Getenv)
	if err != nil {
		return cfg, nil, err
	}
	st, err := openStore(cfg, dir)
	return cfg, st, err
}

// runPolicyApply loads the first policy: the operator's bootstrap. Later
// changes go through the API as actions the council approves.
func (m *Main) runPolicyApply(ctx context.Context, args []string) error {
	fs := m.newFlagSet("policy apply")
	dir := fs.String("data", "", "data directory (required)")
	if err := parseOneArg(fs, args, "FILE"); err != nil {
		return err
	}
	src, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	if _, err := policy.Parse(src); err != nil {
		return m.printProblems(fs.Arg(0), err)
	}
	cfg, st, err := m.openData(*dir)
	if err != nil {
		return err
	}
	defer st.Close()
	pv, err := service.New(st, daoguard.DenyAll{}, nil, "cli").LoadFirstPolicy(ctx, cfg.Org.ID, string(src))
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "policy version %d is in force for %s (sha256:%s)\n", pv.Version, cfg.Org.ID, pv.Digest)
	return nil
}

// runPolicyShow prints the policy in force (or a given version).
func (m *Main) runPolicyShow(ctx context.Context, args []string) error {
	fs := m.newFlagSet("policy show")
	dir := fs.String("data", "", "data directory (required)")
	version := fs.Int("version", 0, "version to show (default: the one in force)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, st, err := m.openData(*dir)
	if err != nil {
		return err
	}
	defer st.Close()
	var pv *daoguard.PolicyVersion
	err = st.View(ctx, func(tx daoguard.Tx) (err error) { pv, err = tx.Policy(ctx, cfg.Org.ID, *version); return err })
	if err != nil {
		if daoguard.IsNotFound(err) && *version == 0 {
			return &daoguard.Error{Code: daoguard.CodeNotFound, Message: "no policy is loaded: every action is denied", Hint: "load one with 'daoguard policy apply --data DIR FILE'"}
		}
		return err
	}
	fmt.Fprintf(m.Stderr, "# version %d, sha256:%s, by %s at %s\n", pv.Version, pv.Digest, pv.By, pv.Created.Format(time.RFC3339))
	fmt.Fprint(m.Stdout, pv.Source)
	return nil
}

// runPolicyReplay re-evaluates the stored decisions under a candidate
// policy and prints those that would change: shadow mode before proposing.
func (m *Main) runPolicyReplay(ctx context.Context, args []string) error {
	fs := m.newFlagSet("policy replay")
	dir := fs.String("data", "", "data directory (required)")
	candidate := fs.String("candidate", "", "the candidate policy document (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *candidate == "" {
		return usagef("policy replay needs --candidate FILE")
	}
	src, err := os.ReadFile(*candidate)
	if err != nil {
		return err
	}
	cand, err := policy.Parse(src)
	if err != nil {
		return m.printProblems(*candidate, err)
	}
	cfg, st, err := m.openData(*dir)
	if err != nil {
		return err
	}
	defer st.Close()
	// The registry serve decides with: calls a configured ABI decodes
	// must not look opaque to the replay.
	svc := service.New(st, daoguard.DenyAll{}, nil, "cli")
	if svc.Contracts, err = loadContracts(*dir, cfg.Contracts); err != nil {
		return err
	}
	rep, err := svc.Replay(ctx, cfg.Org.ID, cand)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	if len(rep.Changes) > 0 {
		fmt.Fprintln(tw, "ACTION\tTIME\tPRINCIPAL\tWHAT\tWAS\tWOULD BE\tBECAUSE")
	}
	for _, c := range rep.Changes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Action.ID, c.Action.Created.Format(time.RFC3339), c.Action.PrincipalID,
			summarise(c.Action), c.Was.Verdict, c.Would.Verdict, codes(c.Would))
	}
	tw.Flush()
	fmt.Fprintf(m.Stdout, "%d decisions replayed under %s: %d would change (%d looser, %d stricter)\n",
		rep.Actions, *candidate, len(rep.Changes), rep.Looser, rep.Stricter)
	return nil
}

func summarise(a *daoguard.Action) string {
	d := a.Decoded
	switch d.Kind {
	case daoguard.KindTransfer:
		return fmt.Sprintf("transfer %s %s to %s", daoguard.FormatAmount(d.Amount.Int(), d.Decimals), d.Asset, d.To)
	case daoguard.KindCall:
		return fmt.Sprintf("%s %s from %s", d.Operation, d.To, d.Account)
	}
	return d.Kind.String()
}

func codes(d daoguard.Decision) string {
	var out []string
	for _, r := range d.Reasons {
		if r.Code != policy.ReasonPrice && r.Code != policy.ReasonRuleMatched {
			out = append(out, r.Code)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ",")
}

// printBounds prints bounds as a table: who, over what window, in what,
// the most it moves without a human, and what binds it.
func (m *Main) printBounds(bs []policy.Bound) error {
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "principal\twindow\tasset\twithout a human, at most\tbound by")
	for _, b := range bs {
		who := b.Principal
		if who == "" {
			who = "all agents"
		} else if b.Name != "" && b.Name != b.Principal {
			who = b.Name + " (" + b.Principal + ")"
		}
		amt := b.Amount
		if b.Unbounded {
			amt = "unbounded"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", who, b.Period, b.Asset, amt, b.By)
	}
	return tw.Flush()
}
