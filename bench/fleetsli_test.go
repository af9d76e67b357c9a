package bench

// The control plane's SLI store under the DESIGN.md fleet budget: 1,000 agents × 20
// versions reporting every 10 s, ingest ≤ 0.2 core and ≤ 300 MiB above idle, and
// `fermion top`'s query (/v1/slis) ≤ 200 ms. Time is simulated (accelerated): each
// tick adds one 10-s interval of every (node, version). Reproduce with
//
//	go test -c -o /tmp/bench.test ./bench/ && cd bench &&
//	for i in 1 2 3; do /tmp/bench.test -test.run '^$' -test.bench FleetSLI -test.benchtime 3x; done
//
// and the whole fleet (1,000 nodes) with FERMION_BENCH_FLEET_NODES=1000 in the
// environment.
//
// Results and the machine are in bench/RESULTS.md ("Fleet SLI store").

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/fleet"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/sliingest"
	"fermion.dev/fermion/internal/slo"
)

// The store's costs grow linearly with the series it holds, so by default the
// simulation runs a tenth of the fleet (100 nodes × 20 versions, quick on this 2-core
// machine) and reports figures scaled to 1,000 nodes (×simScale) beside the measured
// ones. FERMION_BENCH_FLEET_NODES=1000 runs the whole fleet (simScale 1).
var (
	simNodes = func() int {
		if n, err := strconv.Atoi(os.Getenv("FERMION_BENCH_FLEET_NODES")); err == nil && n > 0 && n <= 10000 {
			return n
		}
		return 100
	}()
	simScale = 1000 / float64(simNodes)
)

const (
	simVersions = 20
	simInterval = 10 * time.Second
)

// simPool is a few distinct intervals of a hello-like load (10 req/s, ~300 µs warm
// latencies with a cold tail, an occasional 5xx), shared by the simulated series: the
// store copies what it keeps, so sharing costs it nothing it would not pay anyway.
func simPool() []sli.Summary {
	rng := rand.New(rand.NewPCG(7, 7))
	pool := make([]sli.Summary, 32)
	for i := range pool {
		s := sli.Summary{Latency: &sli.Sketch{}, MemoryMaxBytes: 2 << 20, CPUTime: 30 * time.Millisecond,
			InstanceStarts: map[string]uint64{"scale": 1}}
		for range 100 {
			d := time.Duration(300e3 * math.Exp(0.4*rng.NormFloat64()))
			if rng.IntN(100) == 0 {
				d += 20 * time.Millisecond // a cold start
				s.ColdStarts++
			}
			s.Latency.Add(d)
			if rng.IntN(500) == 0 {
				s.Status[4]++
			} else {
				s.Status[1]++
			}
		}
		pool[i] = s
	}
	return pool
}

var simNodeNames, simVersionNames = func() ([]string, []string) {
	n := make([]string, simNodes)
	for i := range n {
		n[i] = fmt.Sprintf("edge-%04d", i)
	}
	v := make([]string, simVersions)
	for i := range v {
		v[i] = fmt.Sprintf("v%d", i)
	}
	return n, v
}()

// simAppNames are the ten apps the versions belong to (made once, so the benchmarks
// measure the store, not fmt).
var simAppNames = func() []string {
	a := make([]string, 10)
	for i := range a {
		a[i] = fmt.Sprintf("app-%d", i)
	}
	return a
}()

// simWhere is each node's region and zone, looked up as the control plane's node
// table is (a map read), so that the store's costs are not hidden behind parsing.
var simWhere = func() map[string][2]string {
	m := make(map[string][2]string, len(simNodeNames))
	for i, n := range simNodeNames {
		r := fmt.Sprintf("region-%d", i%5)
		m[n] = [2]string{r, fmt.Sprintf("%s-%c", r, 'a'+i%3)}
	}
	return m
}()

func simInfo(node string) (string, string, map[string]string, bool) {
	w, ok := simWhere[node]
	return w[0], w[1], nil, ok
}

