package sandbox

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"fermion.dev/fermion/internal/telemetry"
)

// TestTimelineBounds: the record keeps the last TimelineKeep discarded instances, most
// recent first, counts the others as dropped, and bounds each instance's events while
// keeping the first three and the discard.
func TestTimelineBounds(t *testing.T) {
	var tl timeline
	t0 := time.Unix(1_000_000, 0)
	const n = TimelineKeep + 8
	for i := uint64(1); i <= n; i++ {
		r := tl.add(i, t0.Add(time.Duration(i)*time.Second), "initialize", telemetry.StartRequest)
		tl.ready(r, r.created, r.created.Add(time.Millisecond), false, 1<<20)
		tl.discard(r, r.created.Add(time.Second), telemetry.ReasonIdle, "")
	}
	live := tl.add(n+1, t0, "snapshot", telemetry.StartPrewarm)
	tl.ready(live, t0, t0.Add(2*time.Millisecond), true, 2<<20)
	for i := range 40 {
		end := t0.Add(time.Duration(i) * time.Millisecond)
		tl.request(live, uint64(i+1), end, 500, fmt.Errorf("failure %d", i))
		live.countLocked(uint64(i+1), end)
	}
	got, dropped := tl.snapshot()
	if dropped != 8 {
		t.Errorf("dropped = %d, want 8", dropped)
	}
	if len(got) != TimelineKeep+1 {
		t.Fatalf("%d timelines, want %d", len(got), TimelineKeep+1)
	}
	if got[0].ID != n+1 || got[0].State != "idle" || got[0].Requests != 40 || got[0].Errors != 40 || got[0].InitMillis != 2 {
		t.Errorf("live timeline = %+v", got[0])
	}
	ev := got[0].Events
	if len(ev) != timelineEvents-1 {
		t.Fatalf("%d events on the live instance, want %d (one place kept for the discard)", len(ev), timelineEvents-1)
	}
	for i, want := range []string{EventCreated, EventInitialized, EventWarmed} {
		if ev[i].Kind != want {
			t.Errorf("event %d = %q, want %q", i, ev[i].Kind, want)
		}
	}
	if last := ev[len(ev)-1]; last.Kind != EventFailed || last.Detail != "failure 39" {
		t.Errorf("last event = %+v, want the last failure", last)
	}
	for i, tl := range got[1:] {
		if want := uint64(n - i); tl.ID != want || tl.State != "discarded" || tl.DiscardReason != telemetry.ReasonIdle {
			t.Errorf("discarded %d: id %d state %q reason %q, want id %d, most recent first", i, tl.ID, tl.State, tl.DiscardReason, want)
		}
	}
	tl.discard(live, t0.Add(time.Minute), telemetry.ReasonTrap, "")
	tl.discard(live, t0.Add(time.Hour), telemetry.ReasonIdle, "") // twice: ignored
	got, _ = tl.snapshot()
	d := got[0]
	if d.ID != n+1 || d.DiscardReason != telemetry.ReasonTrap || d.DiscardDetail != "failure 39" || len(d.Events) != timelineEvents {
		t.Fatalf("discarded live instance = id %d reason %q detail %q, %d events", d.ID, d.DiscardReason, d.DiscardDetail, len(d.Events))
	}
	if k := d.Events[len(d.Events)-1]; k.Kind != EventDiscarded || k.Detail != telemetry.ReasonTrap {
		t.Errorf("last event = %+v, want the discard", k)
	}
}

// TestStartFailureReasons: a failed start is discarded under the reason of its cause.
func TestStartFailureReasons(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"warmup", fmt.Errorf("start: %w", &WarmupError{Path: "/warmup", Status: 500}), telemetry.ReasonWarmup},
		{"timeout", &startError{timeout: time.Second}, telemetry.ReasonTimeout},
		{"memory", &startError{memory: 1 << 20}, telemetry.ReasonOOM},
		{"trap", &startError{err: errors.New("unreachable")}, telemetry.ReasonTrap},
		{"instantiate", errors.New("instantiate: bad import"), ReasonStart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := startFailure(tc.err); got != tc.want {
				t.Errorf("startFailure = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTimelineRequestAllocs: counting a successful request allocates nothing.
func TestTimelineRequestAllocs(t *testing.T) {
	var tl timeline
	r := tl.add(1, time.Now(), "initialize", telemetry.StartRequest)
	tl.request(r, 1, time.Now(), 200, nil)
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { tl.request(r, 2, now, 200, nil) }); n != 0 {
		t.Errorf("%v allocations per request, want 0", n)
	}
}

// TestTimelineMemory measures what a version's record holds at worst: TimelineKeep
// discarded instances, each with its events full of failures carrying the longest
// detail; and typically, with no failure. The figures are in docs/RATIONALE.md.
func TestTimelineMemory(t *testing.T) {
	long := errors.New(string(make([]byte, 2*timelineDetail)))
	measure := func(fail bool) float64 {
		const versions = 50
		tls := make([]timeline, versions)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		now := time.Now()
		for v := range tls {
			for i := uint64(1); i <= TimelineKeep; i++ {
				r := tls[v].add(i, now, "initialize", telemetry.StartRequest)
				tls[v].ready(r, now, now, true, 1<<20)
				for k := range uint64(20) {
					var err error
					if fail {
						err = long
					}
					tls[v].request(r, k+1, now, 200, err)
					r.countLocked(k+1, now)
				}
				tls[v].discard(r, now, telemetry.ReasonTrap, "")
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(tls)
		return float64(after.HeapAlloc-before.HeapAlloc) / versions
	}
	typical, worst := measure(false), measure(true)
	t.Logf("per version, %d discarded instances: typical %.1f KiB, worst %.1f KiB", TimelineKeep, typical/1024, worst/1024)
	if worst > 256<<10 {
		t.Errorf("worst case %.0f KiB per version, want at most 256 KiB", worst/1024)
	}
}

// BenchmarkTimelineRequest is the timeline's share of a warm request that succeeds:
// its events (none) and its count and time, written under the pool's lock, which
// putInstance holds anyway (the lock is not in the figure).
func BenchmarkTimelineRequest(b *testing.B) {
	var tl timeline
	r := tl.add(1, time.Now(), "initialize", telemetry.StartRequest)
	end := time.Now()
	n := uint64(1)
	tl.request(r, n, end, 200, nil)
	b.ReportAllocs()
	for b.Loop() {
		n++
		tl.request(r, n, end, 200, nil)
		r.countLocked(n, end)
	}
}
