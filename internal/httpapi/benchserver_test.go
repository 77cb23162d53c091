package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"github.com/daoguard/daoguard/internal/anomaly"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/auth"
	"github.com/daoguard/daoguard/internal/httpapi"
	"github.com/daoguard/daoguard/internal/secrets"
	"github.com/daoguard/daoguard/internal/service"
	"github.com/daoguard/daoguard/internal/sqlite"
	"github.com/daoguard/daoguard/internal/storetest"
)

// The submission benchmarks run the gateway in a child process (this test
// binary again, told so by benchServerEnv), so that the server's CPU is
// measured on its own, apart from the load generator's, as it would be in a
// deployment. The child serves the SQLite store the parent prepared, prints
// its URL, then answers each line on its standard input with its counters
// (benchCounters as JSON) and exits when the input closes.
const benchServerEnv = "DAOGUARD_BENCH_SERVER" // "DIR [skip-verification] [policy]"

func TestMain(m *testing.M) {
	if v := os.Getenv(benchServerEnv); v != "" {
		if err := runBenchServer(v); err != nil {
			fmt.Fprintln(os.Stderr, "bench server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// benchCounters is what the child reports at each mark.
type benchCounters struct {
	CPU   time.Duration `json:"cpu"` // the child's user+system CPU time so far
	Store sqlite.Stats  `json:"store"`
}

func runBenchServer(arg string) error {
	dir, mode, _ := strings.Cut(arg, " ")
	modes := strings.Fields(mode)
	text, err := os.ReadFile(filepath.Join(dir, "master.key"))
	if err != nil {
		return err
	}
	keyring, err := secrets.ParseKeyring(text)
	if err != nil {
		return err
	}
	db := sqlite.NewDB(filepath.Join(dir, "d.db"))
	if err := db.Open(); err != nil {
		return err
	}
	defer db.Close()
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	// Logged as serve logs: JSON at Info.
	log := slog.New(slog.NewJSONHandler(logf, nil))
	var decider daoguard.Decider = storetest.NewDecider()
	if slices.Contains(modes, "policy") {
		// The policy engine, with BenchPolicy loaded (once per store).
		decider = storetest.NewPolicyDecider(storetest.NewRunningClock())
	}
	svc := service.New(db, decider, nil, "bench")
	svc.Logger, svc.Keyring, svc.Environment = log, keyring, "test"
	if slices.Contains(modes, "breaker") {
		// The anomaly breaker on, as serve runs it, with thresholds the
		// benchmark's one agent at full speed never reaches (every answer
		// must still be queued): its cost, not its verdicts.
		cfg := anomaly.DefaultConfig()
		cfg.BurstWindow, cfg.NearWindow, cfg.MinRate = time.Nanosecond, time.Nanosecond, 1<<30
		svc.Anomaly = &cfg
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go svc.Run(ctx)
	}
	if slices.Contains(modes, "policy") {
		if err := loadBenchPolicy(svc); err != nil {
			return err
		}
	}
	authn := auth.New(db, keyring, "test")
	authn.Logger = log
	authn.KeyLimit = auth.NewLimiter("key", 0, 0) // the benchmark is one key at full speed
	srv := &httpapi.Server{Store: db, Service: svc, Auth: authn, Logger: log}
	if slices.Contains(modes, "skip-verification") {
		srv.SkipVerification = "agent_1"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	defer hs.Close()
	fmt.Printf("http://%s\n", ln.Addr())
	// DAOGUARD_BENCH_SERVER_PROFILE=FILE: a CPU profile of the server
	// between the first two marks (the timed part of the run).
	profile := os.Getenv("DAOGUARD_BENCH_SERVER_PROFILE")
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for marks := 0; in.Scan(); marks++ {
		c := benchCounters{CPU: cpuTime(), Store: db.Stats()}
		if profile != "" && marks == 0 {
			f, err := os.Create(profile)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
		}
		if profile != "" && marks == 1 {
			pprof.StopCPUProfile()
		}
		if err := out.Encode(c); err != nil {
			return err
		}
	}
	return nil
}

// loadBenchPolicy loads storetest.BenchPolicy as the seeded
// organisation's first policy, unless it has one.
func loadBenchPolicy(svc *service.Service) error {
	_, err := svc.LoadFirstPolicy(context.Background(), "org_test", storetest.BenchPolicy)
	if daoguard.ErrorCode(err) == daoguard.CodeConflict {
		return nil
	}
	return err
}

// benchServer is the parent's handle on a child gateway.
type benchServer struct {
	URL   string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startBenchServer closes e's own store and server, and starts a child
// gateway on the same SQLite file and master key; verify false serves it
// with verification switched off (Server.SkipVerification), withPolicy
// decides with the policy engine (storetest.BenchPolicy) instead of the
// fixed test decider.
func startBenchServer(b *testing.B, e *env, verify, withPolicy, breaker bool) *benchServer {
	e.srv.Close()
	if err := e.store.Close(); err != nil {
		b.Fatal(err)
	}
	dir := filepath.Dir(e.dsn)
	if err := os.WriteFile(filepath.Join(dir, "master.key"), e.keyringFile, 0o600); err != nil {
		b.Fatal(err)
	}
	arg := dir
	if !verify {
		arg += " skip-verification"
	}
	if withPolicy {
		arg += " policy"
	}
	if breaker {
		arg += " breaker"
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), benchServerEnv+"="+arg)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s := &benchServer{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := s.out.ReadString('\n')
	if err != nil {
		b.Fatalf("bench server did not start: %v", err)
	}
	s.URL = strings.TrimSpace(line)
	return s
}

// mark returns the child's counters now.
func (s *benchServer) mark(b *testing.B) benchCounters {
	if _, err := io.WriteString(s.stdin, "mark\n"); err != nil {
		b.Fatal(err)
	}
	line, err := s.out.ReadBytes('\n')
	if err != nil {
		b.Fatal(err)
	}
	var c benchCounters
	if err := json.Unmarshal(line, &c); err != nil {
		b.Fatal(err)
	}
	return c
}
