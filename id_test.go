package daoguard_test

import (
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
)

func TestNewID(t *testing.T) {
	re := regexp.MustCompile(`^act_[0-9a-hjkmnp-tv-z]{26}$`)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []string
	seen := map[string]bool{}
	for i := range 1000 {
		id := daoguard.NewID("act", base.Add(time.Duration(i)*time.Millisecond))
		if !re.MatchString(id) {
			t.Fatalf("malformed id %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("ids must sort by creation time")
	}
}
