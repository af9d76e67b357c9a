package sli

import (
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The request path's cost of SLI aggregation, beside two baselines run in the same
// invocation (bench/RESULTS.md, "SLI aggregation"):
//
//	go test ./internal/sli -run '^$' -bench . -benchmem -count 5 -cpu 1,2
//
// BenchmarkBaselineCall is a non-inlined call that does nothing; BenchmarkBaselineCounterVec
// is what the gateway already pays per request for one labelled Prometheus counter.

var benchKey = Key{"hello", "sha256-4f2a9c1e", "/hello"}

// latencies cycles through a realistic spread so the sketch's bucket lookup is not
// served from one cached value.
var latencies = func() []time.Duration {
	l := make([]time.Duration, 256)
	for i := range l {
		l[i] = 200*time.Microsecond + time.Duration(i*i)*100*time.Nanosecond
	}
	return l
}()

func warm(a *Aggregator) {
	for i := 0; i < 10000; i++ {
		a.Record(benchKey, 200, latencies[i%len(latencies)], false)
	}
}

func BenchmarkRecord(b *testing.B) {
	a := NewAggregator(Config{Node: "n", Start: t0})
	warm(a)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.Record(benchKey, 200, latencies[i&255], false)
	}
}

func BenchmarkRecordParallel(b *testing.B) {
	a := NewAggregator(Config{Node: "n", Start: t0})
	warm(a)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			a.Record(benchKey, 200, latencies[i&255], false)
			i++
		}
	})
}

//go:noinline
func emptyCall(k Key, status int, d time.Duration, cold bool) {}

func BenchmarkBaselineCall(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		emptyCall(benchKey, 200, latencies[i&255], false)
	}
}

func newCounterVec() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bench_requests_total", Help: "requests"},
		[]string{"deployment", "version", "route", "code"})
}

func BenchmarkBaselineCounterVec(b *testing.B) {
	c := newCounterVec()
	code := strconv.Itoa(200)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c.WithLabelValues(benchKey.Deployment, benchKey.Version, benchKey.Route, code).Inc()
	}
}

func BenchmarkBaselineCounterVecParallel(b *testing.B) {
	c := newCounterVec()
	code := strconv.Itoa(200)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.WithLabelValues(benchKey.Deployment, benchKey.Version, benchKey.Route, code).Inc()
		}
	})
}

// BenchmarkFlush is the per-interval cost for 20 versions with a warm spread each.
func BenchmarkFlush(b *testing.B) {
	a := NewAggregator(Config{Node: "n", Start: t0})
	keys := make([]Key, 20)
	for i := range keys {
		keys[i] = Key{"app", "v" + strconv.Itoa(i), "/"}
	}
	at := t0
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := 0; j < 2000; j++ {
			a.Record(keys[j%20], 200, latencies[j&255], false)
		}
		b.StartTimer()
		at = at.Add(10 * time.Second)
		a.Flush(at)
	}
}

// BenchmarkEncodeSummary reports the wire size of one hello-like version-interval
// (1,000 req/s for 10 s) as bytes/summary.
func BenchmarkEncodeSummary(b *testing.B) {
	s := helloSummary(b, 1000)
	buf := EncodeSummary(nil, s)
	b.ReportMetric(float64(len(buf)), "bytes/summary")
	b.ReportMetric(float64(len(jsonForm(b, s))), "json-bytes/summary")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = EncodeSummary(buf[:0], s)
	}
}

func BenchmarkDecodeSummary(b *testing.B) {
	buf := EncodeSummary(nil, helloSummary(b, 1000))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := DecodeSummary(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeriesRecord(b *testing.B) {
	a := NewAggregator(Config{Node: "n", Start: t0})
	warm(a)
	h := a.Series(benchKey)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Record(200, latencies[i&255], false)
	}
}

func BenchmarkSeriesRecordParallel(b *testing.B) {
	a := NewAggregator(Config{Node: "n", Start: t0})
	warm(a)
	h := a.Series(benchKey)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			h.Record(200, latencies[i&255], false)
			i++
		}
	})
}

// BenchmarkSeriesRecordRequest is BenchmarkSeriesRecord with an exemplar per request
// (bench/RESULTS.md, "Slowest requests"): the steady state, where most requests are no
// slower than the interval's kth slowest.
func BenchmarkSeriesRecordRequest(b *testing.B) {
	a := NewAggregator(Config{Node: "n", Start: t0})
	warm(a)
	h := a.Series(benchKey)
	var id [16]byte
	id[0] = 1
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.RecordRequest(&Exemplar{Duration: latencies[i&255], Status: 200, TraceID: id, Method: "GET", Path: "/hello"}, false)
	}
}
