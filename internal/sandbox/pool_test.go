package sandbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

func TestPoolPrewarm(t *testing.T) {
	e, m := newEngine(t)
	s := spec("hello", reactor(t, guestHello))
	s.Scaling.MinWarm = 2
	f := load(t, e, s)
	if st := f.Stats(); st != (sandbox.Stats{Warm: 2, Total: 2}) {
		t.Fatalf("stats after Load %+v, want 2 warm", st)
	}
	wantMetric(t, "warm gauge", warmGauge(m, "hello"), 2)
	resp := wantOK(t, f, get("/hello"), "Hello")
	if resp.Cold {
		t.Fatal("first request after prewarming was cold")
	}
	wantMetric(t, "cold starts", coldStarts(m, "hello"), 0)
	wantStats(t, f, sandbox.Stats{Warm: 2, Total: 2})
}

// TestPoolMemoryGauge: fermion_instance_memory_bytes is the live instances' linear
// memory, and a discarded instance's share leaves with it.
func TestPoolMemoryGauge(t *testing.T) {
	e, m := newEngine(t)
	s := spec("hello", reactor(t, guestHello))
	s.Scaling.MinWarm = 2
	f := load(t, e, s)
	const page = 64 << 10
	two := memoryGauge(m, "hello")
	if two < 2*41*page || int64(two)%page != 0 {
		t.Fatalf("memory of 2 warm instances = %v bytes, want whole pages, at least twice hello's 41", two)
	}
	wantOK(t, f, get("/hello"), "Hello")
	if got := memoryGauge(m, "hello"); got < two {
		t.Fatalf("memory after a request = %v bytes, below %v", got, two)
	}

	// Recycled after every request, with no instance kept warm: nothing is left.
	e2, m2 := newEngine(t)
	s.Scaling.MinWarm, s.Scaling.MaxRequestsPerInstance = 0, 1
	f2 := load(t, e2, s)
	for range 3 {
		wantOK(t, f2, get("/hello"), "Hello")
	}
	wantStats(t, f2, sandbox.Stats{})
	wantMetric(t, "memory with no instances", memoryGauge(m2, "hello"), 0)
}

func TestPoolColdStart(t *testing.T) {
	e, m := newEngine(t)
	f := load(t, e, spec("hello", reactor(t, guestHello)))
	if st := f.Stats(); st != (sandbox.Stats{}) {
		t.Fatalf("stats after Load with min_warm 0: %+v", st)
	}
	if !wantOK(t, f, get("/hello"), "Hello").Cold {
		t.Fatal("first request with an empty pool was not cold")
	}
	wantMetric(t, "cold starts", coldStarts(m, "hello"), 1)
	if wantOK(t, f, get("/hello"), "Hello").Cold {
		t.Fatal("second request was cold")
	}
	wantMetric(t, "cold starts", coldStarts(m, "hello"), 1)
	wantStats(t, f, sandbox.Stats{Warm: 1, Total: 1})
}

func TestPoolRecycle(t *testing.T) {
	e, m := newEngine(t)
	s := spec("hello", reactor(t, guestHello))
	s.Scaling.MaxRequestsPerInstance = 3
	f := load(t, e, s)
	for i, wantCold := range []bool{true, false, false, true, false, false, true} {
		if resp := wantOK(t, f, get("/hello"), "Hello"); resp.Cold != wantCold {
			t.Fatalf("request %d: cold = %v, want %v", i, resp.Cold, wantCold)
		}
		wantMetric(t, "recycled discards", discards(m, "hello", telemetry.ReasonRecycled), float64((i+1)/3))
	}
	wantMetric(t, "cold starts", coldStarts(m, "hello"), 3)
	wantStats(t, f, sandbox.Stats{Warm: 1, Total: 1})
}

func TestPoolIdleReap(t *testing.T) {
	e, m := newEngine(t)
	s := spec("slow", reactor(t, guestSlow))
	s.Scaling.MinWarm = 1
	s.Scaling.MaxInstances = 3
	s.Limits.MaxConcurrency = 3
	s.Scaling.IdleTimeout = 200 * time.Millisecond
	f := load(t, e, s)

	// Three overlapping requests need three instances.
	release := runConcurrently(t, f, 3, "/slow?d=1s")
	wantStats(t, f, sandbox.Stats{Busy: 3, Total: 3})
	release()
	// Then the reaper closes the two idle ones, keeping min_warm.
	wantStats(t, f, sandbox.Stats{Warm: 1, Total: 1})
	wantMetric(t, "idle discards", discards(m, "slow", telemetry.ReasonIdle), 2)
	wantMetric(t, "warm gauge", warmGauge(m, "slow"), 1)
	if wantOK(t, f, get("/slow"), "ok").Cold {
		t.Fatal("the instance kept for min_warm was not used")
	}
}

