package sandbox

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/telemetry"
)

// TestTimelineWarmupFailure: an instance whose warmup hook fails is on the timeline as
// discarded for "warmup" with the hook's answer, and one retired after
// max_requests_per_instance as "recycled".
func TestTimelineWarmupFailure(t *testing.T) {
	cache, err := fermiontest.CompileCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(EngineConfig{CacheDir: cache, Metrics: telemetry.NewMetrics("test")})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	f, err := e.Load(context.Background(), Spec{
		Name: "flaky", Version: "1.0.0", Wasm: fermiontest.Guest(t, "examples/testdata/faults/status", true),
		Limits: manifest.Limits{MemoryBytes: 64 << 20, Timeout: 5 * time.Second, MaxRequestBody: 1 << 20,
			MaxResponseBody: 1 << 20, MaxConcurrency: 4, QueueTimeout: 100 * time.Millisecond},
		Scaling: manifest.Scaling{MinWarm: 0, MaxInstances: 1, MaxRequestsPerInstance: 1, IdleTimeout: time.Minute},
		Warmup:  "/warmup?status=200", WarmupTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(context.Background())
	req := func() (*Response, error) {
		return f.Invoke(context.Background(), &Request{ID: "t", Method: "GET", URI: "/", Host: "h", RemoteAddr: "127.0.0.1:1", Header: http.Header{}})
	}
	resp, err := req()
	if err != nil {
		t.Fatal(err)
	}
	served := resp.Instance
	f.warmups.mu.Lock()
	f.warmups.path = "/warmup?status=503"
	f.warmups.mu.Unlock()
	if _, err := req(); err == nil {
		t.Fatal("request after the hook started failing succeeded")
	}
	tls, _ := f.Timelines()
	var recycled, warmup bool
	for _, tl := range tls {
		switch {
		case tl.ID == served && tl.DiscardReason == telemetry.ReasonRecycled && tl.Requests == 1:
			recycled = true
		case tl.DiscardReason == telemetry.ReasonWarmup && strings.Contains(tl.DiscardDetail, "503") && tl.Requests == 0:
			warmup = true
		}
	}
	if !recycled || !warmup {
		t.Fatalf("recycled %v, warmup failure %v in %+v", recycled, warmup, tls)
	}
}
