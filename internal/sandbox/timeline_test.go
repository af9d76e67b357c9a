package sandbox_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// timelineOf returns the timeline of instance id, failing the test when there is none.
func timelineOf(t *testing.T, f *sandbox.Function, id uint64) v1.InstanceTimeline {
	t.Helper()
	tls, _ := f.Timelines()
	for _, tl := range tls {
		if tl.ID == id {
			return tl
		}
	}
	t.Fatalf("no timeline for instance %d in %+v", id, tls)
	return v1.InstanceTimeline{}
}

func eventKinds(tl v1.InstanceTimeline) string {
	var k []string
	for _, e := range tl.Events {
		k = append(k, e.Kind)
	}
	return strings.Join(k, ",")
}

// onlyTimeline returns f's one instance timeline, failing unless there is exactly one.
func onlyTimeline(t *testing.T, f *sandbox.Function) v1.InstanceTimeline {
	t.Helper()
	tls, _ := f.Timelines()
	if len(tls) != 1 {
		t.Fatalf("%d timelines, want 1: %+v", len(tls), tls)
	}
	return tls[0]
}

// readTimelines reads f's timelines in a loop, as the node's endpoint may while
// requests run, until the returned function is called; it returns once reading stopped.
func readTimelines(f *sandbox.Function) (stop func()) {
	done := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-done:
				return
			default:
				f.Timelines()
			}
		}
	}()
	return func() { close(done); readers.Wait() }
}

// TestTimelineDiscardReasons: an instance's timeline counts its requests and failures
// under the same number Response.Instance carries, and says why it was discarded:
// a panic, a timeout, or idle scale-down.
func TestTimelineDiscardReasons(t *testing.T) {
	t.Run("panic", func(t *testing.T) {
		e, _ := newEngine(t)
		f := load(t, e, spec("panic", reactor(t, guestPanic)))
		resp := wantOK(t, f, get("/panic"), "ok")
		id := resp.Instance
		tl := timelineOf(t, f, id)
		if tl.State != "idle" || tl.Requests != 1 || tl.Version != version || tl.LastRequest.IsZero() || tl.MemoryBytes == 0 {
			t.Fatalf("after one request: %+v", tl)
		}
		resp2, err := invoke(t, f, get("/panic?panic=1"))
		wantError(t, resp2, err, http.StatusInternalServerError, telemetry.ReasonPanic)
		tl = timelineOf(t, f, id)
		if tl.State != "discarded" || tl.Requests != 2 || tl.Errors != 1 || tl.DiscardReason != telemetry.ReasonPanic ||
			!strings.Contains(tl.DiscardDetail, "panicked") || tl.Discarded.IsZero() {
			t.Fatalf("after the panic: %+v", tl)
		}
		if got, want := eventKinds(tl), "created,initialized,first_request,request_failed,discarded"; got != want {
			t.Errorf("events %s, want %s", got, want)
		}
		next := wantOK(t, f, get("/panic"), "ok")
		if next.Instance != id+1 || timelineOf(t, f, next.Instance).Reason != telemetry.StartRequest {
			t.Errorf("the replacement is instance %d (%+v), want %d started for the request", next.Instance, timelineOf(t, f, next.Instance), id+1)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		e, _ := newEngine(t)
		s := spec("loop", reactor(t, guestLoop))
		s.Limits.Timeout = 300 * time.Millisecond
		f := load(t, e, s)
		id := wantOK(t, f, get("/loop"), "ok").Instance
		resp, err := invoke(t, f, get("/loop?loop=1"))
		wantError(t, resp, err, http.StatusGatewayTimeout, telemetry.ReasonTimeout)
		if tl := timelineOf(t, f, id); tl.DiscardReason != telemetry.ReasonTimeout || tl.Errors != 1 {
			t.Fatalf("after the timeout: %+v", tl)
		}
	})
	t.Run("idle", func(t *testing.T) {
		if testing.Short() {
			t.Skip("waits for idle reaping")
		}
		e, _ := newEngine(t)
		s := spec("idle", reactor(t, guestHello))
		s.Scaling.MinWarm, s.Scaling.IdleTimeout = 0, 200*time.Millisecond
		f := load(t, e, s)
		id := wantOK(t, f, get("/"), "").Instance
		fermiontest.WaitFor(t, 10*time.Second, func() error {
			tls, _ := f.Timelines()
			for _, tl := range tls {
				if tl.ID == id && tl.DiscardReason == telemetry.ReasonIdle {
					return nil
				}
			}
			return fmt.Errorf("instance %d not reaped yet: %+v", id, tls)
		})
	})
	t.Run("warmup", func(t *testing.T) {
		e, _ := newEngine(t)
		s := spec("warm", reactor(t, guestStatus))
		s.Warmup = "/warmup?status=200"
		f := load(t, e, s)
		tls, _ := f.Timelines()
		if len(tls) != 1 || tls[0].State != "idle" || eventKinds(tls[0]) != "created,initialized,warmed" || tls[0].Reason != telemetry.StartPrewarm {
			t.Fatalf("after a warmed prewarm: %+v", tls)
		}
		if tls[0].InitMillis <= 0 {
			t.Errorf("InitMillis = %v, want > 0", tls[0].InitMillis)
		}
	})
}

// TestTimelineHammer: concurrent requests and readers of the timelines; every request
// is counted once, on the instance that served it.
func TestTimelineHammer(t *testing.T) {
	e, _ := newEngine(t)
	f := load(t, e, spec("hammer", reactor(t, guestHello)))
	const workers, each = 4, 50
	served := make([]map[uint64]uint64, workers)
	var wg sync.WaitGroup
	stopReading := readTimelines(f)
	for w := range workers {
		served[w] = map[uint64]uint64{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				resp, err := f.Invoke(context.Background(), get("/"))
				if err != nil {
					t.Error(err)
					return
				}
				served[w][resp.Instance]++
			}
		}()
	}
	wg.Wait()
	stopReading()
	want := map[uint64]uint64{}
	for _, m := range served {
		for id, n := range m {
			want[id] += n
		}
	}
	tls, _ := f.Timelines()
	got := map[uint64]uint64{}
	for _, tl := range tls {
		if tl.Requests > 0 {
			got[tl.ID] = tl.Requests
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("requests per instance: timelines %v, responses %v", got, want)
	}
}
