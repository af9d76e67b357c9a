package sandbox

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/telemetry"
)

// TestWarmupFailingAfterLoad: a version that loaded fine but whose new instances then
// fail their hook (its backend went away) answers the requests that waited for them
// 503 warmup, and after WarmupFailLimit failures in a row reports WarmupFailing; one
// success clears it.
func TestWarmupFailingAfterLoad(t *testing.T) {
	// Every instance serves one request, so each request needs a new one.
	f, req := loadWarmupStatusGuest(t, 4)
	if _, err := req(); err != nil {
		t.Fatal(err)
	}
	// From now on every hook call fails. Through warmups.path, not f.spec: background
	// top-ups read the hook while it changes (a data race under -race otherwise).
	setHook := func(path string) {
		f.warmups.mu.Lock()
		f.warmups.path = path
		f.warmups.mu.Unlock()
	}
	setHook("/warmup?status=503")
	for i := range WarmupFailLimit {
		_, err := req()
		var se *Error
		if !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable || se.Reason != telemetry.ReasonWarmup {
			t.Fatalf("request %d: %v, want 503 warmup", i, err)
		}
	}
	fermiontest.WaitFor(t, 5*time.Second, func() error {
		if we := f.WarmupFailing(); we == nil || we.Status != 503 {
			return errors.New("not failing yet")
		}
		return nil
	})
	setHook("/warmup?status=200")
	// Background top-ups may still fail with the old path; a request's cold start
	// after the switch succeeds and clears the run.
	fermiontest.WaitFor(t, 5*time.Second, func() error {
		if _, err := req(); err != nil {
			return err
		}
		if f.WarmupFailing() != nil {
			return errors.New("still failing")
		}
		return nil
	})
}

// BenchmarkNewInstanceWarmup is what a warmup hook adds to each new instance:
// examples/hello's instances created one after another, alternating a version without
// a hook (the baseline) and one with GET /hello as its hook, so both see the same
// machine, then each serves its first request. Read none-ns/instance, hook-ns/instance
// and hook/none for the start, and *-first-request-ns for what the hook saves the
// first request.
func BenchmarkNewInstanceWarmup(b *testing.B) {
	e, err := NewEngine(EngineConfig{CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(context.Background())
	spec := Spec{
		Name: "hello", Version: "1.0.0", Wasm: fermiontest.Guest(b, "examples/hello", true),
		Limits: manifest.Limits{MemoryBytes: 64 << 20, Timeout: 5 * time.Second, MaxRequestBody: 1 << 20,
			MaxResponseBody: 1 << 20, MaxConcurrency: 4, QueueTimeout: 100 * time.Millisecond},
		Scaling: manifest.Scaling{MinWarm: 0, MaxInstances: 4, IdleTimeout: time.Minute},
	}
	none, err := e.Load(context.Background(), spec)
	if err != nil {
		b.Fatal(err)
	}
	defer none.Close(context.Background())
	spec.Warmup, spec.WarmupTimeout = "/hello", 5*time.Second
	hook, err := e.Load(context.Background(), spec)
	if err != nil {
		b.Fatal(err)
	}
	defer hook.Close(context.Background())
	req := &Request{ID: "b", Method: "GET", URI: "/hello", Host: "localhost", RemoteAddr: "127.0.0.1:1", Header: http.Header{}}
	var took, first [2]time.Duration
	for b.Loop() {
		for i, f := range []*Function{none, hook} {
			t0 := time.Now()
			inst, err := f.newInstance(context.Background(), telemetry.StartScale)
			t1 := time.Now()
			took[i] += t1.Sub(t0)
			if err != nil {
				b.Fatal(err)
			}
			// The first request the instance serves: what the hook takes off it.
			if _, reason, err := f.callReactor(context.Background(), inst, req); err != nil || reason != "" {
				b.Fatal(err, reason)
			}
			first[i] += time.Since(t1)
			// Undo what newInstance accounted, as discard does for a counted instance.
			inst.close()
			f.engine.memory.release(f.memHold)
			f.mu.Lock()
			f.memBytes -= inst.memBytes
			f.mu.Unlock()
		}
	}
	b.ReportMetric(float64(took[0].Nanoseconds())/float64(b.N), "none-ns/instance")
	b.ReportMetric(float64(took[1].Nanoseconds())/float64(b.N), "hook-ns/instance")
	b.ReportMetric(float64(took[1])/float64(took[0]), "hook/none")
	b.ReportMetric(float64(first[0].Nanoseconds())/float64(b.N), "none-first-request-ns")
	b.ReportMetric(float64(first[1].Nanoseconds())/float64(b.N), "hook-first-request-ns")
}

// loadWarmupStatusGuest loads the status fault guest with a passing warmup hook, every
// instance retired after one request (so each request makes a new one), at most
// maxInstances at once; req sends it one GET /.
func loadWarmupStatusGuest(t *testing.T, maxInstances int) (*Function, func() (*Response, error)) {
	t.Helper()
	// The tests' shared compilation cache, not a directory of its own: these tests
	// assert nothing about compiling, and a cold compile under -race took three minutes
	// of a busy machine's time.
	cache, err := fermiontest.CompileCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(EngineConfig{CacheDir: cache, Metrics: telemetry.NewMetrics("test")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	f, err := e.Load(context.Background(), Spec{
		Name: "flaky", Version: "1.0.0", Wasm: fermiontest.Guest(t, "examples/testdata/faults/status", true),
		Limits: manifest.Limits{MemoryBytes: 64 << 20, Timeout: 5 * time.Second, MaxRequestBody: 1 << 20,
			MaxResponseBody: 1 << 20, MaxConcurrency: 4, QueueTimeout: 100 * time.Millisecond},
		Scaling: manifest.Scaling{MinWarm: 0, MaxInstances: maxInstances, MaxRequestsPerInstance: 1, IdleTimeout: time.Minute},
		Warmup:  "/warmup?status=200", WarmupTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close(context.Background()) })
	return f, func() (*Response, error) {
		return f.Invoke(context.Background(), &Request{ID: "t", Method: "GET", URI: "/", Host: "h", RemoteAddr: "127.0.0.1:1", Header: http.Header{}})
	}
}
