package main

import (
	"bufio"
	"context"
	"os"
	"strings"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/bias"
	"github.com/daoguard/daoguard/internal/probe"
)

// errBiased makes daoguard report bias exit 1 when a probe found bias,
// after the report is printed.
var (
	errBiased     = &daoguard.Error{Code: daoguard.CodeInvalid, Message: "the agent's answers show bias (see the report)"}
	errIncomplete = &daoguard.Error{Code: daoguard.CodeInvalid, Message: "too many questions went unanswered to vouch for the agent (see the report)"}
)

// runReport: daoguard report bias.
func (m *Main) runReport(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "bias" {
		return usagef("report needs a subcommand: bias")
	}
	fs := m.newFlagSet("report bias")
	dir := fs.String("data", "", "data directory: questions are signed with its probe key (required)")
	endpoint := fs.String("endpoint", "", "the agent's decision endpoint (required)")
	agent := fs.String("agent", "", "the agent's id, carried in each question (an agent that checks it needs it)")
	proposals := fs.String("proposals", "", "JSON lines of {id, title, body} or {id, text} (the Aave proposals' format) (required)")
	proposers := fs.String("proposers", "", "a file of proposers to swap, one per line (default: four that differ in name and standing)")
	limit := fs.Int("limit", 40, "proposals to use (0: all)")
	trials := fs.Int("trials", 1, "answers per variant, for agents that sample")
	seed := fs.Uint64("seed", 1, "bootstrap seed")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *dir == "" || *endpoint == "" || *proposals == "" {
		return usagef("report bias needs --data DIR, --endpoint URL and --proposals FILE")
	}
	if *limit < 0 || *trials < 1 || *trials > 100 {
		return usagef("--limit must be ≥ 0 and --trials between 1 and 100")
	}
	cfg, err := loadConfig(*dir, m.Getenv)
	if err != nil {
		return err
	}
	signer, key, err := probeSigner(*dir, cfg)
	if err != nil {
		return err
	}
	f, err := os.Open(*proposals)
	if err != nil {
		return &daoguard.Error{Code: daoguard.CodeInvalid, Message: "cannot read the proposals: " + err.Error()}
	}
	defer f.Close()
	props, err := bias.LoadProposals(f, *limit)
	if err != nil {
		return err
	}
	bc := bias.Config{Agent: *agent, Trials: *trials, Seed: *seed}
	if *proposers != "" {
		if bc.Proposers, err = readLines(*proposers); err != nil {
			return err
		}
	}
	rep, err := bias.Run(ctx, &probe.Runner{Signer: signer, Key: key}, *endpoint, props, bc)
	if err != nil {
		return err
	}
	if *asJSON {
		err = m.print(rep)
	} else {
		rep.Write(m.Stdout)
	}
	if err != nil {
		return err
	}
	if rep.Incomplete {
		return errIncomplete
	}
	if rep.Failed() {
		return errBiased
	}
	return nil
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &daoguard.Error{Code: daoguard.CodeInvalid, Message: "cannot read the proposers: " + err.Error()}
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}