// runConcurrently starts n requests for uri and returns a function that waits for them
// and fails the test unless each answered 200.
func runConcurrently(t *testing.T, f *sandbox.Function, n int, uri string) (wait func()) {
	t.Helper()
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			resp, err := f.Invoke(ctx, get(uri))
			if err == nil && resp.Status != http.StatusOK {
				err = fmt.Errorf("status %d %q", resp.Status, resp.Body)
			}
			errs <- err
		}()
	}
	return func() {
		t.Helper()
		for i := 0; i < n; i++ {
			if err := <-errs; err != nil {
				t.Fatalf("%s: %v", uri, err)
			}
		}
	}
}

func TestPoolTopUpAfterDiscard(t *testing.T) {
	e, m := newEngine(t)
	s := spec("panic", reactor(t, guestPanic))
	s.Scaling.MinWarm = 1
	f := load(t, e, s)
	resp, err := invoke(t, f, get("/panic?panic=1"))
	wantError(t, resp, err, http.StatusInternalServerError, telemetry.ReasonPanic)
	// The discarded instance is replaced in the background, so min_warm holds again.
	wantStats(t, f, sandbox.Stats{Warm: 1, Total: 1})
	if wantOK(t, f, get("/panic"), "ok").Cold {
		t.Fatal("no warm instance after the top-up")
	}
	wantMetric(t, "panic discards", discards(m, "panic", telemetry.ReasonPanic), 1)
}

