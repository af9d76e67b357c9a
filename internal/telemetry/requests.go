package telemetry

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// requestMetrics is fermion_requests_total and fermion_request_duration_seconds: per
// function version, requests by status class and their durations, which the gateway
// records for every request it routes (FunctionMetrics.Request).
//
// Why not a CounterVec and a HistogramVec? Their children are single words that every
// request of a version writes: a counter's integer, and a histogram's count, hot index,
// bucket and float sum (a compare-and-swap loop) — five read-modify-writes per request
// on cache lines that move between the cores at each one when two cores serve the
// version. Here each version's counts are split into stripes on cache lines of their
// own, a request writes its connection's stripe (the gateway gives each connection
// one), and a scrape sums the stripes. The exposition is the same: names, help, labels,
// buckets, and every series at 0 from the moment a version loads.
type requestMetrics struct {
	reqDesc, durDesc *prometheus.Desc
	mu               sync.Mutex
	series           map[[2]string]*requestSeries
}

// durationBuckets are fermion_request_duration_seconds' upper bounds.
var durationBuckets = [...]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// statusClasses are fermion_requests_total's code values, by status/100 - 1.
var statusClasses = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// requestSeries is one function version's counts, striped.
type requestSeries struct {
	stripes []requestStripe // a power of two
	// created is when the series was made: its created timestamp, as a CounterVec's
	// and a HistogramVec's children carry theirs.
	created time.Time
}

// requestStripe is a stripe of a version's counts: 168 bytes of counts padded to 256,
// so stripes share no 64-byte line and no pair of lines the adjacent-line prefetcher
// fetches together.
type requestStripe struct {
	class [len(statusClasses)]atomic.Uint64
	// bucket counts the durations in each bucket, not cumulatively; the last, those
	// above the largest bound. Their sum is the histogram's count.
	bucket [len(durationBuckets) + 1]atomic.Uint64
	sumNs  atomic.Int64 // the durations' sum in nanoseconds: an add, not a float CAS loop
	_      [256 - 8*(len(statusClasses)+len(durationBuckets)+2)]byte
}

func newRequestMetrics() *requestMetrics {
	fv := []string{"function", "version"}
	return &requestMetrics{
		reqDesc: prometheus.NewDesc("fermion_requests_total",
			"HTTP requests served by functions, by status class (2xx, 3xx, 4xx, 5xx).",
			append(fv, "code"), nil),
		durDesc: prometheus.NewDesc("fermion_request_duration_seconds",
			"Time from the gateway receiving a request to the response being written.",
			fv, nil),
		series: map[[2]string]*requestSeries{},
	}
}

// requestStripes is how many stripes a version's counts have: twice the cores, a power
// of two, between 2 and 16 (4 KiB per version at most: a node may hold many versions).
func requestStripes() int { return stripeCount(2, 16) }

// get returns key's series, made at 0 if it has none.
func (r *requestMetrics) get(key [2]string) *requestSeries {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.series[key]
	if s == nil {
		s = &requestSeries{stripes: make([]requestStripe, requestStripes()), created: time.Now()}
		r.series[key] = s
	}
	return s
}

func (r *requestMetrics) forget(key [2]string) {
	r.mu.Lock()
	delete(r.series, key)
	r.mu.Unlock()
}

// record counts one request on stripe (any value) with status class c (0–4) and
// duration seconds.
func (s *requestSeries) record(stripe uint32, c int, seconds float64) {
	st := &s.stripes[stripe&uint32(len(s.stripes)-1)]
	st.class[c].Add(1)
	i := 0 // the first bucket whose bound is at least seconds, as prometheus.Histogram
	for i < len(durationBuckets) && seconds > durationBuckets[i] {
		i++
	}
	st.bucket[i].Add(1)
	st.sumNs.Add(int64(seconds * 1e9))
}

// Describe implements prometheus.Collector.
func (r *requestMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- r.reqDesc
	ch <- r.durDesc
}

// Collect implements prometheus.Collector: each version's stripes summed. A request
// recorded during the sums may be in one family and not yet in the other, as with
// separate prometheus collectors; within the histogram the count is the buckets' sum,
// so the buckets never exceed it.
func (r *requestMetrics) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, s := range r.series {
		var class [len(statusClasses)]uint64
		var bucket [len(durationBuckets) + 1]uint64
		var sumNs int64
		for i := range s.stripes {
			st := &s.stripes[i]
			for c := range class {
				class[c] += st.class[c].Load()
			}
			for b := range bucket {
				bucket[b] += st.bucket[b].Load()
			}
			sumNs += st.sumNs.Load()
		}
		for c, n := range class {
			ch <- prometheus.MustNewConstMetricWithCreatedTimestamp(r.reqDesc, prometheus.CounterValue, float64(n), s.created, k[0], k[1], statusClasses[c])
		}
		cumulative := make(map[float64]uint64, len(durationBuckets))
		var count uint64
		for b, bound := range durationBuckets {
			count += bucket[b]
			cumulative[bound] = count
		}
		count += bucket[len(durationBuckets)]
		ch <- prometheus.MustNewConstHistogramWithCreatedTimestamp(r.durDesc, count, float64(sumNs)/1e9, cumulative, s.created, k[0], k[1])
	}
}
