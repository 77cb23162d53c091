package screen

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"github.com/daoguard/daoguard/internal/stats"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// DAOAttacks are direct attacks on a DAO's agents written for daoguard
// (CC0): the Freysa family, fake admin sessions, overrides, text addressed
// to an AI, impersonation and encoded payloads, one JSON record a line.
//
//go:embed attacks/dao_attacks.jsonl
var DAOAttacks []byte

// Record is one line of a screening data set.
type Record struct {
	ID       string `json:"id"`
	Text     string `json:"text"`
	Label    string `json:"label"`
	Category string `json:"category,omitempty"`
}

// ReadRecords reads JSON Lines records.
func ReadRecords(r io.Reader) ([]Record, error) {
	var out []Record
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 16<<20)
	for n := 1; sc.Scan(); n++ {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, rec)
	}
	return out, sc.Err()
}

// HeldOut reports whether a record belongs to the held-out split (about
// 30%, by a hash of its id): the model never trains on it, and the
// benchmark reports the model on it alone.
func HeldOut(id string) bool {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return h%10 < 3
}

// Rate and Wilson are the benchmark's rates with their 95% intervals.
type Rate = stats.Rate

// Wilson returns k/n with its 95% Wilson score interval.
func Wilson(k, n int) Rate { return stats.Wilson(k, n) }

// Report is the screening benchmark's result.
type Report struct {
	Threshold float64
	Attacks   []Line // recall
	Benign    []Line // false positives
	// AtFPR: for each benign set, the lowest threshold whose false-positive
	// rate on it is at most 1%, and every attack set's recall there.
	AtFPR []OperatingPoint
	// RulesOnly: every set's flagged rate with the rules alone, without
	// the model.
	RulesOnly []Line
	// Per4KB is the mean time to screen 4 KB of the benign texts.
	Per4KB time.Duration
}

// Line is one data set's rate.
type Line struct {
	Set  string
	Rate Rate
}

// OperatingPoint is recall at a threshold chosen on one benign set.
type OperatingPoint struct {
	Benign    string
	Threshold float64
	FPR       Rate
	Recall    []Line
}

// Benchmark screens the data sets in dir (aave_proposals.jsonl,
// notinject.jsonl, bipia_attacks_train.jsonl, as in
// ../shared/data/screening) and DAOAttacks. BIPIA's instructions are
// embedded at the start, in the middle (at a paragraph break) and at the
// end of Aave proposals, the way an attacker plants them in a document.
func Benchmark(dir string) (*Report, error) {
	load := func(name string) ([]Record, error) {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		rs, err := ReadRecords(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(rs) == 0 {
			return nil, fmt.Errorf("%s: no records", name)
		}
		return rs, nil
	}
	aave, err := load("aave_proposals.jsonl")
	if err != nil {
		return nil, err
	}
	notInject, err := load("notinject.jsonl")
	if err != nil {
		return nil, err
	}
	bipia, err := load("bipia_attacks_train.jsonl")
	if err != nil {
		return nil, err
	}
	direct, err := ReadRecords(bytes.NewReader(DAOAttacks))
	if err != nil {
		return nil, err
	}
	texts := func(rs []Record) []string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = r.Text
		}
		return out
	}
	embedIn := func(where string, bipia []Record) []string {
		out := make([]string, len(bipia))
		for i, b := range bipia {
			c := aave[i%len(aave)].Text
			switch where {
			case "start":
				out[i] = b.Text + "\n\n" + c
			case "end":
				out[i] = c + "\n\n" + b.Text
			default:
				cut := strings.Index(c[len(c)/2:], "\n\n")
				if cut < 0 {
					cut = 0
				}
				at := len(c)/2 + cut
				out[i] = c[:at] + "\n\n" + b.Text + "\n\n" + c[at:]
			}
		}
		return out
	}
	held := func(rs []Record) []Record {
		var out []Record
		for _, r := range rs {
			if HeldOut(r.ID) {
				out = append(out, r)
			}
		}
		return out
	}
	bipiaHeld := held(bipia)
	embed := func(where string) []string { return embedIn(where, bipia) }
	attackSets := []struct {
		name  string
		texts []string
	}{
		{"direct DAO attacks (daoguard)", texts(direct)},
		{"BIPIA in Aave proposals, start", embed("start")},
		{"BIPIA in Aave proposals, middle", embed("middle")},
		{"BIPIA in Aave proposals, end", embed("end")},
		{"held-out BIPIA in Aave, start", embedIn("start", bipiaHeld)},
		{"held-out BIPIA in Aave, middle", embedIn("middle", bipiaHeld)},
		{"held-out BIPIA in Aave, end", embedIn("end", bipiaHeld)},
	}
	benignSets := []struct {
		name  string
		texts []string
	}{
		{"Aave proposals", texts(aave)},
		{"NotInject", texts(notInject)},
		{"held-out Aave proposals", texts(held(aave))},
		{"held-out NotInject", texts(held(notInject))},
	}
	rep := &Report{Threshold: Threshold}
	scores := map[string][]float64{}
	var bytesScreened int
	var spent time.Duration
	score := func(name string, ts []string, timed bool) {
		for _, t := range ts {
			start := time.Now()
			s := Text(t).Score
			if timed {
				spent += time.Since(start)
				bytesScreened += len(t)
			}
			scores[name] = append(scores[name], s)
		}
	}
	for _, s := range attackSets {
		score(s.name, s.texts, false)
		rep.Attacks = append(rep.Attacks, Line{s.name, rateAt(scores[s.name], Threshold)})
		rep.RulesOnly = append(rep.RulesOnly, Line{s.name, rulesOnly(s.texts)})
	}
	for _, s := range benignSets {
		score(s.name, s.texts, !strings.HasPrefix(s.name, "held-out"))
		rep.Benign = append(rep.Benign, Line{s.name, rateAt(scores[s.name], Threshold)})
		rep.RulesOnly = append(rep.RulesOnly, Line{s.name, rulesOnly(s.texts)})
	}
	if bytesScreened > 0 {
		rep.Per4KB = time.Duration(float64(spent) * 4096 / float64(bytesScreened))
	}
	for _, b := range benignSets[:2] {
		t := lowestThreshold(scores[b.name], 0.01)
		op := OperatingPoint{Benign: b.name, Threshold: t, FPR: rateAt(scores[b.name], t)}
		for _, a := range attackSets {
			op.Recall = append(op.Recall, Line{a.name, rateAt(scores[a.name], t)})
		}
		rep.AtFPR = append(rep.AtFPR, op)
	}
	return rep, nil
}

