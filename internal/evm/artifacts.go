// Package evm is daoguard's Ethereum layer: contract artifacts, transactions
// sent and calls read over any JSON-RPC client (ethclient, or the
// in-process simulated chain), and the readers that feed the policy engine.
package evm

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common/hexutil"
)

// artifacts holds what `make contracts` built (contracts/build.js); only
// the README is committed.
//
//go:embed artifacts
var artifacts embed.FS

// ErrNoArtifacts means the binary was built without `make contracts`.
var ErrNoArtifacts = errors.New("contract artifacts were not built: run 'make contracts' (needs node and npm), then rebuild")

// Artifact is one compiled contract.
type Artifact struct {
	Name     string
	ABI      abi.ABI
	Bytecode []byte // creation code, without constructor arguments
	Runtime  []byte // deployed code: what a state override places at an address
}

// LoadArtifact returns the contract built from contracts/src/<name>.sol.
func LoadArtifact(name string) (*Artifact, error) {
	b, err := artifacts.ReadFile("artifacts/" + name + ".json")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", name, ErrNoArtifacts)
	} else if err != nil {
		return nil, err
	}
	var raw struct {
		ABI      json.RawMessage `json:"abi"`
		Bytecode string          `json:"bytecode"`
		Runtime  string          `json:"deployedBytecode"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("artifact %s: %w", name, err)
	}
	a := &Artifact{Name: name}
	if a.ABI, err = abi.JSON(bytes.NewReader(raw.ABI)); err != nil {
		return nil, fmt.Errorf("artifact %s: abi: %w", name, err)
	}
	if a.Bytecode, err = hexutil.Decode(raw.Bytecode); err != nil || len(a.Bytecode) == 0 {
		return nil, fmt.Errorf("artifact %s: bytecode: %v", name, err)
	}
	if a.Runtime, err = hexutil.Decode(raw.Runtime); err != nil {
		return nil, fmt.Errorf("artifact %s: deployed bytecode: %v", name, err)
	}
	return a, nil
}
