// Command train fits screening's statistical model (make model): a hashed
// n-gram logistic regression over sentences, trained on the training
// split (screen.HeldOut) of ../shared/data/screening and on daoguard's own
// attack texts (attacks.jsonl here, none of them in the benchmark). It
// writes internal/screen/model.bin, which the binary embeds, and prints
// how the model does on the held-out split.
//
// Training is deterministic: the same data give the same model.bin, byte
// for byte (TestModelReproducible checks the shipped one when the data
// are present).
package main

import (
	"bytes"
	_ "embed"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/daoguard/daoguard/internal/screen"
)

//go:embed attacks.jsonl
var ownAttacks []byte

//go:embed benign.jsonl
var ownBenign []byte

func main() {
	data := flag.String("data", "../shared/data/screening", "directory of the screening sets")
	out := flag.String("out", "internal/screen/model.bin", "where to write the model")
	flag.Parse()
	m, summary, err := Build(*data)
	if err != nil {
		fmt.Fprintln(os.Stderr, "train:", err)
		os.Exit(1)
	}
	b, _ := m.MarshalBinary()
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "train:", err)
		os.Exit(1)
	}
	fmt.Print(summary)
	fmt.Printf("wrote %s (%d bytes)\n", *out, len(b))
}

// Grid is the settings tried; Build picks one on a validation slice of
// the training split (never on the held-out split), then trains on the
// whole training split with it.
var Grid = func() (g []setting) {
	// Strongest regularisation and highest floor first: on a tie, the
	// smoother, more cautious model wins.
	for _, floor := range []float32{0.85, 0.7, 0.5} {
		for _, l2 := range []float64{3e-3, 1e-3, 3e-4, 1e-4} {
			for _, pw := range []float64{5, 20} {
				g = append(g, setting{screen.TrainOptions{Epochs: 12, Rate: 0.5, L2: l2, PosWeight: pw, Seed: 1}, floor})
			}
		}
	}
	return g
}()

// setting is one point of the grid: training options and the lowest
// threshold the model may have.
type setting struct {
	screen.TrainOptions
	Floor float32
}

// Limits on the training negatives flagged, which set the threshold:
// a DAO's own documents must almost never be flagged by the model alone.
const (
	maxAaveFPR      = 0.0
	maxNotInjectFPR = 0.02
)

// validation is the slice of the training split used to pick settings.
func validation(id string) bool {
	h := uint32(2166136261)
	for i := len(id) - 1; i >= 0; i-- { // another hash than HeldOut's
		h = (h ^ uint32(id[i])) * 16777619
	}
	return h%5 == 0
}

// Build trains on dir's training split and returns the model and a report.
func Build(dir string) (*screen.Model, string, error) {
	load := func(name string) ([]screen.Record, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		return screen.ReadRecords(bytes.NewReader(b))
	}
	aave, err := load("aave_proposals.jsonl")
	if err != nil {
		return nil, "", err
	}
	notInject, err := load("notinject.jsonl")
	if err != nil {
		return nil, "", err
	}
	bipia, err := load("bipia_attacks_train.jsonl")
	if err != nil {
		return nil, "", err
	}
	own, err := screen.ReadRecords(bytes.NewReader(ownAttacks))
	if err != nil {
		return nil, "", err
	}
	benign, err := screen.ReadRecords(bytes.NewReader(ownBenign))
	if err != nil {
		return nil, "", err
	}
	train := func(rs []screen.Record, val bool) (out []screen.Record) {
		for _, r := range rs {
			if !screen.HeldOut(r.ID) && validation(r.ID) == val {
				out = append(out, r)
			}
		}
		return out
	}
	all := func(rs []screen.Record) []screen.Record { return append(train(rs, false), train(rs, true)...) }
	segs := func(rs ...[]screen.Record) [][]byte {
		var out [][]byte
		for _, set := range rs {
			for _, r := range set {
				out = append(out, screen.Segments(r.Text)...)
			}
		}
		return out
	}
	// fit trains with o and sets the threshold on the benign records it
	// trained on.
	fit := func(o setting, attacks, aaveTr, niTr []screen.Record) *screen.Model {
		m := screen.Train(segs(attacks, own), segs(aaveTr, niTr, benign), o.TrainOptions)
		m.Threshold = 0.5
		thr := func(rs []screen.Record, fpr float64) float32 {
			var ps []float64
			for _, r := range rs {
				ps = append(ps, screen.MaxProb(m, r.Text))
			}
			slices.Sort(ps)
			slices.Reverse(ps)
			allowed := int(fpr * float64(len(ps)))
			if allowed >= len(ps) {
				return 0.5
			}
			return float32(ps[allowed]) + 1e-6
		}
		m.Threshold = min(0.999, max(o.Floor, thr(aaveTr, maxAaveFPR), thr(niTr, maxNotInjectFPR), thr(benign, 0)))
		return m
	}
	// Validation: BIPIA instructions planted in the middle of validation
	// Aave proposals must be found; validation benign records must not.
	var summary strings.Builder
	best, bestScore := Grid[0], -1.0
	for _, o := range Grid {
		m := fit(o, train(bipia, false), train(aave, false), train(notInject, false))
		carriers := train(aave, true)
		found, n := 0, 0
		for i, b := range train(bipia, true) {
			c := carriers[i%len(carriers)].Text
			if screen.MaxProb(m, c[:len(c)/2]+"\n\n"+b.Text+"\n\n"+c[len(c)/2:]) >= float64(m.Threshold) {
				found++
			}
			n++
		}
		fp := 0
		for _, r := range append(train(aave, true), train(notInject, true)...) {
			if screen.MaxProb(m, r.Text) >= float64(m.Threshold) {
				fp++
			}
		}
		score := float64(found)/float64(max(n, 1)) - 2*float64(fp)/float64(len(train(aave, true))+len(train(notInject, true)))
		fmt.Fprintf(&summary, "  floor %.2f l2 %-6g pos_weight %-3g: validation recall %d/%d, false positives %d; score %.3f\n", o.Floor, o.L2, o.PosWeight, found, n, fp, score)
		if score > bestScore {
			best, bestScore = o, score
		}
	}
	m := fit(best, all(bipia), all(aave), all(notInject))
	head := fmt.Sprintf("chose floor %.2f, l2 %g, pos_weight %g; trained on %d attack and %d benign records; threshold %.4f\n",
		best.Floor, best.L2, best.PosWeight, len(all(bipia))+len(own), len(all(aave))+len(all(notInject))+len(benign), m.Threshold)
	return m, head + summary.String(), nil
}
