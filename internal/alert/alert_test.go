package alert

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
	"github.com/daoguard/daoguard/internal/anomaly"
	"github.com/daoguard/daoguard/internal/probe"
	"github.com/daoguard/daoguard/internal/service"
)

// Alerts reach a webhook that fails twice before it answers, signed so
// that the receiver's verifier accepts them; a passed probe run and an
// agent lowering itself alert nobody; a webhook that never answers 2xx
// costs a "failed" count, not a lost goroutine.
func TestSender(t *testing.T) {
	signer, key, _ := probe.NewSigner([]byte("k"))
	v, _ := client.NewProbeVerifier(key)
	var mu sync.Mutex
	fails, got := 2, []Alert{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := v.Verify(r, b); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var a Alert
		json.Unmarshal(b, &a)
		got = append(got, a)
	}))
	defer srv.Close()
	results := make(chan string, 10)
	s := NewSender(srv.URL, signer, slog.New(slog.DiscardHandler))
	s.Backoff, s.Count = time.Millisecond, func(r string) { results <- r }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)

	s.ProbeRan(&service.ProbeRun{Agent: "agt_ok", Result: &probe.Result{Passed: true}})
	s.AutonomyChanged("agt_x", daoguard.AutonomyAutonomous, daoguard.AutonomySupervised, "agent")
	s.BreakerTripped("agt_1", []anomaly.Finding{{Rule: anomaly.RuleBurst, Detail: "31 in 1m", Trip: true}})
	if r := <-results; r != "sent" {
		t.Fatalf("result %s", r)
	}
	s.AutonomyChanged("agt_1", daoguard.AutonomySupervised, daoguard.AutonomyAutonomous, "human")
	if r := <-results; r != "sent" {
		t.Fatalf("result %s", r)
	}
	mu.Lock()
	if len(got) != 2 || got[0].Kind != KindBreaker || got[0].Agent != "agt_1" || got[0].Findings[0].Rule != anomaly.RuleBurst || got[1].Kind != KindRaised {
		t.Fatalf("alerts %+v", got)
	}
	fails = 100
	mu.Unlock()
	s.BreakerTripped("agt_2", nil)
	if r := <-results; r != "failed" {
		t.Fatalf("a webhook that keeps failing: %s", r)
	}
}

// A full queue drops the alert and counts it; offering never blocks.
func TestSenderQueueFull(t *testing.T) {
	signer, _, _ := probe.NewSigner([]byte("k"))
	var dropped int
	s := NewSender("http://127.0.0.1:1/", signer, slog.New(slog.DiscardHandler))
	s.Count = func(r string) {
		if r == "dropped" {
			dropped++
		}
	}
	for range cap(s.q) + 5 { // Run is not started: nothing drains
		s.BreakerTripped("agt", nil)
	}
	if dropped != 5 {
		t.Fatalf("dropped %d, want 5", dropped)
	}
}
