package gateway

import (
	"testing"
	"time"

	"fermion.dev/fermion/internal/sli"
)

// TestSLIHandlesReleased: a routing table holds one SLI handle per route from SetRoutes
// until it is replaced and its last request has finished, then releases them once.
func TestSLIHandlesReleased(t *testing.T) {
	agg := sli.NewAggregator(sli.Config{Node: "n1", Start: time.Now()})
	g := New(Config{SLIs: agg, Telemetry: true})
	a := &fakeTarget{name: "a"}
	routes := []Route{{Prefix: "/a", Target: a}, {Host: "x.example.com", Prefix: "/a", Target: a, Deployment: "a-canary"}}
	if err := g.SetRoutes(routes); err != nil {
		t.Fatal(err)
	}
	first := g.table.Load()
	wantKeys := []sli.Key{{Deployment: "a", Version: "1.0.0", Route: "/a"}, {Deployment: "a-canary", Version: "1.0.0", Route: "x.example.com/a"}}
	for i, want := range wantKeys {
		rt := first.routes[i].tel
		if rt == nil || rt.sli == nil || rt.key != want {
			t.Fatalf("route %d telemetry %+v, want a handle on %+v", i, rt, want)
		}
	}
	released := 0
	inner := first.onDrained
	first.onDrained = func() { released++; inner() }

	// A request still using the first table holds its handles past the swap.
	held := g.acquire(0)
	if held != first {
		t.Fatal("acquire did not return the current table")
	}
	if err := g.SetRoutes(routes); err != nil {
		t.Fatal(err)
	}
	if released != 0 {
		t.Fatal("handles released while a request still used the replaced table")
	}
	held.release(0)
	if released != 1 {
		t.Fatalf("handles released %d times after the last request, want once", released)
	}
	// Releasing again (a later Quiesce, another request) must not release twice.
	held.retire()
	if released != 1 {
		t.Fatalf("handles released %d times, want once", released)
	}

	t.Run("telemetry off holds no handles", func(t *testing.T) {
		g := New(Config{SLIs: agg, Telemetry: false})
		if err := g.SetRoutes(routes); err != nil {
			t.Fatal(err)
		}
		if tb := g.table.Load(); tb.routes[0].tel.sli != nil || tb.onDrained != nil {
			t.Fatal("a gateway with telemetry off resolved SLI handles")
		}
	})
}
