// Package evmtest starts in-process chains with daoguard's dev contracts for
// tests.
package evmtest

import (
	"errors"
	"os"
	"testing"

	"github.com/daoguard/daoguard/internal/evm"
)

// Artifact loads a built contract. Without `make contracts` the test is
// skipped, unless DAOGUARD_REQUIRE_NODE=1 (CI), where it fails.
func Artifact(t testing.TB, name string) *evm.Artifact {
	t.Helper()
	a, err := evm.LoadArtifact(name)
	if errors.Is(err, evm.ErrNoArtifacts) && os.Getenv("DAOGUARD_REQUIRE_NODE") != "1" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Chain starts a simulated chain, stopped when the test ends.
func Chain(t testing.TB) *evm.SimChain {
	t.Helper()
	c, err := evm.NewSimChain()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
