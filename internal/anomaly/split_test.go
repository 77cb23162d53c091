package anomaly

import (
	"testing"
	"time"
)

func BenchmarkSplit(b *testing.B) {
	cfg := DefaultConfig()
	es := benign(10_000, 1)
	s := &Stats{}
	for _, e := range es {
		s.Add(e, cfg)
	}
	raw := s.Marshal()
	next := es[0]
	next.Time = time.Unix(0, s.Times[len(s.Times)-1]).Add(time.Minute)
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			ParseStats(raw)
		}
	})
	b.Run("check", func(b *testing.B) {
		for b.Loop() {
			s.Check(next, cfg)
		}
	})
	b.Run("add", func(b *testing.B) {
		for b.Loop() {
			c, _ := ParseStats(raw)
			c.Add(next, cfg)
		}
	})
	b.Run("marshal", func(b *testing.B) {
		for b.Loop() {
			s.Marshal()
		}
	})
}