// simConfig is the store's configuration as the control plane makes it: nodes' places
// from the node table, and the latency SLOs' thresholds (sloSeries uses 1 ms).
func simConfig() fleet.Config {
	return fleet.Config{Nodes: simInfo, Thresholds: func() []time.Duration { return []time.Duration{time.Millisecond} }}
}

// simTick calls fn with every (node, version)'s summary of the interval at start.
func simTick(pool []sli.Summary, start time.Time, fn func(*sli.Summary)) {
	seq := sli.SeqFor(start, simInterval)
	for n, node := range simNodeNames {
		for v, ver := range simVersionNames {
			s := pool[(n*simVersions+v)%len(pool)]
			s.Node, s.Key = node, sli.Key{Deployment: simAppNames[v%10], Version: ver, Route: "/"}
			s.Seq, s.Start, s.End = seq, start, start.Add(simInterval)
			fn(&s)
		}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// fillStore simulates ticks intervals into a new store, pruning every simulated
// 10 s as the ingest loop does, and returns it with the simulated now.
func fillStore(b *testing.B, ticks int) (*fleet.Store, time.Time) {
	st, err := fleet.New(simConfig())
	if err != nil {
		b.Fatal(err)
	}
	pool := simPool()
	start := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	st.Prune(start) // as the ingest does before it reads: the SLOs' thresholds
	for i := range ticks {
		at := start.Add(time.Duration(i) * simInterval)
		now := at.Add(simInterval)
		simTick(pool, at, func(s *sli.Summary) { st.Add(s, now) })
		st.Prune(now)
	}
	return st, start.Add(time.Duration(ticks) * simInterval)
}

// BenchmarkFleetSLIStoreTick is one simulated 10-s tick (20,000 summaries) into the
// store, after 20 simulated minutes (past the 15-minute detail retention, so the
// store prunes as much as it adds). core is CPU per tick over the tick's 10 s.
func BenchmarkFleetSLIStoreTick(b *testing.B) {
	st, now := fillStore(b, 120)
	pool := simPool()
	b.ReportAllocs()
	b.ResetTimer()
	c0 := cpuTime()
	for range b.N {
		at := now
		now = now.Add(simInterval)
		simTick(pool, at, func(s *sli.Summary) { st.Add(s, now) })
		st.Prune(now)
	}
	core := float64(cpuTime()-c0) / float64(b.N) / float64(simInterval)
	b.ReportMetric(core, "core")
	b.ReportMetric(core*simScale, "core-at-1000-nodes")
}

// BenchmarkFleetSLIHeap reports the store's heap after 20 simulated minutes (the
// detail tier at its steady size, four 5-minute windows per series) above the heap
// before it. The 6-hour local tier and the rollups add one window per series every
// 5 minutes on top.
func BenchmarkFleetSLIHeap(b *testing.B) {
	for range b.N {
		idle := heapInUse()
		st, _ := fillStore(b, 120)
		h := heapInUse() - idle
		b.ReportMetric(float64(h)/(1<<20), "MiB-at-20min")
		b.ReportMetric(float64(h)/(1<<20)*simScale, "MiB-at-20min-1000-nodes")
		b.ReportMetric(float64(st.Stats().Details), "details")
		runtime.KeepAlive(st)
	}
}

// BenchmarkFleetSLIQuery is what `fermion top` asks (by app and version, 5 minutes),
// and with --nodes (20,000 rows), over the store after 20 simulated minutes.
func BenchmarkFleetSLIQuery(b *testing.B) {
	st, now := fillStore(b, 120)
	for _, tt := range []struct {
		name string
		by   []string
	}{{"top", []string{"app", "version"}}, {"top-regions", []string{"app", "version", "region"}}, {"top-nodes", []string{"app", "version", "node"}}} {
		b.Run(tt.name, func(b *testing.B) {
			q := fleet.Query{By: tt.by, Window: 5 * time.Minute}
			took := make([]time.Duration, 0, b.N)
			for range b.N {
				t0 := time.Now()
				l := st.Query(q, now, nil)
				took = append(took, time.Since(t0))
				if len(l.Groups) == 0 || l.Groups[0].Requests == 0 {
					b.Fatalf("groups %+v", l.Groups[:min(1, len(l.Groups))])
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2])/1e6, "p50-ms")
			b.ReportMetric(float64(took[len(took)-1])/1e6, "max-ms")
		})
	}
}

// BenchmarkFleetSLIStream is the JetStream path: each op publishes one simulated tick
// (20,000 encoded summaries) into FERMION_SLIS. "publish" only publishes (the
// baseline); "ingest" also runs the store's ordered consumer and waits until it holds
// the tick. core is the process's CPU per op over the tick's 10 s; the difference is
// the ingest's share.
func BenchmarkFleetSLIStream(b *testing.B) {
	for _, consume := range []bool{false, true} {
		name := map[bool]string{false: "publish", true: "ingest"}[consume]
		b.Run(name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			eng, err := engine.Start(ctx, engine.Config{DataDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			js := eng.JetStream()
			if err := sliingest.EnsureStream(ctx, js, sliingest.StreamConfig(1, sliingest.DefaultMaxBytes)); err != nil {
				b.Fatal(err)
			}
			if err := fleet.OpenStreams(ctx, js, 1); err != nil {
				b.Fatal(err)
			}
			st, _ := fleet.New(fleet.Config{Nodes: simInfo})
			start := time.Now().Truncate(simInterval).Add(-time.Hour)
			tick := 0
			now := func() time.Time { return start.Add(time.Duration(tick+1) * simInterval) }
			in := &fleet.Ingest{JS: js, Store: st, Now: now}
			if consume {
				go in.Run(ctx)
			}
			pool := simPool()
			var buf []byte
			c0 := cpuTime()
			b.ResetTimer()
			for i := range b.N {
				tick = i
				at := start.Add(time.Duration(i) * simInterval)
				simTick(pool, at, func(s *sli.Summary) {
					buf = sli.EncodeSummary(buf[:0], *s)
					m := nats.NewMsg(fleet.RawSubject(s.Node))
					m.Data = append([]byte(nil), buf...)
					m.Header.Set("Nats-Msg-Id", fleet.MsgID(s))
					if _, err := js.PublishMsgAsync(m); err != nil {
						b.Fatal(err)
					}
				})
				<-js.PublishAsyncComplete()
				if consume {
					want := uint64((i + 1) * simNodes * simVersions)
					for st.Stats().Raw["accepted"] < want {
						time.Sleep(5 * time.Millisecond)
					}
				}
			}
			b.StopTimer()
			core := float64(cpuTime()-c0) / float64(b.N) / float64(simInterval)
			b.ReportMetric(core, "core")
			b.ReportMetric(core*simScale, "core-at-1000-nodes")
		})
	}
}

// sloSeries is the i-th of 1,000 SLO series the SLO benchmarks count: a third
// node-scoped (one node's series), a third per region (a region's nodes), a third
// global (every node), half availability and half latency under 1 ms.
func sloSeries(i int) (slo.Series, slo.SLI) {
	ser := slo.Series{App: simAppNames[i%10], Version: simVersionNames[i%simVersions]}
	switch i % 3 {
	case 0:
		ser.Scope = simNodeNames[i%simNodes]
	case 1:
		ser.Scope = fmt.Sprintf("region-%d", i%5)
	default:
		ser.Scope = "global"
	}
	sl := slo.SLI{Kind: slo.Availability}
	if i%2 == 1 {
		sl = slo.SLI{Kind: slo.Latency, Threshold: time.Millisecond}
	}
	return ser, sl
}

// sloCountsTick is what the SLO engine asks of the store in one tick for 1,000 SLO
// series: their counts over each of windows. It returns the total requests counted
// (for a check that something was).
func sloCountsTick(st *fleet.Store, now time.Time, windows []time.Duration) int64 {
	var total int64
	for i := range 1000 {
		ser, sl := sloSeries(i)
		for _, w := range windows {
			total += st.Counts(ser, sl, now.Add(-w), now).Total
		}
	}
	return total
}

// BenchmarkFleetSLISLOCounts is the store as the SLO engine's source: one op is 1,000
// SLO series' counts, node, region and global scopes mixed (sloSeries), over the
// shortest and longest windows the store holds at 20 simulated minutes (5 m and 20 m),
// i.e. 2,000 Counts calls. cpu-ms is the op's CPU (budget: 1,000 SLOs evaluated in
// ≤ 100 ms per tick). BenchmarkFleetSLIHours measures the default burn-rate windows
// after hours.
func BenchmarkFleetSLISLOCounts(b *testing.B) {
	st, now := fillStore(b, 120)
	b.ResetTimer()
	c0 := cpuTime()
	for range b.N {
		if sloCountsTick(st, now, []time.Duration{5 * time.Minute, 20 * time.Minute}) == 0 {
			b.Fatal("no counts")
		}
	}
	b.ReportMetric(float64(cpuTime()-c0)/float64(b.N)/1e6, "cpu-ms")
}

// simHours is how many hours BenchmarkFleetSLIHours simulates
// (FERMION_BENCH_FLEET_HOURS, default 6: the raw stream's age, past which the store's
// tiers only fold and drop).
var simHours = func() int {
	if n, err := strconv.Atoi(os.Getenv("FERMION_BENCH_FLEET_HOURS")); err == nil && n > 0 && n <= 24*31 {
		return n
	}
	return 6
}()

// BenchmarkFleetSLIHours runs the store for simHours of simulated time as a replica
// acting as leader does: every 10-s tick adds every (node, version)'s summary and
// prunes, every 30 s the pending rollups are taken and read back. It reports the heap
// above idle at the end and its peak (after a GC every simulated 30 minutes), the
// store's CPU and allocation per tick over the last simulated hour, `fermion top`'s
// query, and one SLO tick of 1,000 mixed-scope series over the default burn-rate
// windows (5 m, 30 m, 1 h, 2 h, 6 h) and the longest the store then holds.
func BenchmarkFleetSLIHours(b *testing.B) {
	for range b.N {
		idle := heapInUse()
		st, err := fleet.New(simConfig())
		if err != nil {
			b.Fatal(err)
		}
		pool := simPool()
		start := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
		st.Prune(start)
		ticks := simHours * 360
		var peak uint64
		var lastHourCPU time.Duration
		var lastHourAlloc uint64
		var ms runtime.MemStats
		now := start
		for i := range ticks {
			at := start.Add(time.Duration(i) * simInterval)
			now = at.Add(simInterval)
			lastHour := i >= ticks-360
			var c0 time.Duration
			var a0 uint64
			if lastHour {
				runtime.ReadMemStats(&ms)
				c0, a0 = cpuTime(), ms.TotalAlloc
			}
			simTick(pool, at, func(s *sli.Summary) { st.Add(s, now) })
			st.Prune(now)
			if i%3 == 2 {
				for _, r := range st.PendingRollups(now, time.Minute) {
					if err := st.AddRollup(&r, now); err != nil {
						b.Fatal(err)
					}
					st.MarkPublished(&r)
				}
			}
			if lastHour {
				lastHourCPU += cpuTime() - c0
				runtime.ReadMemStats(&ms)
				lastHourAlloc += ms.TotalAlloc - a0
			}
			if (i+1)%180 == 0 {
				peak = max(peak, heapInUse()-idle)
			}
		}
		end := heapInUse() - idle
		peak = max(peak, end)
		b.ReportMetric(float64(end)/(1<<20), "MiB-end")
		b.ReportMetric(float64(peak)/(1<<20), "MiB-peak")
		core := float64(lastHourCPU) / 360 / float64(simInterval)
		b.ReportMetric(core, "core-per-tick")
		b.ReportMetric(float64(lastHourAlloc)/360/(1<<20), "MiB-alloc-per-tick")
		var took []time.Duration
		for range 5 {
			t0 := time.Now()
			if l := st.Query(fleet.Query{By: []string{"app", "version"}, Window: 5 * time.Minute}, now, nil); len(l.Groups) == 0 {
				b.Fatal("top: no groups")
			}
			took = append(took, time.Since(t0))
		}
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)/2])/1e6, "top-p50-ms")
		windows := []time.Duration{5 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour}
		if long := time.Duration(simHours) * time.Hour; long > 6*time.Hour {
			windows = append(windows, long)
		}
		c0 := cpuTime()
		if sloCountsTick(st, now, windows) == 0 {
			b.Fatal("no counts")
		}
		b.ReportMetric(float64(cpuTime()-c0)/1e6, "slo-tick-cpu-ms")
		s := st.Stats()
		b.ReportMetric(float64(s.Details), "details")
		b.ReportMetric(float64(s.Slots), "node-tallies")
		runtime.KeepAlive(st)
	}
}

