package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/auth"
	"github.com/daoguard/daoguard/internal/probe"
	"github.com/daoguard/daoguard/internal/service"
)

// errProbeFailed makes daoguard probe run exit 1 when a run failed, after
// the results are printed.
var errProbeFailed = &daoguard.Error{Code: daoguard.CodeInvalid, Message: "the agent failed its alignment probes"}

// loadProbes reads the suites of daoguard.yaml's probes: section.
func loadProbes(dir string, cfg Config) ([]service.ProbeTarget, error) {
	var out []service.ProbeTarget
	for i, pc := range cfg.Probes {
		var s *probe.Suite
		if pc.Suite == "reference" {
			s = probe.Reference()
		} else {
			var err error
			if s, err = readSuite(filepath.Join(dir, pc.Suite)); err != nil {
				return nil, &daoguard.Error{Code: daoguard.CodeConfig, Field: fmt.Sprintf("probes[%d].suite", i), Message: daoguard.ErrorMessage(err)}
			}
		}
		lower := daoguard.AutonomySupervised
		if pc.LowerTo == "suspended" {
			lower = daoguard.AutonomySuspended
		}
		out = append(out, service.ProbeTarget{Org: cfg.Org.ID, Agent: pc.Agent, Endpoint: pc.Endpoint, Suite: s, Every: pc.Every, LowerTo: lower})
	}
	return out, nil
}

func readSuite(path string) (*probe.Suite, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &daoguard.Error{Code: daoguard.CodeInvalid, Message: fmt.Sprintf("cannot read the suite: %v", err)}
	}
	return probe.Parse(bytes.NewReader(b))
}

// probeSigner derives the probe signing key from the audit key file.
func probeSigner(dir string, cfg Config) (auth.Signer, probe.Key, error) {
	return outgoingSigner(dir, cfg, probe.NewSigner)
}

// alertSigner derives the alert signing key from the audit key file.
func alertSigner(dir string, cfg Config) (auth.Signer, probe.Key, error) {
	return outgoingSigner(dir, cfg, probe.NewAlertSigner)
}

func outgoingSigner(dir string, cfg Config, derive func([]byte) (auth.Signer, probe.Key, error)) (auth.Signer, probe.Key, error) {
	b, err := os.ReadFile(filepath.Join(dir, cfg.AuditKeyFile))
	if err != nil {
		return nil, probe.Key{}, &daoguard.Error{Code: daoguard.CodeConfig, Message: "audit key: " + err.Error()}
	}
	return derive([]byte(strings.TrimSpace(string(b))))
}

// runProbe: daoguard probe run|key|suite.
func (m *Main) runProbe(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("probe needs a subcommand: run, key or suite")
	}
	fs := m.newFlagSet("probe " + args[0])
	switch args[0] {
	case "run":
		cred := m.credentialFlag(fs)
		asJSON := fs.Bool("json", false, "print the runs as JSON")
		if err := parseOneArg(fs, args[1:], "AGENT"); err != nil {
			return err
		}
		c, err := m.loadClient(*cred)
		if err != nil {
			return err
		}
		out, err := c.RunProbes(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		runs := out.Runs
		failed := false
		for _, r := range runs {
			failed = failed || !r.Passed
		}
		if *asJSON {
			if err := m.print(out); err != nil {
				return err
			}
		} else {
			if out.Running {
				fmt.Fprintln(m.Stdout, out.Detail)
			}
			for _, r := range runs {
				verdict := "PASSED"
				if !r.Passed {
					verdict = "FAILED"
				}
				fmt.Fprintf(m.Stdout, "suite %s: %s, score %.2f (threshold %.2f), %d scenarios; audit log index %d\n", r.Suite, verdict, r.Score, r.Threshold, len(r.Outcomes), r.LogIndex)
				for _, o := range r.Failed() {
					crit := ""
					if o.Critical {
						crit = " (critical)"
					}
					fmt.Fprintf(m.Stdout, "  %-28s %-20s answered %q%s: %s\n", o.Scenario, o.Code, o.Decision, crit, o.Detail)
				}
				if r.Lowered {
					fmt.Fprintf(m.Stdout, "agent %s moved to %s; only a human moves it back\n", r.Agent, r.Autonomy)
				}
			}
		}
		if failed {
			return errProbeFailed
		}
		if out.Error != "" {
			return &daoguard.Error{Code: daoguard.CodeUnavailable, Message: out.Error}
		}
		return nil
	case "key":
		dir := fs.String("data", "", "data directory (required)")
		alerts := fs.Bool("alerts", false, "print the key alerts to alert_url are signed with instead")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *dir == "" {
			return usagef("probe key needs --data DIR")
		}
		cfg, err := loadConfig(*dir, m.Getenv)
		if err != nil {
			return err
		}
		derive := probeSigner
		if *alerts {
			derive = alertSigner
		}
		_, key, err := derive(*dir, cfg)
		if err != nil {
			return err
		}
		return m.print(key)
	case "suite":
		if err := fs.Parse(args[1:]); err != nil {
			return usagef("%v", err)
		}
		switch fs.NArg() {
		case 0: // the reference suite, to copy and adapt
			_, err := m.Stdout.Write(probe.ReferenceYAML())
			return err
		case 1:
			s, err := readSuite(fs.Arg(0))
			if err != nil {
				return err
			}
			fmt.Fprintf(m.Stdout, "suite %s: %d scenarios, threshold %.2f, sha256 %s\n", s.Name, len(s.Scenarios), s.Threshold, s.Digest())
			return nil
		}
		return usagef("probe suite takes at most one FILE")
	}
	return usagef("unknown probe subcommand %q (want run, key or suite)", args[0])
}

// runRisk: daoguard risk AGENT — the agent's risk state and history.
func (m *Main) runRisk(ctx context.Context, args []string) error {
	fs := m.newFlagSet("risk")
	cred := m.credentialFlag(fs)
	if err := parseOneArg(fs, args, "AGENT"); err != nil {
		return err
	}
	c, err := m.loadClient(*cred)
	if err != nil {
		return err
	}
	st, err := c.Risk(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	return m.print(st)
}
