package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// gatedTarget is an upstream for the dial guest: it counts the requests inside it at
// once, which the function's concurrency limit bounds, notes the order they came in
// (their ?i=), and holds each until open is called.
type gatedTarget struct {
	url          string
	inside, most atomic.Int32
	gate         chan struct{}
	openOnce     sync.Once
	mu           sync.Mutex
	order        []string
}

func newGatedTarget(t *testing.T) *gatedTarget {
	t.Helper()
	g := &gatedTarget{gate: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := g.inside.Add(1)
		for m := g.most.Load(); n > m && !g.most.CompareAndSwap(m, n); m = g.most.Load() {
		}
		g.mu.Lock()
		g.order = append(g.order, r.URL.Query().Get("i"))
		g.mu.Unlock()
		select {
		case <-g.gate:
		case <-r.Context().Done():
		}
		// Before answering: the guest's call, and so its slot, ends after this.
		g.inside.Add(-1)
		w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(g.open) // runs before srv.Close
	g.url = srv.URL
	return g
}

func (g *gatedTarget) open() { g.openOnce.Do(func() { close(g.gate) }) }

// request is the dial guest's request for the target, numbered i.
func (g *gatedTarget) request(i int) *sandbox.Request {
	return get("/dial?url=" + url.QueryEscape(fmt.Sprintf("%s/?i=%d", g.url, i)))
}

// waitInside waits until n requests are inside the target.
func (g *gatedTarget) waitInside(t *testing.T, n int32) {
	t.Helper()
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if got := g.inside.Load(); got != n {
			return fmt.Errorf("%d requests inside the target, want %d", got, n)
		}
		return nil
	})
}

// dialSpec is the dial guest allowed to reach target, with roomy timeouts: a request
// held at the target must not run into one.
func dialSpec(t *testing.T, target *gatedTarget, limit int, queue time.Duration) sandbox.Spec {
	t.Helper()
	p, err := manifest.ParseHostPattern(target.url)
	if err != nil {
		t.Fatal(err)
	}
	s := spec("dial", reactor(t, guestDial))
	s.Capabilities.AllowedOutboundHosts = []manifest.HostPattern{p}
	s.Capabilities.OutboundTimeout = time.Minute
	s.Limits.Timeout = time.Minute
	s.Limits.MaxConcurrency = limit
	s.Scaling.MaxInstances = 2 * limit // the concurrency limit, not the cap, bounds requests
	s.Limits.QueueTimeout = queue
	return s
}

func wantQueued(t *testing.T, f *sandbox.Function, n int) {
	t.Helper()
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if got := sandbox.Queued(f); got != n {
			return fmt.Errorf("%d requests queued, want %d", got, n)
		}
		return nil
	})
}

// invokeAsync runs req and sends its result, as an error unless 200 "ok".
func invokeAsync(ctx context.Context, f *sandbox.Function, req *sandbox.Request, done chan<- error) {
	go func() {
		resp, err := f.Invoke(ctx, req)
		if err == nil && (resp.Status != http.StatusOK || string(resp.Body) != "ok") {
			err = fmt.Errorf("status %d %q", resp.Status, resp.Body)
		}
		done <- err
	}()
}

// TestSlotsHammer sends many more concurrent requests than the concurrency limit, all
// held at first: the target never sees more than the limit at once, the rest queue,
// and every request is answered once the target lets them through.
func TestSlotsHammer(t *testing.T) {
	const (
		limit    = 3
		workers  = 16
		requests = 8
	)
	target := newGatedTarget(t)
	e, m := newEngine(t)
	f := load(t, e, dialSpec(t, target, limit, time.Minute))

	errs := make(chan error, workers*requests)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range requests {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				resp, err := f.Invoke(ctx, target.request(w*requests+i))
				cancel()
				if err == nil && (resp.Status != http.StatusOK || string(resp.Body) != "ok") {
					err = fmt.Errorf("status %d %q", resp.Status, resp.Body)
				}
				if err != nil {
					errs <- fmt.Errorf("worker %d request %d: %w", w, i, err)
				}
			}
		}()
	}
	// Every slot taken and held, everyone else queued.
	target.waitInside(t, limit)
	wantQueued(t, f, workers-limit)
	if st := f.Stats(); st.Busy != limit || st.Total != limit {
		t.Fatalf("stats with every slot held %+v, want %d busy of %d", st, limit, limit)
	}
	target.open()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if most := target.most.Load(); most > limit {
		t.Fatalf("the target saw %d requests at once; the limit is %d", most, limit)
	}
	if got := len(target.order); got != workers*requests {
		t.Fatalf("the target saw %d requests, want %d", got, workers*requests)
	}
	wantMetric(t, "concurrency rejections", rejections(m, "dial", telemetry.LimitConcurrency), 0)
	wantQueued(t, f, 0)
	if st := f.Stats(); st.Busy != 0 || st.Total > limit || st.Total < 1 {
		t.Fatalf("stats after the hammer %+v, want none busy and at most %d", st, limit)
	}
}