// simDays is how many days BenchmarkFleetSLISteady simulates (FERMION_BENCH_FLEET_DAYS,
// default 31: one more than the 30-day day tier, so every tier is full and dropping).
var simDays = func() int {
	if n, err := strconv.Atoi(os.Getenv("FERMION_BENCH_FLEET_DAYS")); err == nil && n > 0 && n <= 62 {
		return n
	}
	return 31
}()

// coarsePool merges runs of n consecutive entries of pool: the intervals of a longer
// span of the same load, so that a summary of it carries that span's counts and
// sketch.
func coarsePool(pool []sli.Summary, n int) []sli.Summary {
	out := make([]sli.Summary, 8)
	for i := range out {
		m := sli.Summary{Latency: &sli.Sketch{}}
		for j := range n {
			s := pool[(i*n/len(out)+j)%len(pool)]
			s.Key, s.Node = sli.Key{}, ""
			if err := sli.Merge(&m, s); err != nil {
				panic(err)
			}
		}
		out[i] = m
	}
	return out
}

// simSpan calls fn with every (node, version)'s summary of the span [start,
// start+span), from pool.
func simSpan(pool []sli.Summary, start time.Time, span time.Duration, fn func(*sli.Summary)) {
	seq := sli.SeqFor(start, span)
	for n, node := range simNodeNames {
		for v, ver := range simVersionNames {
			s := pool[(n*simVersions+v)%len(pool)]
			s.Node, s.Key = node, sli.Key{Deployment: simAppNames[v%10], Version: ver, Route: "/"}
			s.Seq, s.Start, s.End = seq, start, start.Add(span)
			fn(&s)
		}
	}
}

