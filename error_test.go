package daoguard_test

import (
	"errors"
	"fmt"
	"regexp"
	"testing"

	"github.com/daoguard/daoguard"
)

func TestErrorCode(t *testing.T) {
	e := daoguard.Errorf(daoguard.CodeNotFound, "action %s not found", "x")
	wrapped := fmt.Errorf("context: %w", e)
	for _, tc := range []struct {
		err  error
		code daoguard.Code
		msg  string
	}{
		{nil, "", ""},
		{e, daoguard.CodeNotFound, "action x not found"},
		{wrapped, daoguard.CodeNotFound, "action x not found"},
		{errors.New("pq: relation secret_table does not exist"), daoguard.CodeInternal, "internal error"},
	} {
		if got := daoguard.ErrorCode(tc.err); got != tc.code {
			t.Errorf("ErrorCode(%v) = %q, want %q", tc.err, got, tc.code)
		}
		if tc.err != nil && daoguard.ErrorMessage(tc.err) != tc.msg {
			t.Errorf("ErrorMessage(%v) = %q, want %q (internal detail must not leak)", tc.err, daoguard.ErrorMessage(tc.err), tc.msg)
		}
	}
}

func TestCodesAreStable(t *testing.T) {
	re := regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	seen := map[daoguard.Code]bool{}
	for _, c := range daoguard.Codes {
		if !re.MatchString(string(c)) || seen[c] {
			t.Errorf("code %q is not unique UPPER_SNAKE_CASE", c)
		}
		seen[c] = true
	}
}