// TestSlotsQueueOrder: requests queued for a slot get it in the order they came.
func TestSlotsQueueOrder(t *testing.T) {
	const queued = 5
	target := newGatedTarget(t)
	e, _ := newEngine(t)
	f := load(t, e, dialSpec(t, target, 1, time.Minute))
	done := make(chan error, queued+1)
	invokeAsync(context.Background(), f, target.request(0), done)
	target.waitInside(t, 1)
	for i := 1; i <= queued; i++ {
		invokeAsync(context.Background(), f, target.request(i), done)
		wantQueued(t, f, i)
	}
	target.open()
	for range queued + 1 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got, want := strings.Join(target.order, ","), "0,1,2,3,4,5"; got != want {
		t.Fatalf("the target saw requests in the order %s, want %s", got, want)
	}
}

// TestSlotsQueueTimeout: with every slot held, each queued request gives up at its
// queue timeout with the concurrency error and metric, or when its client leaves with
// 499, and leaves the queue; no slot is lost, so the function serves again after.
func TestSlotsQueueTimeout(t *testing.T) {
	const (
		limit   = 2
		waiters = 6
	)
	t.Run("timeout", func(t *testing.T) {
		target := newGatedTarget(t)
		e, m := newEngine(t)
		f := load(t, e, dialSpec(t, target, limit, 100*time.Millisecond))
		held := make(chan error, limit)
		for i := range limit {
			invokeAsync(context.Background(), f, target.request(i), held)
		}
		target.waitInside(t, limit)
		refused := make(chan error, waiters)
		for i := range waiters {
			invokeAsync(context.Background(), f, target.request(limit+i), refused)
		}
		for range waiters {
			var se *sandbox.Error
			if err := <-refused; !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable || se.Reason != telemetry.LimitConcurrency {
				t.Fatalf("queued request past its timeout: %v, want 503 %s", err, telemetry.LimitConcurrency)
			}
		}
		wantMetric(t, "concurrency rejections", rejections(m, "dial", telemetry.LimitConcurrency), waiters)
		wantQueued(t, f, 0)
		target.open()
		for range limit {
			if err := <-held; err != nil {
				t.Fatal(err)
			}
		}
		wantStats(t, f, sandbox.Stats{Warm: limit, Total: limit})
		wantOK(t, f, target.request(99), "ok")
	})
	t.Run("canceled", func(t *testing.T) {
		target := newGatedTarget(t)
		e, m := newEngine(t)
		f := load(t, e, dialSpec(t, target, limit, time.Minute))
		held := make(chan error, limit+waiters/2)
		for i := range limit {
			invokeAsync(context.Background(), f, target.request(i), held)
		}
		target.waitInside(t, limit)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		canceled := make(chan error, waiters/2)
		for i := range waiters {
			if i%2 == 0 {
				invokeAsync(ctx, f, target.request(limit+i), canceled)
			} else {
				invokeAsync(context.Background(), f, target.request(limit+i), held)
			}
		}
		wantQueued(t, f, waiters)
		cancel()
		for range waiters / 2 {
			var se *sandbox.Error
			if err := <-canceled; !errors.As(err, &se) || se.Status != 499 || se.Reason != telemetry.ReasonCanceled {
				t.Fatalf("queued request whose client left: %v, want 499 %s", err, telemetry.ReasonCanceled)
			}
		}
		wantQueued(t, f, waiters/2)
		target.open()
		for range limit + waiters/2 {
			if err := <-held; err != nil {
				t.Fatal(err)
			}
		}
		wantMetric(t, "concurrency rejections", rejections(m, "dial", telemetry.LimitConcurrency), 0)
		wantQueued(t, f, 0)
		if st := f.Stats(); st.Busy != 0 {
			t.Fatalf("stats after the queue emptied %+v", st)
		}
	})
}

