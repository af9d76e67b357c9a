package bench

// The control plane's SLO engine tick (internal/sloctl) over 1,000 SLOs: what the
// leader does every 10 s — read the alert state and the marks from JetStream KV,
// slo.Evaluate, write the state back (compare-and-swap), set the budget gauges — against
// BenchmarkSLOEvaluate1000 (the pure evaluation alone) in the same run. Reproduce with
//
//	go test -c -o /tmp/bench.test ./bench/ && cd bench &&
//	for i in 1 2 3 4 5; do /tmp/bench.test -test.run '^$' -test.bench 'SLOEvaluate1000|SLOEngineTick1000' -test.benchtime 2s; done
//
// Results are in bench/RESULTS.md ("SLO engine tick in the control plane").

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/slo"
	"fermion.dev/fermion/internal/sloctl"
)

// lockedSLIs is slo.Intervals made safe for the controller's concurrent readers.
type lockedSLIs struct {
	mu sync.Mutex
	iv *slo.Intervals
}

func (l *lockedSLIs) Series(sp *slo.Spec, from, to time.Time) []slo.Series {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.iv.Series(sp, from, to)
}

func (l *lockedSLIs) Counts(s slo.Series, sli slo.SLI, from, to time.Time) slo.Counts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.iv.Counts(s, sli, from, to)
}

func BenchmarkSLOEngineTick1000(b *testing.B) {
	specs, iv, now := sloFleet(1000, 50)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	eng, err := engine.Start(ctx, engine.Config{DataDir: b.TempDir(), SyncAlways: true})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	bk, err := sloctl.OpenBuckets(ctx, eng.JetStream(), 1)
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	at := now
	c, err := sloctl.New(sloctl.Config{Buckets: bk, Source: &lockedSLIs{iv: iv}, Interval: time.Hour,
		Lead: func() (uint64, bool) { return 1, true },
		Now:  func() time.Time { mu.Lock(); defer mu.Unlock(); return at }, Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	if err := c.WaitReady(ctx); err != nil {
		b.Fatal(err)
	}
	if _, _, e := c.ApplySpecs(ctx, specs, "", "bench"); e != nil {
		b.Fatal(e)
	}
	tr, err := c.Tick(ctx)
	if err != nil || len(tr) != 50 {
		b.Fatalf("first tick: %d transitions, %v; want 50 pages", len(tr), err)
	}
	b.ReportAllocs()
	i := 0
	reportCPU(b, func() {
		mu.Lock()
		at = now.Add(time.Duration(i%2) * time.Second)
		mu.Unlock()
		if _, err := c.Tick(ctx); err != nil {
			b.Fatal(err)
		}
		i++
	})
}
