// Command daoguard is the gateway through which AI agents act on a DAO's
// treasury: `daoguard init` creates a data directory, `daoguard serve` runs
// the API, `daoguard version` says what is running. Only this package reads
// configuration and wires the other packages together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/daoguard/daoguard"
)

// Exit codes (API.md).
const (
	exitOK      = 0
	exitFailed  = 1 // a check failed or the operation was refused
	exitUsage   = 2 // bad usage
	usageHeader = `daoguard — guardrails for AI agents acting on a DAO treasury

Usage:
  daoguard init    --data DIR [--org-name NAME] [--environment test|live] [--store URL]
  daoguard serve   --data DIR [--addr 127.0.0.1:8787] [--store URL] [--dev [--dev-rpc URL]]
                   [--tls-cert FILE --tls-key FILE] [--insecure-listen]
  daoguard accounts add --data DIR --name N --kind safe --address 0x… | --kind wallet
  daoguard assets  add --data DIR --symbol S [--address 0x…] --decimals D
  daoguard accounts|assets list --data DIR
  daoguard action  submit|get|list        --credential FILE ...
  daoguard approve|reject|veto --id ID    --credential FILE
  daoguard pause|resume                   --credential FILE [--reason TEXT]
  daoguard principals create|list|autonomy --credential FILE ...
  daoguard keys    create|list|rotate|revoke --credential FILE ...
  daoguard keys    scan PATH
  daoguard keys    rotate-master --data DIR [--retire]
  daoguard policy  check FILE | test [-v] DIR | diff OLD NEW
  daoguard policy  apply --data DIR FILE    (the first policy only)
  daoguard policy  show --data DIR [--version N]
  daoguard policy  replay --data DIR --candidate FILE
  daoguard policy  propose --credential FILE [--rationale TEXT] FILE
  daoguard policy  evaluate --credential FILE --account A --to ADDR ...
  daoguard audit   verify|checkpoint --data DIR   (verify: exit 1 and the first bad entry if tampered)
  daoguard audit   export --data DIR --entries FILE --checkpoint FILE
  daoguard audit   verify --entries FILE --checkpoint FILE --key audit.pub
  daoguard audit   show --entries FILE [--from N] [--limit M]
  daoguard audit   proof --credential FILE --index N --key audit.pub [--trust FILE]
  daoguard audit   pseudonym --data DIR ADDRESS   (what the log records for a source address)
  daoguard screen < FILE                  (prompt-injection screening; exit 1 if flagged)
  daoguard screen bench --data DIR        (recall and false positives with Wilson intervals)
  daoguard probe   run --credential FILE AGENT   (alignment probes now; exit 1 if failed)
  daoguard probe   key --data DIR          (the key agents check probe questions with)
  daoguard probe   suite [FILE]            (print the reference suite, or check FILE)
  daoguard risk    --credential FILE AGENT (an agent's risk state and history)
  daoguard report  bias --data DIR --endpoint URL --proposals FILE [--proposers FILE]
                   (swap-the-proposer and swap-the-order probes; exit 1 if biased)
  daoguard demo    [--keep]                (the tour on a temporary data dir and the in-process chain)
  daoguard version

Run 'daoguard COMMAND -h' for a command's flags.
`
)

// usageError marks bad usage: wrong flags, missing arguments.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// Main holds what a run of the command needs, so tests can run it in-process.
type Main struct {
	Stdin          io.Reader // nil: empty
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

func main() {
	m := &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := m.Run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// Run executes one command line and returns the exit code. Errors are
// printed to Stderr as one line, with a hint where one helps.
func (m *Main) Run(ctx context.Context, args []string) int {
	err := m.run(ctx, args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(m.Stderr, "daoguard: %s (see 'daoguard -h')\n", ue.msg)
		return exitUsage
	}
	fmt.Fprintf(m.Stderr, "daoguard: %s\n", oneLine(err))
	var de *daoguard.Error
	if errors.As(err, &de) {
		for _, d := range de.Details {
			fmt.Fprintf(m.Stderr, "  %s\n", d)
		}
	}
	return exitFailed
}

func (m *Main) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usageHeader)
		return usagef("no command given")
	}
	switch args[0] {
	case "init":
		return m.runInit(ctx, args[1:])
	case "serve":
		return m.runServe(ctx, args[1:])
	case "action":
		return m.runAction(ctx, args[1:])
	case "approve", "reject", "veto":
		return m.runVote(ctx, args[0], args[1:])
	case "pause", "resume":
		return m.runControl(ctx, args[0], args[1:])
	case "keys":
		return m.runKeys(ctx, args[1:])
	case "principals":
		return m.runPrincipals(ctx, args[1:])
	case "policy":
		return m.runPolicy(ctx, args[1:])
	case "accounts":
		return m.runAccounts(ctx, args[1:])
	case "assets":
		return m.runAssets(ctx, args[1:])
	case "audit":
		return m.runAudit(ctx, args[1:])
	case "screen":
		in := m.Stdin
		if in == nil {
			in = strings.NewReader("")
		}
		return m.runScreen(ctx, args[1:], in)
	case "probe":
		return m.runProbe(ctx, args[1:])
	case "risk":
		return m.runRisk(ctx, args[1:])
	case "report":
		return m.runReport(ctx, args[1:])
	case "demo":
		return m.runDemo(ctx, args[1:])
	case "version", "--version":
		return m.runVersion(args[1:])
	case "-h", "--help", "help":
		fmt.Fprint(m.Stdout, usageHeader)
		return nil
	}
	return usagef("unknown command %q", args[0])
}

// newFlagSet returns a flag set whose parse errors become usage errors.
func (m *Main) newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("daoguard "+name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// parseArgs parses flags and arguments in any order ("bounds DIR
// --credential F" as well as "bounds --credential F DIR") and returns the
// arguments.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// parseOneArg parses flags followed by exactly one argument, named what.
func parseOneArg(fs *flag.FlagSet, args []string, what string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	if fs.NArg() != 1 {
		return usagef("%s takes one %s", strings.TrimPrefix(fs.Name(), "daoguard "), what)
	}
	return nil
}

// oneLine renders err for the terminal: a daoguard error's message and hint,
// anything else as is, on one line.
func oneLine(err error) string {
	var e *daoguard.Error
	if errors.As(err, &e) {
		s := e.Message
		if e.Field != "" {
			s = e.Field + ": " + s
		}
		if e.Hint != "" {
			s += " (hint: " + e.Hint + ")"
		}
		return s
	}
	s := err.Error()
	for i := range len(s) {
		if s[i] == '\n' {
			return s[:i] + " …"
		}
	}
	return s
}

func (m *Main) runVersion(args []string) error {
	fs := m.newFlagSet("version")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "daoguard %s (commit %s)\n", daoguard.Version, daoguard.Commit)
	return nil
}
