package telemetry

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultRequestLogRate is how many request lines per second a node writes in full
// before it samples the rest (RequestSampler). Development and tests, far below it, see
// every line; a node serving 30,000 requests per second writes about this many lines per
// second (plus its errors and slow requests) instead of ~10 MB/s.
const DefaultRequestLogRate = 1000

// DefaultRequestLogSlow is the latency at and above which a request's line is always
// written, whatever the rate: 250 ms, a common latency SLO's threshold.
const DefaultRequestLogSlow = 250 * time.Millisecond

// RequestLogConfig says which requests get a log line (docs/telemetry.md, "Logs").
type RequestLogConfig struct {
	// Rate is the request lines per second written before sampling starts, with a burst
	// of one second's worth (0: DefaultRequestLogRate).
	Rate int
	// All writes a line for every request (no sampling).
	All bool
	// Slow is the duration at and above which a line is always written (0:
	// DefaultRequestLogSlow; negative: no such rule).
	Slow time.Duration
}

// WithDefaults returns c with its zero fields set to the defaults.
func (c RequestLogConfig) WithDefaults() RequestLogConfig {
	if c.Rate <= 0 {
		c.Rate = DefaultRequestLogRate
	}
	if c.Slow == 0 {
		c.Slow = DefaultRequestLogSlow
	}
	return c
}

// RequestSampler decides which requests get a log line. Every request is logged while
// lines stay within the rate; above it, every failure (status 500 and up, or a request
// with a failure reason: limits, timeouts, traps, draining) and every slow request still
// gets its own line, and of the rest only as many as the rate allows, each carrying the
// weight of the requests of its kind (LineWeights) not logged since the last such line.
// Metrics, SLIs and exemplars count every request regardless.
//
// The rate is a token bucket kept as one atomic "theoretical arrival time" (the generic
// cell rate algorithm): a request that finds no token costs one atomic load, no lock and
// no write to shared memory besides its weight.
type RequestSampler struct {
	all      bool
	slow     time.Duration // 0: no slow rule
	interval int64         // ns per token
	burst    int64         // ns: the bucket's depth, one second's worth of tokens
	epoch    time.Time     // the origin of now values (monotonic)
	tat      atomic.Int64  // ns since epoch at which the bucket is next full minus a token
	metrics  *Metrics      // fermion_request_log_skipped_total; nil: not counted
}

// NewRequestSampler returns a sampler for cfg (defaults applied) counting the requests
// it skips in m (nil: not counted).
func NewRequestSampler(cfg RequestLogConfig, m *Metrics) *RequestSampler {
	cfg = cfg.WithDefaults()
	s := &RequestSampler{all: cfg.All, interval: int64(time.Second) / int64(cfg.Rate), epoch: time.Now(), metrics: m}
	s.interval = max(s.interval, 1)
	s.burst = s.interval * int64(cfg.Rate)
	if cfg.Slow > 0 {
		s.slow = cfg.Slow
	}
	return s
}

// Since returns t as the sampler's now: nanoseconds since its epoch, from t's monotonic
// reading when it has one (no clock is read).
func (s *RequestSampler) Since(t time.Time) int64 { return int64(t.Sub(s.epoch)) }

// LineWeights are the requests of one kind (a route's version, by status class 1xx–4xx;
// 5xx are always logged) not logged since that kind's last line. Safe for concurrent use;
// the zero value is ready.
//
// Above the rate nearly every request of a route is skipped and added here, so the
// counts are striped (the caller's stripe, the gateway's per connection) on cache lines
// of their own: one word per class would be written by every request on every core. A
// line takes the counts of its class from every stripe.
type LineWeights struct {
	stripes [lineStripes]lineStripe
}

// lineStripes is how many stripes LineWeights have: a power of two, fixed so that the
// zero value works (1 KiB per route version and per kind of unrouted request).
const lineStripes = 8

// lineStripe is 128 bytes: no two share a 64-byte line or an adjacent-line pair.
type lineStripe struct {
	pending [4]atomic.Int64
	_       [96]byte
}

// Weigh decides whether a request ending at now (Since) with status, reason (a failure's,
// or "") and duration d gets a line, and if so how many requests that line stands for:
// itself, plus, for a sampled line, the requests of its kind skipped since the last one.
// A skipped request is added to w and counted, on stripe (any value; the gateway's
// connection stripe). w may be nil (no kind: every sampled line weighs 1 and skipped
// requests are only counted).
func (s *RequestSampler) Weigh(w *LineWeights, stripe uint32, now int64, status int, reason string, d time.Duration) (weight int64, write bool) {
	if s.all || status >= 500 || reason != "" || (s.slow > 0 && d >= s.slow) {
		return 1, true
	}
	c := min(max(status/100-1, 0), 3)
	if s.take(now) {
		if w == nil {
			return 1, true
		}
		weight = 1
		for i := range w.stripes {
			weight += w.stripes[i].pending[c].Swap(0)
		}
		return weight, true
	}
	if w != nil {
		w.stripes[stripe%lineStripes].pending[c].Add(1)
	}
	if m := s.metrics; m != nil {
		m.requestLogSkipped.Add(stripe, 1)
	}
	return 0, false
}

// take takes a token at now, reporting whether there was one.
func (s *RequestSampler) take(now int64) bool {
	for {
		old := s.tat.Load()
		next := max(old, now) + s.interval
		if next-now > s.burst {
			return false
		}
		if s.tat.CompareAndSwap(old, next) {
			return true
		}
	}
}

// newRequestLogMetrics makes fermion_request_log_skipped_total, read from an integer
// at each scrape: the request path adds to it without a float compare-and-swap loop.
func (m *Metrics) newRequestLogMetrics() prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "fermion_request_log_skipped_total",
		Help: "Requests that got no request log line because lines were over the node's rate (--request-log-rate); each is carried by the weight of a later line of its route, version and status class.",
	}, func() float64 { return float64(m.RequestLogSkipped()) })
}

// RequestLogSkipped returns fermion_request_log_skipped_total's value (0 for nil).
func (m *Metrics) RequestLogSkipped() int64 {
	if m == nil {
		return 0
	}
	return m.requestLogSkipped.Sum()
}
