package bench

// SLO evaluation per tick against the DESIGN.md budget of 1,000 SLOs in ≤ 100 ms.
// Reproduce with
//
//	go test -c -o /tmp/bench.test ./bench/ && cd bench &&
//	for i in 1 2 3 4 5; do /tmp/bench.test -test.run '^$' -test.bench SLO -test.benchtime 1s; done
//
// (rounds interleave the two benchmarks, so each round's ratio compares like with like)
//
// Results and the machine are in bench/RESULTS.md ("SLO engine").

import (
	"fmt"
	"testing"
	"time"

	"fermion.dev/fermion/internal/slo"
)

// sloFleet is n node-scoped 99.9 % SLOs with the workbook preset, one app each, each
// with three nodes' series of 5-minute intervals over the 3-day longest tier window
// (the downsampled SLI store the control plane keeps for SLO windows). burning of the
// apps fail 5 % of requests on one node over the last hour.
func sloFleet(n, burning int) ([]slo.Spec, *slo.Intervals, time.Time) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	now := start.Add(72 * time.Hour)
	iv := slo.NewIntervals()
	specs := make([]slo.Spec, n)
	tiers, _ := slo.PresetTiers("workbook")
	for i := range specs {
		app := fmt.Sprintf("app-%04d", i)
		specs[i] = slo.Spec{Name: app + "-availability", App: app, SLI: slo.SLI{Kind: slo.Availability},
			Objective: slo.Ratio{Num: 999, Den: 1000}, Window: 30 * 24 * time.Hour,
			Scope: slo.Scope{Per: slo.ScopeNode}, Preset: "workbook", Tiers: tiers}
		for node := range 3 {
			s := slo.Series{App: app, Version: "v1", Scope: fmt.Sprintf("node-%d", node)}
			for t := start.Add(5 * time.Minute); !t.After(now); t = t.Add(5 * time.Minute) {
				c := slo.Counts{Good: 3000, Total: 3000}
				if i < burning && node == 0 && now.Sub(t) < time.Hour {
					c.Good = 2850
				}
				if err := iv.Add(s, slo.ScopeNode, specs[i].SLI, t, c); err != nil {
					panic(err)
				}
			}
		}
	}
	return specs, iv, now
}

// BenchmarkSLOEvaluate1000 is one tick of the engine over 1,000 SLOs (3,000 series),
// 50 of them paging.
func BenchmarkSLOEvaluate1000(b *testing.B) {
	specs, iv, now := sloFleet(1000, 50)
	st, _ := slo.Evaluate(slo.State{}, specs, iv, now)
	if len(slo.Incidents(st)) != 50 {
		b.Fatalf("%d incidents, want 50", len(slo.Incidents(st)))
	}
	b.ReportAllocs()
	i := 0
	reportCPU(b, func() {
		// Alternate two instants so every tick re-evaluates the same data as a new tick.
		st, _ = slo.Evaluate(st, specs, iv, now.Add(time.Duration(i%2)*time.Second))
		i++
	})
}

// BenchmarkSLOCountsOnly1000 is the baseline: only the source queries one tick makes
// (series discovery and the seven distinct windows of the workbook tiers per series),
// no alert logic.
func BenchmarkSLOCountsOnly1000(b *testing.B) {
	specs, iv, now := sloFleet(1000, 50)
	windows := []time.Duration{5 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 24 * time.Hour, 72 * time.Hour}
	b.ReportAllocs()
	var sink int64
	reportCPU(b, func() {
		for i := range specs {
			sp := &specs[i]
			for _, s := range iv.Series(sp, now.Add(-72*time.Hour), now) {
				for _, w := range windows {
					sink += iv.Counts(s, sp.SLI, now.Add(-w), now).Total
				}
			}
		}
	})
	if sink == 0 {
		b.Fatal("no counts")
	}
}
