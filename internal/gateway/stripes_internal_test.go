package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fermion.dev/fermion/internal/telemetry"
)

// TestTableDrainAtSwap: the steps of a request that starts just as SetRoutes swaps the
// table, in each order acquire's take and re-check can fall around the swap. The table
// is never reported drained while a request holds it, and is drained, once, when the
// last one lets go.
func TestTableDrainAtSwap(t *testing.T) {
	routes := []Route{{Prefix: "/a", Target: &fakeTarget{name: "a"}}}
	newGateway := func(t *testing.T) (*Gateway, *table, *int) {
		g := New(Config{})
		if err := g.SetRoutes(routes); err != nil {
			t.Fatal(err)
		}
		old := g.table.Load()
		drains := new(int)
		old.onDrained = func() { *drains++ }
		return g, old, drains
	}
	t.Run("taken after the swap found the table unused", func(t *testing.T) {
		g, old, drains := newGateway(t)
		loaded := g.table.Load()                    // the request read the table pointer ...
		if err := g.SetRoutes(routes); err != nil { // ... SetRoutes swapped and retired it ...
			t.Fatal(err)
		}
		if !old.isDrained() || *drains != 1 {
			t.Fatalf("a replaced table nobody held: drained %v, %d drains", old.isDrained(), *drains)
		}
		const s = 5
		loaded.hold(s) // ... then it took its reference: the re-check sees the new table
		if g.table.Load() == loaded {
			t.Fatal("the re-check after the take found the replaced table current")
		}
		loaded.release(s)
		if *drains != 1 {
			t.Fatalf("drained %d times, want once", *drains)
		}
		if got := g.acquire(s); got == old {
			t.Fatal("acquire returned the replaced table")
		} else {
			got.release(s)
		}
	})
	t.Run("taken before the swap, re-checked after", func(t *testing.T) {
		g, old, drains := newGateway(t)
		const s = 3
		loaded := g.table.Load()
		loaded.hold(s)
		if err := g.SetRoutes(routes); err != nil {
			t.Fatal(err)
		}
		if old.isDrained() || *drains != 0 {
			t.Fatal("a replaced table was drained while a request held a reference to it")
		}
		if g.table.Load() == loaded {
			t.Fatal("the re-check found the replaced table current")
		}
		loaded.release(s) // acquire lets go, and uses the new table
		if !old.isDrained() || *drains != 1 {
			t.Fatalf("after the only reference went: drained %v, %d drains", old.isDrained(), *drains)
		}
	})
	t.Run("held across the swap on several stripes", func(t *testing.T) {
		g, old, drains := newGateway(t)
		stripes := []uint32{0, 1, 1 + uint32(len(old.refs)), 7, 1<<32 - 1}
		for _, s := range stripes {
			if got := g.acquire(s); got != old {
				t.Fatal("acquire did not return the current table")
			}
		}
		if err := g.SetRoutes(routes); err != nil {
			t.Fatal(err)
		}
		for i, s := range stripes {
			if old.isDrained() {
				t.Fatalf("drained with %d of %d requests still holding it", len(stripes)-i, len(stripes))
			}
			old.release(s)
		}
		if !old.isDrained() || *drains != 1 {
			t.Fatalf("after the last request: drained %v, %d drains", old.isDrained(), *drains)
		}
	})
}

// TestTableDrainHammer: requests on many stripes take and let go of tables while
// SetRoutes replaces them; none ever holds a table reported drained, and every
// replaced table drains once the requests stop (Quiesce returns).
func TestTableDrainHammer(t *testing.T) {
	g := New(Config{})
	routes := []Route{{Prefix: "/a", Target: &fakeTarget{name: "a"}}}
	if err := g.SetRoutes(routes); err != nil {
		t.Fatal(err)
	}
	var (
		stop     atomic.Bool
		bad      atomic.Int64
		requests atomic.Int64
		wg       sync.WaitGroup
	)
	for w := range 8 {
		wg.Go(func() {
			for i := uint32(0); !stop.Load(); i++ {
				s := uint32(w) + i*uint32(len(g.table.Load().refs)) // one stripe, named many ways
				tb := g.acquire(s)
				if tb.isDrained() {
					bad.Add(1)
				}
				if _, ok := tb.match("", "/a"); !ok {
					bad.Add(1)
				}
				if tb.isDrained() {
					bad.Add(1)
				}
				tb.release(s)
				requests.Add(1)
			}
		})
	}
	swaps := 2000
	if testing.Short() {
		swaps = 200
	}
	for range swaps {
		if err := g.SetRoutes(routes); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Fatalf("%d times a request held a table already reported drained", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Quiesce(ctx); err != nil {
		t.Fatalf("Quiesce after the requests stopped: %v (a replaced table never drained)", err)
	}
	if n := len(g.retired); n != 0 {
		t.Fatalf("%d replaced tables left after Quiesce", n)
	}
	t.Logf("%d requests across %d swaps", requests.Load(), swaps)
}

// BenchmarkRequestCounts is what a request does to the counts every request changes:
// take and let go of the routing table, and add to and take from the in-flight gauge
// (telemetry on), from GOMAXPROCS goroutines, each a connection. "striped" gives each
// goroutine its own stripe, as the gateway gives connections; "one word" puts every
// goroutine on stripe 0, which is what the gateway did before the counts had stripes
// (one word each). Run with -cpu 1,2: on two cores "one word" pays for the cache line
// moving between them.
func BenchmarkRequestCounts(b *testing.B) {
	g := New(Config{Telemetry: true, Metrics: telemetry.NewMetrics("bench")})
	if err := g.SetRoutes([]Route{{Prefix: "/a", Target: &fakeTarget{name: "a"}}}); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		stripe func() uint32
	}{
		{"striped", func() uint32 { return g.conns.Add(1) }},
		{"one word", func() uint32 { return 0 }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m := g.cfg.Metrics
			start := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				s := tc.stripe()
				for pb.Next() {
					tb := g.acquire(s)
					m.InFlightAdd(s, 1)
					m.InFlightAdd(s, -1)
					tb.release(s)
				}
			})
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}