// BenchmarkFleetSLISteady is the store after simDays of uptime, every tier full: the
// steady state a server reaches after its first 30 days. Simulating 30 days of 10-s
// intervals at the full fleet would take hours of CPU, so the simulated clock is
// fast-forwarded through the far past with sparser summaries that carry the same
// traffic (each the merge of every 10-s interval of its span, coarsePool): one a day
// per (node, version) until 3 days before the end, one an hour until 6 hours before,
// one per 5-minute window until 30 minutes before, then 10-s intervals with rollups
// taken and read back every 30 s (as BenchmarkFleetSLIHours) for the last 30 minutes,
// so that the detail tier, the group index and the rollups are at their running size.
// Every summary goes through Add and every step through Prune, so the windows, hours
// and days are what the store's own folds make of them. It reports the heap above
// idle at the end and its peak (after a GC at every simulated day, every 6 hours of
// the hours, every hour of the 5-minute windows and every 5 minutes of the last 30
// minutes; the last 30 minutes' peak also alone, since the fast-forward's coarse
// summaries pass through the detail tier before them), the store's CPU and allocation per 10-s tick over the last 10 minutes,
// `fermion top`'s query, and one SLO tick of 1,000 mixed series over the burn-rate
// windows and 30 days.
//
// What the fast-forward leaves out: the dedupe bitmaps hold 30 minutes of 10-s seqs
// instead of 6 hours (about 0.25 KiB per series less: 5 MiB at the full fleet).
func BenchmarkFleetSLISteady(b *testing.B) {
	for range b.N {
		idle := heapInUse()
		st, err := fleet.New(simConfig())
		if err != nil {
			b.Fatal(err)
		}
		pool := simPool()
		p5m := coarsePool(pool, 30)
		pHour := coarsePool(p5m, 12)
		pDay := coarsePool(pHour, 24)
		end := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
		start := end.Add(-time.Duration(simDays) * 24 * time.Hour)
		st.Prune(start)
		var peak, peakTicks uint64
		sample := func() { peak = max(peak, heapInUse()-idle) }
		rollups := func(now time.Time) {
			for _, r := range st.PendingRollups(now, time.Minute) {
				if err := st.AddRollup(&r, now); err != nil {
					b.Fatal(err)
				}
				st.MarkPublished(&r)
			}
		}
		// span adds one summary per series for each span-long step in [from, to).
		span := func(p []sli.Summary, from, to time.Time, step time.Duration, sampleEvery int) {
			i := 0
			for at := from; at.Before(to); at = at.Add(step) {
				now := at.Add(step)
				simSpan(p, at, step, func(s *sli.Summary) { st.Add(s, now) })
				st.Prune(now)
				rollups(now)
				if i++; i%sampleEvery == 0 {
					sample()
				}
			}
		}
		span(pDay, start, end.Add(-72*time.Hour), 24*time.Hour, 1)
		span(pHour, end.Add(-72*time.Hour), end.Add(-6*time.Hour), time.Hour, 6)
		span(p5m, end.Add(-6*time.Hour), end.Add(-30*time.Minute), 5*time.Minute, 12)
		ticks := 180
		var cpu time.Duration
		var alloc uint64
		var ms runtime.MemStats
		now := end
		for i := range ticks {
			at := end.Add(-30*time.Minute + time.Duration(i)*simInterval)
			now = at.Add(simInterval)
			measure := i >= ticks-60
			var c0 time.Duration
			var a0 uint64
			if measure {
				runtime.ReadMemStats(&ms)
				c0, a0 = cpuTime(), ms.TotalAlloc
			}
			simTick(pool, at, func(s *sli.Summary) { st.Add(s, now) })
			st.Prune(now)
			if i%3 == 2 {
				rollups(now)
			}
			if measure {
				cpu += cpuTime() - c0
				runtime.ReadMemStats(&ms)
				alloc += ms.TotalAlloc - a0
			}
			if (i+1)%30 == 0 {
				peakTicks = max(peakTicks, heapInUse()-idle)
			}
		}
		endHeap := heapInUse() - idle
		peakTicks = max(peakTicks, endHeap)
		b.ReportMetric(float64(endHeap)/(1<<20), "MiB-end")
		b.ReportMetric(float64(max(peak, peakTicks))/(1<<20), "MiB-peak")
		b.ReportMetric(float64(peakTicks)/(1<<20), "MiB-peak-last-30min")
		b.ReportMetric(float64(cpu)/60/float64(simInterval), "core-per-tick")
		b.ReportMetric(float64(alloc)/60/(1<<20), "MiB-alloc-per-tick")
		var took []time.Duration
		for range 5 {
			t0 := time.Now()
			if l := st.Query(fleet.Query{By: []string{"app", "version"}, Window: 5 * time.Minute}, now, nil); len(l.Groups) == 0 {
				b.Fatal("top: no groups")
			}
			took = append(took, time.Since(t0))
		}
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)/2])/1e6, "top-p50-ms")
		windows := []time.Duration{5 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour,
			24 * time.Hour, 72 * time.Hour, 30 * 24 * time.Hour}
		c0 := cpuTime()
		if sloCountsTick(st, now, windows) == 0 {
			b.Fatal("no counts")
		}
		b.ReportMetric(float64(cpuTime()-c0)/1e6, "slo-tick-cpu-ms")
		s := st.Stats()
		b.ReportMetric(float64(s.Details), "details")
		b.ReportMetric(float64(s.Slots), "node-tallies")
		b.ReportMetric(float64(s.Groups), "group-windows")
		writeHeapProfile(b)
		runtime.KeepAlive(st)
	}
}

// writeHeapProfile writes the live heap to FERMION_BENCH_FLEET_HEAPPROF when set: the
// store is still reachable, unlike at -test.memprofile's time.
func writeHeapProfile(b *testing.B) {
	path := os.Getenv("FERMION_BENCH_FLEET_HEAPPROF")
	if path == "" {
		return
	}
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}
