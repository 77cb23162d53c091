package main

import (
	"context"
	"io"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/httpapi"
	"github.com/daoguard/daoguard/internal/screen"
)

// errFlagged makes daoguard screen exit 1 for a flagged text, after the
// result is printed.
var errFlagged = &daoguard.Error{Code: daoguard.CodeInvalid, Message: "the text reads as prompt injection"}

// runScreen: daoguard screen < FILE. Screens the text on standard input,
// locally, as POST /v1/screen does, and prints the result; exit 1 if the
// text is flagged, so scripts can gate on it.
func (m *Main) runScreen(_ context.Context, args []string, stdin io.Reader) error {
	if len(args) > 0 && args[0] == "bench" {
		return m.runScreenBench(args[1:])
	}
	fs := m.newFlagSet("screen")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(stdin, screen.MaxText+1))
	if err != nil {
		return err
	}
	if len(b) > screen.MaxText {
		return &daoguard.Error{Code: daoguard.CodeInvalid, Message: "the text is longer than 1 MiB"}
	}
	if len(b) == 0 {
		return usagef("screen reads the text to screen from standard input")
	}
	r := screen.Text(string(b))
	if err := m.print(httpapi.ScreenResult(r)); err != nil {
		return err
	}
	if r.Flagged {
		return errFlagged
	}
	return nil
}

// runScreenBench: daoguard screen bench --data DIR. Recall and false
// positives, with 95% Wilson intervals, over the screening sets in DIR
// (../shared/data/screening in full, testdata/screening-sample in CI).
func (m *Main) runScreenBench(args []string) error {
	fs := m.newFlagSet("screen bench")
	dir := fs.String("data", "", "directory of aave_proposals.jsonl, notinject.jsonl, bipia_attacks_train.jsonl (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usagef("screen bench needs --data DIR")
	}
	rep, err := screen.Benchmark(*dir)
	if err != nil {
		return &daoguard.Error{Code: daoguard.CodeInvalid, Message: "screening sets: " + err.Error()}
	}
	rep.Write(m.Stdout)
	return nil
}
