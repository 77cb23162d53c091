package storetest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"sync"

	"github.com/daoguard/daoguard"
)

// Ledger is an executor whose side effect is one fsynced line per attempt in
// a file. It is idempotent per attempt, as the Executor contract requires,
// and the file outlives a killed process, so tests can count effects.
type Ledger struct {
	Path string
	// BeforeEffect and AfterEffect, if set, run around the write: crash
	// tests park the process there and kill it.
	BeforeEffect, AfterEffect func()
	// Fail, if set, is returned by Execute after the effect (outcome unknown
	// to the caller, though the effect happened) when FailAfter, or before
	// it otherwise.
	Fail      error
	FailAfter bool
	// Revert makes the effect fail the way a reverted transaction does: it
	// happens (and is recorded) but reports Success false.
	Revert bool

	mu sync.Mutex
}

type ledgerLine struct {
	Attempt  string `json:"attempt"`
	Action   string `json:"action"`
	Reverted bool   `json:"reverted,omitempty"`
}

func (ln ledgerLine) result() daoguard.ExecResult {
	if ln.Reverted {
		return daoguard.ExecResult{Success: false, TxHash: "ledger:" + ln.Attempt, Detail: "execution reverted"}
	}
	return daoguard.ExecResult{Success: true, TxHash: "ledger:" + ln.Attempt}
}

var _ daoguard.Executor = (*Ledger)(nil)

// Execute writes the attempt's line unless it is already there.
func (l *Ledger) Execute(_ context.Context, a *daoguard.Action, attempt string) (daoguard.ExecResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines, err := l.read()
	if err != nil {
		return daoguard.ExecResult{}, err
	}
	for _, ln := range lines {
		if ln.Attempt == attempt {
			return ln.result(), nil
		}
	}
	if l.Fail != nil && !l.FailAfter {
		return daoguard.ExecResult{}, l.Fail
	}
	if l.BeforeEffect != nil {
		l.BeforeEffect()
	}
	f, err := os.OpenFile(l.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return daoguard.ExecResult{}, err
	}
	line := ledgerLine{Attempt: attempt, Action: a.ID, Reverted: l.Revert}
	b, _ := json.Marshal(line)
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return daoguard.ExecResult{}, err
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return daoguard.ExecResult{}, err
	}
	if l.AfterEffect != nil {
		l.AfterEffect()
	}
	if l.Fail != nil && l.FailAfter {
		return daoguard.ExecResult{}, l.Fail
	}
	return line.result(), nil
}

// Lookup reports whether the attempt's line exists.
func (l *Ledger) Lookup(_ context.Context, _ *daoguard.Action, attempt string) (daoguard.ExecResult, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines, err := l.read()
	if err != nil {
		return daoguard.ExecResult{}, false, err
	}
	for _, ln := range lines {
		if ln.Attempt == attempt {
			return ln.result(), true, nil
		}
	}
	return daoguard.ExecResult{}, false, nil
}

// Effects counts the effects recorded for an action.
func (l *Ledger) Effects(actionID string) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines, err := l.read()
	n := 0
	for _, ln := range lines {
		if ln.Action == actionID {
			n++
		}
	}
	return n, err
}

func (l *Ledger) read() ([]ledgerLine, error) {
	f, err := os.Open(l.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []ledgerLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ln ledgerLine
		if err := json.Unmarshal(sc.Bytes(), &ln); err != nil {
			return nil, err
		}
		out = append(out, ln)
	}
	return out, sc.Err()
}