// TestPoolHammer sends many concurrent requests through a small pool: every request is
// answered with its own body, and the pool never exceeds max_instances.
func TestPoolHammer(t *testing.T) {
	const (
		workers  = 50
		requests = 20
		maxInst  = 4
	)
	e, m := newEngine(t)
	s := spec("echo", reactor(t, guestEcho))
	s.Scaling.MaxInstances = maxInst
	s.Limits.MaxConcurrency = maxInst
	s.Limits.QueueTimeout = 30 * time.Second // everyone waits their turn
	f := load(t, e, s)

	// Every worker checks the pool after each of its requests, while the others run.
	var overCap sync.Once
	var overErr error
	check := func() {
		if st := f.Stats(); st.Total > maxInst || st.Busy > maxInst || st.Warm < 0 {
			overCap.Do(func() { overErr = fmt.Errorf("stats %+v exceed max_instances %d", st, maxInst) })
		}
	}

	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < requests; i++ {
				body := fmt.Sprintf(`{"worker":%d,"request":%d}`, w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				resp, err := f.Invoke(ctx, post(fmt.Sprintf("/echo?w=%d&i=%d", w, i), []byte(body)))
				cancel()
				check()
				if err != nil {
					errs <- err
					return
				}
				var got struct{ Query, Body string }
				if resp.Status != http.StatusOK {
					errs <- fmt.Errorf("status %d", resp.Status)
					return
				}
				if err := json.Unmarshal(resp.Body, &got); err != nil {
					errs <- err
					return
				}
				if got.Body != body || got.Query != fmt.Sprintf("w=%d&i=%d", w, i) {
					errs <- fmt.Errorf("request %d/%d got another request's answer: %+v", w, i, got)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if overErr != nil {
		t.Fatal(overErr)
	}
	wantMetric(t, "concurrency rejections", rejections(m, "echo", telemetry.LimitConcurrency), 0)
	wantMetric(t, "busy gauge", busyGauge(m, "echo"), 0)
	st := f.Stats()
	if st.Busy != 0 || st.Total > maxInst || st.Total < 1 {
		t.Fatalf("stats after the hammer %+v", st)
	}
	wantMetric(t, "warm gauge", warmGauge(m, "echo"), float64(st.Warm))
}

func TestCloseDrains(t *testing.T) {
	e, m := newEngine(t)
	s := spec("slow", reactor(t, guestSlow))
	s.Scaling.MinWarm = 1
	s.Limits.MaxConcurrency = 2
	s.Scaling.MaxInstances = 2
	s.Limits.QueueTimeout = 5 * time.Second
	f, err := e.Load(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}

	type result struct {
		resp *sandbox.Response
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		resp, err := f.Invoke(context.Background(), get("/slow?d=400ms"))
		slow <- result{resp, err}
	}()
	wantStats(t, f, sandbox.Stats{Busy: 1, Total: 1})

	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		closed <- f.Close(ctx)
	}()
	// New requests are refused as soon as Close has begun, without waiting in the queue.
	fermiontest.WaitFor(t, 5*time.Second, func() error {
		_, err := f.Invoke(context.Background(), get("/slow"))
		var se *sandbox.Error
		if errors.As(err, &se) && se.Status == http.StatusServiceUnavailable && se.Reason == telemetry.ReasonClosed {
			return nil
		}
		return fmt.Errorf("Invoke during Close: %v", err)
	})

	r := <-slow
	if r.err != nil || r.resp.Status != http.StatusOK || string(r.resp.Body) != "ok" {
		t.Fatalf("in-flight request during Close: %v %v", r.resp, r.err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if st := f.Stats(); st != (sandbox.Stats{}) {
		t.Fatalf("stats after Close %+v", st)
	}
	resp, err := invoke(t, f, get("/slow"))
	se := wantError(t, resp, err, http.StatusServiceUnavailable, telemetry.ReasonClosed)
	if se.RetryAfter <= 0 {
		t.Fatalf("RetryAfter = %d", se.RetryAfter)
	}
	if err := f.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	wantMetric(t, "concurrency rejections", rejections(m, "slow", telemetry.LimitConcurrency), 0)
}

// TestCloseCommand checks Close and later requests for a command module.
func TestCloseCommand(t *testing.T) {
	e, _ := newEngine(t)
	f, err := e.Load(context.Background(), spec("cgi", command(t, guestCGI)))
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, f, get("/cgi"), "method: GET")
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, err := invoke(t, f, get("/cgi"))
	wantError(t, resp, err, http.StatusServiceUnavailable, telemetry.ReasonClosed)
}

// TestInstanceMemoryFollowsUse checks that an instance holds the memory its guest uses,
// not its limit: two warm instances of a small guest with a 512 MiB limit must not hold
// a GiB. (Memory reserved up front is zeroed by the Go runtime whenever it reuses freed
// heap, so it would become resident after the first instance churn.)
func TestInstanceMemoryFollowsUse(t *testing.T) {
	e, _ := newEngine(t)
	s := spec("slow", reactor(t, guestSlow))
	s.Limits.MemoryBytes = 512 << 20
	s.Scaling.MinWarm = 2
	s.Scaling.MaxInstances = 2
	heap := func() int64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	before := heap()
	f := load(t, e, s)
	if grew := heap() - before; grew > 256<<20 {
		t.Fatalf("two warm instances hold %d MiB of heap", grew>>20)
	}
	wantOK(t, f, get("/slow"), "ok")
}

// TestPoolAutoscale: with a target utilization below 100%, the pool grows past the peak
// it served (in the background, not in a request's path), so that traffic rising to
// the new size finds warm instances; once the peak is idle_timeout old it shrinks back.
func TestPoolAutoscale(t *testing.T) {
	e, m := newEngine(t)
	s := spec("slow", reactor(t, guestSlow))
	s.Scaling.MinWarm = 1
	s.Scaling.MaxInstances = 8
	s.Limits.MaxConcurrency = 8
	s.Scaling.IdleTimeout = 2 * time.Second
	s.Scaling.TargetUtilizationPercentage = 50
	f := load(t, e, s)
	desired := func() float64 {
		return scrapeGauge(m, "fermion_instances_desired", map[string]string{"function": "slow", "version": version})
	}
	wantMetric(t, "desired before traffic", desired(), 1)

	runConcurrently(t, f, 3, "/slow?d=200ms")()
	// Peak 3 at 50%: six instances, three of them made ahead of traffic.
	wantStats(t, f, sandbox.Stats{Warm: 6, Total: 6})
	wantMetric(t, "desired after a peak of 3", desired(), 6)
	// One prewarmed at load, at most two made for the requests that found none warm,
	// the rest by the autoscaler ahead of traffic.
	prewarm, request, scale := startsOf(m, "slow", telemetry.StartPrewarm), startsOf(m, "slow", telemetry.StartRequest), startsOf(m, "slow", telemetry.StartScale)
	if prewarm != 1 || request > 2 || request+scale != 5 || startsOf(m, "slow", telemetry.StartReplace) != 0 {
		t.Fatalf("starts: prewarm %v, request %v, scale %v; want 1, at most 2, and 5 - request", prewarm, request, scale)
	}
	cold := coldStarts(m, "slow")
	runConcurrently(t, f, 6, "/slow?d=200ms")()
	wantMetric(t, "cold starts of six requests on six warm instances", coldStarts(m, "slow"), cold)
	// Peak 6 at 50% is 12, capped at max_instances.
	wantStats(t, f, sandbox.Stats{Warm: 8, Total: 8})

	// No traffic: once the peak leaves the window, idle instances go, down to min_warm.
	fermiontest.WaitFor(t, 20*time.Second, func() error {
		if s := f.Stats(); s != (sandbox.Stats{Warm: 1, Total: 1}) {
			return fmt.Errorf("stats %+v, want one warm instance", s)
		}
		return nil
	})
	wantMetric(t, "desired after the window", desired(), 1)
	wantMetric(t, "idle discards", discards(m, "slow", telemetry.ReasonIdle), 7)
}
