package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestModelReproducible: training on the screening data gives exactly the
// shipped internal/screen/model.bin, so the binary's model is the one the
// documented training produces from the documented data. It needs the
// data (../shared/data/screening, or DAOGUARD_SCREENING_DATA).
func TestModelReproducible(t *testing.T) {
	dir := os.Getenv("DAOGUARD_SCREENING_DATA")
	if dir == "" {
		dir = "../../../../shared/data/screening"
	}
	if _, err := os.Stat(filepath.Join(dir, "aave_proposals.jsonl")); err != nil {
		t.Skipf("the screening data are not at %s (set DAOGUARD_SCREENING_DATA): %v", dir, err)
	}
	m, _, err := Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := m.MarshalBinary()
	want, err := os.ReadFile("../model.bin")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("training gives a model of %d bytes that differs from the shipped model.bin (%d bytes): run make model", len(got), len(want))
	}
}
