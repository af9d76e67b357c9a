package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// newEngineOffering is newEngine for a node that offers memory bytes to functions.
func newEngineOffering(t *testing.T, memory int64) (*sandbox.Engine, *telemetry.Metrics) {
	t.Helper()
	m := telemetry.NewMetrics("test")
	e, err := sandbox.NewEngine(sandbox.EngineConfig{CacheDir: cacheDir, CompileWorkers: 2, Metrics: m, MemoryBytes: memory})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e, m
}

// wantHeld waits until the engine's live instances hold want bytes: discards finish in
// the background after a request returns.
func wantHeld(t *testing.T, e *sandbox.Engine, m *telemetry.Metrics, want int64) {
	t.Helper()
	fermiontest.WaitFor(t, 5*time.Second, func() error {
		if _, held := e.NodeMemory(); held != want {
			return fmt.Errorf("instances hold %d MiB of node memory, want %d MiB", held>>20, want>>20)
		}
		return nil
	})
	wantMetric(t, "fermion_node_memory_held_bytes", scrapeGauge(m, "fermion_node_memory_held_bytes", nil), float64(want))
}

// TestNodeMemory: the live instances of every function on a node, warm, busy or command
// runs, together hold at most the memory the node offers, each its limits.memory; an
// instance that would not fit is refused with 503 node_memory and counted, and the
// memory comes back as instances go.
func TestNodeMemory(t *testing.T) {
	const limit = 8 << 20
	e, m := newEngineOffering(t, 20<<20) // room for two instances of limit
	wantMetric(t, "fermion_node_memory_offered_bytes", scrapeGauge(m, "fermion_node_memory_offered_bytes", nil), 20<<20)
	ok := rawGuest{handle: respond(rawOK)}.withResponse(rawOK)
	withLimit := func(name string, g rawGuest) sandbox.Spec {
		s := spec(name, g.wasm())
		s.Limits.MemoryBytes = limit
		return s
	}

	warm := withLimit("warm", ok)
	warm.Scaling.MinWarm = 2
	fw, err := e.Load(context.Background(), warm)
	if err != nil {
		t.Fatal(err)
	}
	wantHeld(t, e, m, 2*limit)

	// Another function's first instance does not fit beside the two warm ones.
	other := load(t, e, withLimit("other", ok))
	resp, err := invoke(t, other, get("/"))
	se := wantError(t, resp, err, http.StatusServiceUnavailable, telemetry.LimitNodeMemory)
	if se.RetryAfter <= 0 || !strings.Contains(se.Error(), "16 MiB of the 20 MiB") {
		t.Fatalf("error %q (Retry-After %d): want a retry hint and the node's numbers", se.Error(), se.RetryAfter)
	}
	wantMetric(t, "node_memory rejections", rejections(m, "other", telemetry.LimitNodeMemory), 1)
	wantStats(t, other, sandbox.Stats{})

	// Nor does a command run.
	cgi := rawGuest{command: true, init: writeOnce(1)}.withText("Content-Type: text/plain\n\nran\n")
	cmd := load(t, e, withLimit("cmd", cgi))
	resp, err = invoke(t, cmd, get("/"))
	wantError(t, resp, err, http.StatusServiceUnavailable, telemetry.LimitNodeMemory)
	wantMetric(t, "node_memory rejections", rejections(m, "cmd", telemetry.LimitNodeMemory), 1)

	// Nor a function whose min_warm cannot be met: its Load says so.
	more := withLimit("more", ok)
	more.Scaling.MinWarm = 1
	if f, err := e.Load(context.Background(), more); err == nil {
		f.Close(context.Background())
		t.Fatal("Load prewarmed an instance the node has no memory for")
	} else if !strings.Contains(err.Error(), "node memory") || !strings.Contains(err.Error(), "--memory") {
		t.Fatalf("Load error %q does not say the node's memory is full and what to change", err)
	}
	wantHeld(t, e, m, 2*limit)

	// Once the warm instances go, the others run, and a command run gives its share back.
	if err := fw.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantHeld(t, e, m, 0)
	wantOK(t, other, get("/"), "raw ok")
	wantOK(t, cmd, get("/"), "ran")
	wantHeld(t, e, m, limit) // other's warm instance
}

// TestNodeMemoryLimitAboveOffer: a function whose limits.memory is more than the node
// offers could never start an instance; Load says so instead of every request failing.
func TestNodeMemoryLimitAboveOffer(t *testing.T) {
	e, _ := newEngineOffering(t, 16<<20)
	s := rawSpec(rawGuest{handle: respond(rawOK)}.withResponse(rawOK))
	s.Limits.MemoryBytes = 32 << 20
	f, err := e.Load(context.Background(), s)
	if err == nil {
		f.Close(context.Background())
		t.Fatal("Load accepted a limit above the node's offer")
	}
	for _, want := range []string{"limits.memory (32 MiB)", "16 MiB this node offers", "--memory"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not contain %q", err, want)
		}
	}
}

// TestNodeMemoryHammer: many concurrent requests on functions that share a node with
// room for three instances: the held memory never passes the offer, every refusal is a
// 503 node_memory, and when the pools are closed the node holds nothing.
func TestNodeMemoryHammer(t *testing.T) {
	const limit, room = 4 << 20, 3
	e, m := newEngineOffering(t, room*limit)
	g := rawGuest{handle: cat(sleepFor, respond(rawOK))}.withSleep(20 * time.Millisecond).withResponse(rawOK)
	var fns []*sandbox.Function
	for i := range 3 {
		s := spec(fmt.Sprintf("h%d", i), g.wasm())
		s.Limits.MemoryBytes = limit
		s.Scaling.MaxInstances, s.Limits.MaxConcurrency = 4, 4
		s.Scaling.IdleTimeout = 100 * time.Millisecond // instances come and go during the run
		fns = append(fns, load(t, e, s))
	}
	stop := make(chan struct{})
	var over atomic.Int64
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, held := e.NodeMemory(); held > room*limit {
				over.Store(held)
			}
		}
	}()
	var wg sync.WaitGroup
	var served, refused atomic.Int64
	errs := make(chan error, 64)
	for w := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := fns[w%len(fns)]
			for range 15 {
				resp, err := invoke(t, f, get("/"))
				var se *sandbox.Error
				switch {
				case err == nil && resp.Status == http.StatusOK:
					served.Add(1)
				case errors.As(err, &se) && se.Reason == telemetry.LimitNodeMemory:
					refused.Add(1)
				case errors.As(err, &se) && se.Reason == telemetry.LimitConcurrency:
				default:
					select {
					case errs <- fmt.Errorf("%v %v", resp, err):
					default:
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	watch.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if v := over.Load(); v > 0 {
		t.Fatalf("live instances held %d MiB, more than the %d MiB offered", v>>20, room*limit>>20)
	}
	if served.Load() == 0 {
		t.Fatal("nothing was served")
	}
	t.Logf("served %d, refused for node memory %d", served.Load(), refused.Load())
	for _, f := range fns {
		if err := f.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	wantHeld(t, e, m, 0)
}