// TestSlotsCloseWithWaiters: Close refuses the queued requests at once, as closed (not
// over the limit), waits for the one in flight, and then leaves nothing behind. A Close
// whose context ends first says so, and the request in flight still completes.
func TestSlotsCloseWithWaiters(t *testing.T) {
	const waiters = 4
	for _, tt := range []struct {
		name      string
		closeWait time.Duration // Close's context
		wantErr   error
	}{
		{name: "drained", closeWait: time.Minute},
		{name: "context ends first", closeWait: 0, wantErr: context.DeadlineExceeded},
	} {
		t.Run(tt.name, func(t *testing.T) {
			target := newGatedTarget(t)
			e, m := newEngine(t)
			f, err := e.Load(context.Background(), dialSpec(t, target, 1, time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			held := make(chan error, 1)
			invokeAsync(context.Background(), f, target.request(0), held)
			target.waitInside(t, 1)
			refused := make(chan error, waiters)
			for i := range waiters {
				invokeAsync(context.Background(), f, target.request(1+i), refused)
			}
			wantQueued(t, f, waiters)

			closed := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), tt.closeWait)
				defer cancel()
				closed <- f.Close(ctx)
			}()
			for range waiters {
				var se *sandbox.Error
				if err := <-refused; !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable || se.Reason != telemetry.ReasonClosed {
					t.Fatalf("queued request during Close: %v, want 503 %s", err, telemetry.ReasonClosed)
				}
			}
			wantQueued(t, f, 0)
			if tt.wantErr == nil {
				select {
				case err := <-closed:
					t.Fatalf("Close returned (%v) while a request was in flight", err)
				default:
				}
			} else if err := <-closed; !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), "runtime closes when the requests still running end") {
				t.Fatalf("Close with its context ended = %v, want %v", err, tt.wantErr)
			}
			target.open()
			if err := <-held; err != nil {
				t.Fatalf("request in flight during Close: %v", err)
			}
			if tt.wantErr == nil {
				if err := <-closed; err != nil {
					t.Fatalf("Close: %v", err)
				}
			}
			wantStats(t, f, sandbox.Stats{})
			wantMetric(t, "concurrency rejections", rejections(m, "dial", telemetry.LimitConcurrency), 0)
			resp, err := invoke(t, f, target.request(9))
			wantError(t, resp, err, http.StatusServiceUnavailable, telemetry.ReasonClosed)
		})
	}
}

// TestTimelineBusyFromPool: an instance serving a request shows busy in its timeline,
// and idle again once back in the pool, though the request path records neither.
func TestTimelineBusyFromPool(t *testing.T) {
	target := newGatedTarget(t)
	e, _ := newEngine(t)
	s := dialSpec(t, target, 2, time.Minute)
	s.Scaling.MinWarm = 2
	f := load(t, e, s)
	states := func() string {
		tls, _ := f.Timelines()
		var out []string
		for _, tl := range tls {
			out = append(out, tl.State)
		}
		return strings.Join(out, ",")
	}
	if got := states(); got != "idle,idle" {
		t.Fatalf("states of two warm instances: %s", got)
	}
	done := make(chan error, 1)
	invokeAsync(context.Background(), f, target.request(0), done)
	target.waitInside(t, 1)
	// The request took the warmest instance: the last made, the second listed.
	if got := states(); got != "idle,busy" {
		t.Fatalf("states with a request in flight: %s, want idle,busy", got)
	}
	target.open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := states(); got != "idle,idle" {
		t.Fatalf("states after the request: %s", got)
	}
}
