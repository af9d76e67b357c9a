package promsource

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"fermion.dev/fermion/internal/rollout"
	"fermion.dev/fermion/internal/telemetry"
)

// TestSamplesFromRealPrometheus scrapes Fermion's own metric definitions (the
// telemetry package's registry, as a node serves it) with a real Prometheus and checks
// that the default queries give back exactly what was recorded for two versions.
//
// Exact, not approximate: every series starts at 0 in the first scrape (a loaded
// version's series exist from load), and the query runs at the last scrape's
// timestamp, so increase() has nothing to extrapolate on either side.
func TestSamplesFromRealPrometheus(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not on PATH (Debian package prometheus; .ci/run installs it)")
	}
	if testing.Short() {
		t.Skip("starts a Prometheus server: a few seconds")
	}
	m := telemetry.NewMetrics("test")
	stable, canary := m.Function("hello", "1"), m.Function("hello", "2")
	other := m.Function("other", "1") // another app's traffic must not leak in
	target := httptest.NewServer(promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	defer target.Close()

	base := startPrometheus(t, bin, target.Listener.Addr().String())
	s, err := New(base, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The first scrape must see the zeros before anything is recorded.
	pollQuery(t, s, `count(fermion_requests_total{function="hello"})`, 10)

	record := func(f *telemetry.FunctionMetrics, ok, bad int, lat float64, cold int, discards map[string]int) {
		for i := range ok {
			f.Request(uint32(i), 200, lat) // on every stripe: a scrape sums them
		}
		for i := range bad {
			f.Request(uint32(i), 503, lat*4)
		}
		for range cold {
			f.ColdStart()
		}
		for r, n := range discards {
			for range n {
				f.Discard(r)
			}
		}
	}
	record(stable, 198, 2, 0.003, 3, map[string]int{telemetry.ReasonIdle: 4})
	record(canary, 180, 20, 0.030, 1, map[string]int{telemetry.ReasonTrap: 2, telemetry.ReasonTimeout: 1, telemetry.ReasonRecycled: 7})
	record(other, 1000, 1000, 1, 50, map[string]int{telemetry.ReasonTrap: 9})
	pollQuery(t, s, `sum(fermion_requests_total{function="hello"})`, 400)

	vec, err := s.query(ctx, `max(timestamp(fermion_requests_total{function="hello"}))`, time.Now())
	if err != nil || len(vec) != 1 {
		t.Fatalf("last scrape's time: %v, %v", vec, err)
	}
	to := time.UnixMilli(int64(vec[0].Value * 1000))
	st, ca, err := s.Samples(ctx, "hello", "1", "2", to.Add(-5*time.Minute), to)
	if err != nil {
		t.Fatal(err)
	}
	if st.Requests != 200 || st.Errors != 2 || st.ColdStarts != 3 || st.Traps != 0 {
		t.Errorf("stable = %d requests, %d errors, %d cold starts, %d traps; want 200, 2, 3, 0", st.Requests, st.Errors, st.ColdStarts, st.Traps)
	}
	if ca.Requests != 200 || ca.Errors != 20 || ca.ColdStarts != 1 || ca.Traps != 3 {
		t.Errorf("canary = %d requests, %d errors, %d cold starts, %d traps; want 200, 20, 1, 3", ca.Requests, ca.Errors, ca.ColdStarts, ca.Traps)
	}
	if st.Latency == nil || ca.Latency == nil {
		t.Fatal("no latency")
	}
	if st.Latency.Count() != 200 || ca.Latency.Count() != 200 {
		t.Errorf("latency counts %d, %d; want 200 each", st.Latency.Count(), ca.Latency.Count())
	}
	// Stable's 198 fast requests fall in (2.5ms, 5ms]: its median is in that bucket.
	if p := st.Latency.Quantile(0.5); p <= 2500*time.Microsecond || p > 5*time.Millisecond {
		t.Errorf("stable median %v, want within its bucket (2.5ms, 5ms]", p)
	}
	// The canary's 180 in (25ms, 50ms], its 20 errors at 120ms in (100ms, 250ms].
	if p := ca.Latency.Quantile(0.5); p <= 25*time.Millisecond || p > 50*time.Millisecond {
		t.Errorf("canary median %v, want within (25ms, 50ms]", p)
	}
	if p := ca.Latency.Quantile(0.99); p <= 100*time.Millisecond || p > 250*time.Millisecond {
		t.Errorf("canary p99 %v, want within (100ms, 250ms]", p)
	}
	// The analysis on these samples: the canary's 10 % errors and 10× latency fail.
	a := rollout.Analyse(rollout.DefaultChecks(), st, ca)
	if a.Result != rollout.Fail {
		t.Errorf("analysis %s, want fail", a)
	}
	for _, c := range a.Checks {
		if (c.Check == "error_ratio" || c.Check == "p99_latency") && c.Result != rollout.Fail {
			t.Errorf("%s: %s (%s), want fail", c.Check, c.Result, c.Reason)
		}
	}
	// A version nobody served: no series, an empty sample, no error.
	_, none, err := s.Samples(ctx, "hello", "1", "3", to.Add(-5*time.Minute), to)
	if err != nil || none.Requests != 0 || none.Latency != nil {
		t.Errorf("unserved version: %+v, %v; want an empty sample", none, err)
	}
}

// startPrometheus runs prometheus on a free loopback port scraping target every 200ms,
// and returns its base URL once it is ready. It is stopped at the test's end.
func startPrometheus(t *testing.T, bin, target string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 200ms
  scrape_timeout: 200ms
scrape_configs:
  - job_name: fermion
    static_configs:
      - targets: [%q]
`, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // prometheus takes no listener; a port taken meanwhile fails the wait below
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cancel(); <-exited })
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		select {
		case <-exited:
			t.Fatalf("prometheus exited before it was ready")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus at %s not ready within 30s: %v", base, err)
		}
	}
}

// pollQuery waits until q's single value reaches want: the scrapes run on Prometheus's
// clock, so the test polls rather than sleeps.
func pollQuery(t *testing.T, s *Source, q string, want float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		vec, err := s.query(context.Background(), q, time.Now())
		switch {
		case err != nil:
			last = err.Error()
		case len(vec) == 1 && vec[0].Value >= want:
			return
		default:
			last = strconv.Itoa(len(vec)) + " series"
			if len(vec) == 1 {
				last = strconv.FormatFloat(vec[0].Value, 'g', -1, 64)
			}
		}
		time.Sleep(50 * time.Millisecond) // a poll interval, not a wait for an outcome
	}
	t.Fatalf("%s did not reach %v within 30s (last: %s)", q, want, last)
}
