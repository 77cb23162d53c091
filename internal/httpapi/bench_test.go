package httpapi_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/auth"
	"github.com/daoguard/daoguard/internal/httpapi"
	"github.com/daoguard/daoguard/internal/sqlite"
	"github.com/daoguard/daoguard/internal/storetest"
)

// BenchmarkSubmit measures POST /v1/actions end to end over loopback on
// the SQLite store (durable: synchronous=FULL), signed and verified, and
// the same handler with verification switched off, in one run. Requests
// are signed before the timer starts, so the difference between the two is
// the server's verification cost (signature, digest, key lookup, nonce
// write). Reports submissions/s and process CPU per submission.
//
//	go test ./internal/httpapi -run '^$' -bench Submit -benchtime 20000x
func BenchmarkSubmit(b *testing.B) {
	for _, verify := range []bool{true, false} {
		name := "Signed"
		if !verify {
			name = "Unverified"
		}
		b.Run(name, func(b *testing.B) { benchSubmit(b, verify) })
	}
}

// BenchmarkSubmitPostgres is BenchmarkSubmit/Signed on the PostgreSQL
// store (DAOGUARD_TEST_POSTGRES), the database sharing the 2 cores.
func BenchmarkSubmitPostgres(b *testing.B) {
	e, _ := twoGateways(b)
	benchOn(b, e, true)
}

func benchSubmit(b *testing.B, verify bool) {
	benchOn(b, newSQLiteEnvClock(b, storetest.NewRunningClock()), verify)
}

// benchClients is the number of concurrent clients (DAOGUARD_BENCH_CLIENTS,
// default 64).
var benchClients = func() int {
	if n, err := strconv.Atoi(os.Getenv("DAOGUARD_BENCH_CLIENTS")); err == nil && n > 0 {
		return n
	}
	return 64
}()

func benchOn(b *testing.B, e *env, verify bool) {
	e.authn.KeyLimit = auth.NewLimiter("key", 0, 0)
	if !verify {
		e.srv.Close()
		e.srv = httptestServer(&httpapi.Server{Store: e.store, Service: e.svc, Auth: e.authn, Logger: e.svc.Logger, SkipVerification: "agent_1"})
		b.Cleanup(e.srv.Close)
	}
	reqs, bodies, hc := presign(b, e)
	var next, failed atomic.Int64
	next.Store(-1)
	var st0 sqlite.Stats
	if db, ok := e.store.(*sqlite.DB); ok {
		st0 = db.Stats()
	}
	cpu0 := cpuTime()
	b.ResetTimer()
	start := time.Now()
	b.SetParallelism(benchClients / runtime.GOMAXPROCS(0))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			r := reqs[i]
			r.Body, r.ContentLength = ioNop(bodies[i]), int64(len(bodies[i]))
			res, err := hc.Do(r)
			if err != nil {
				failed.Add(1)
				continue
			}
			var buf bytes.Buffer
			buf.ReadFrom(res.Body)
			res.Body.Close()
			if res.StatusCode != 201 {
				if failed.Add(1) == 1 {
					b.Errorf("status %d: %s", res.StatusCode, buf.String())
				}
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := cpuTime() - cpu0
	if failed.Load() > 0 {
		b.Fatalf("%d requests failed", failed.Load())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "submits/s")
	if db, ok := e.store.(*sqlite.DB); ok {
		st := db.Stats()
		st.Batches -= st0.Batches
		st.Units -= st0.Units
		st.CommitTime -= st0.CommitTime
		if st.Batches > 0 {
			b.ReportMetric(float64(st.Units)/float64(st.Batches), "units/commit")
			b.ReportMetric(float64(st.CommitTime.Microseconds())/float64(st.Batches), "µs/commit")
		}
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}

// presign signs b.N submissions by a fresh agent key before the timer
// starts (unique nonces, distinct amounts), and returns a client with
// enough connections for the load.
func presign(b *testing.B, e *env) ([]*http.Request, [][]byte, *http.Client) {
	agent := e.key("agent_1", daoguard.AlgHMACSHA256, daoguard.AgentScopes, "test", nil)
	agent.URL = e.srv.URL
	reqs := make([]*http.Request, b.N)
	bodies := make([][]byte, b.N)
	for i := range reqs {
		bodies[i] = intentJSON(fmt.Sprintf("%d.%02d", 1+i%900, i%100))
		reqs[i] = signed(b, agent, "POST", "/v1/actions", bodies[i])
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 1024}
	b.Cleanup(tr.CloseIdleConnections)
	return reqs, bodies, &http.Client{Transport: tr}
}

// cpuTime is this process's user+system CPU time: server, store and the
// load generator together (they share the 2 cores, as they would in the
// deployment the target describes).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSubmitLatency sends signed submissions at a fixed rate
// (DAOGUARD_BENCH_RATE per second, default 1250: half of what this 2-core
// machine sustains) from an open-loop generator, and reports latency
// percentiles. b.N is the number of requests.
//
//	go test ./internal/httpapi -run '^$' -bench SubmitLatency -benchtime 10000x
func BenchmarkSubmitLatency(b *testing.B) {
	rate := 1250
	if n, err := strconv.Atoi(os.Getenv("DAOGUARD_BENCH_RATE")); err == nil && n > 0 {
		rate = n
	}
	e := newSQLiteEnvClock(b, storetest.NewRunningClock())
	e.authn.KeyLimit = auth.NewLimiter("key", 0, 0)
	reqs, bodies, hc := presign(b, e)
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	var failed atomic.Int64
	interval := time.Second / time.Duration(rate)
	b.ResetTimer()
	start := time.Now()
	for i := range reqs {
		// Open loop: request i is due at start + i×interval, whatever the
		// answers before it do (a closed loop would hide queueing).
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := reqs[i]
			r.Body, r.ContentLength = ioNop(bodies[i]), int64(len(bodies[i]))
			t0 := time.Now()
			res, err := hc.Do(r)
			if err != nil {
				failed.Add(1)
				return
			}
			var buf bytes.Buffer
			buf.ReadFrom(res.Body)
			res.Body.Close()
			lat[i] = time.Since(t0)
			if res.StatusCode != 201 {
				failed.Add(1)
			}
		}(i)
	}
	wg.Wait()
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d requests failed", failed.Load())
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(rate), "target/s")
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "achieved/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(0.999), "p99.9-ms")
}
