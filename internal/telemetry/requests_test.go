package telemetry_test

import (
	"math"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"fermion.dev/fermion/internal/telemetry"
)

// TestRequestMetricsMatchPrometheus: the striped fermion_requests_total and
// fermion_request_duration_seconds expose what a CounterVec and a HistogramVec given
// the same requests would: the same counts by class, buckets (bounds inclusive),
// count and sum, however the requests were spread over stripes and goroutines.
func TestRequestMetricsMatchPrometheus(t *testing.T) {
	m := telemetry.NewMetrics("test")
	f := m.Function("f", "1")
	ref := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ref",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	// On the bounds, between them, below the first and above the last.
	durations := []float64{0, .0001, .0005, .0007, .001, .0025, .003, .01, .1, .2500001, 1, 9.99, 10, 10.5, 300}
	statuses := []int{200, 201, 404, 503, 302, 101}
	classes := map[string]float64{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := range 4 {
		wg.Go(func() {
			for i, d := range durations {
				status := statuses[(i+w)%len(statuses)]
				f.Request(uint32(w*1000+i), status, d)
				mu.Lock()
				ref.Observe(d)
				classes[string(rune('0'+status/100))+"xx"]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, class := range []string{"1xx", "2xx", "3xx", "4xx", "5xx"} {
		got, ok := counter(t, m, "fermion_requests_total", map[string]string{"function": "f", "version": "1", "code": class})
		if !ok || got != classes[class] {
			t.Errorf("%s = %v (present %v), want %v", class, got, ok, classes[class])
		}
	}
	var want dto.Metric
	if err := ref.Write(&want); err != nil {
		t.Fatal(err)
	}
	got := histogram(t, m, "fermion_request_duration_seconds", map[string]string{"function": "f", "version": "1"})
	if got == nil {
		t.Fatal("no fermion_request_duration_seconds series for f@1")
	}
	wh := want.GetHistogram()
	if got.GetSampleCount() != wh.GetSampleCount() || math.Abs(got.GetSampleSum()-wh.GetSampleSum()) > 1e-6 {
		t.Errorf("count %d sum %v, want %d %v", got.GetSampleCount(), got.GetSampleSum(), wh.GetSampleCount(), wh.GetSampleSum())
	}
	if len(got.GetBucket()) != len(wh.GetBucket()) {
		t.Fatalf("%d buckets, want %d", len(got.GetBucket()), len(wh.GetBucket()))
	}
	if got.GetCreatedTimestamp() == nil || got.GetCreatedTimestamp().AsTime().IsZero() {
		t.Error("no created timestamp on the histogram, which a HistogramVec child has")
	}
	for i, b := range wh.GetBucket() {
		g := got.GetBucket()[i]
		if g.GetUpperBound() != b.GetUpperBound() || g.GetCumulativeCount() != b.GetCumulativeCount() {
			t.Errorf("bucket le=%v: %d, want le=%v: %d", g.GetUpperBound(), g.GetCumulativeCount(), b.GetUpperBound(), b.GetCumulativeCount())
		}
	}
}

// histogram returns the histogram series of name whose labels are labels, or nil.
func histogram(t *testing.T, m *telemetry.Metrics, name string, labels map[string]string) *dto.Histogram {
	t.Helper()
	return series(t, m, name, labels).GetHistogram()
}

// BenchmarkFunctionRequest is what the gateway records per request (telemetry on) in
// fermion_requests_total and fermion_request_duration_seconds, from GOMAXPROCS
// goroutines each on a stripe of its own, against a CounterVec child and a
// HistogramVec child (what it recorded into before): run with -cpu 1,2.
func BenchmarkFunctionRequest(b *testing.B) {
	b.Run("striped", func(b *testing.B) {
		f := telemetry.NewMetrics("bench").Function("f", "1")
		var next uint32
		var mu sync.Mutex
		b.RunParallel(func(pb *testing.PB) {
			mu.Lock()
			s := next
			next++
			mu.Unlock()
			for pb.Next() {
				f.Request(s, 200, 0.0003)
			}
		})
	})
	b.Run("prometheus", func(b *testing.B) {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c"}, []string{"function", "version", "code"}).WithLabelValues("f", "1", "2xx")
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h", Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"function", "version"}).WithLabelValues("f", "1")
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Inc()
				h.Observe(0.0003)
			}
		})
	})
}