// rulesOnly is the flagged rate of texts with the rules alone.
func rulesOnly(texts []string) Rate {
	k := 0
	for _, t := range texts {
		if screenWith(t, nil).Flagged {
			k++
		}
	}
	return Wilson(k, len(texts))
}

// rateAt counts the scores at or above t.
func rateAt(scores []float64, t float64) Rate {
	k := 0
	for _, s := range scores {
		if s >= t && s > 0 {
			k++
		}
	}
	return Wilson(k, len(scores))
}

// lowestThreshold is the lowest score threshold at which at most fpr of
// the benign scores are flagged (a text with no finding, score 0, is
// never flagged).
func lowestThreshold(benign []float64, fpr float64) float64 {
	s := slices.Clone(benign)
	slices.Sort(s)
	slices.Reverse(s)
	allowed := int(math.Floor(fpr * float64(len(s))))
	if allowed >= len(s) || s[allowed] == 0 {
		return math.SmallestNonzeroFloat64 // every finding may be flagged
	}
	// Just above the highest score that must stay unflagged: ties with it
	// stay unflagged too.
	return math.Nextafter(s[allowed], 2)
}

// Write prints the report as a table.
func (r *Report) Write(w io.Writer) {
	fmt.Fprintf(w, "screening benchmark (threshold %.2f; rules and model; \"held-out\": records the model never trained on)\n\n", r.Threshold)
	fmt.Fprintf(w, "%-34s %s\n", "recall", "flagged   rate   95% Wilson")
	for _, l := range r.Attacks {
		fmt.Fprintf(w, "%-34s %s\n", l.Set, l.Rate)
	}
	fmt.Fprintf(w, "\n%-34s %s\n", "false positives", "flagged   rate   95% Wilson")
	for _, l := range r.Benign {
		fmt.Fprintf(w, "%-34s %s\n", l.Set, l.Rate)
	}
	for _, op := range r.AtFPR {
		t := fmt.Sprintf("threshold %.3g", op.Threshold)
		if op.Threshold <= math.SmallestNonzeroFloat64 {
			t = "any finding flagged"
		}
		fmt.Fprintf(w, "\nat ≤ 1%% false positives on %s (%s: %s)\n", op.Benign, t, op.FPR)
		for _, l := range op.Recall {
			fmt.Fprintf(w, "  %-32s %s\n", l.Set, l.Rate)
		}
	}
	fmt.Fprintf(w, "\nrules alone (without the model)\n")
	for _, l := range r.RulesOnly {
		fmt.Fprintf(w, "  %-32s %s\n", l.Set, l.Rate)
	}
	fmt.Fprintf(w, "\nscreening time: %.3f ms per 4 KB of benign text\n", float64(r.Per4KB.Microseconds())/1000)
}
