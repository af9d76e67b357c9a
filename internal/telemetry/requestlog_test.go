package telemetry

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestRequestSampler drives the sampler with its own clock: failures and slow requests
// always get a line of weight 1, the rest get lines within the rate, and every skipped
// request is counted and carried by the next line of its status class.
func TestRequestSampler(t *testing.T) {
	type req struct {
		at     time.Duration // since the sampler's epoch
		status int
		reason string
		d      time.Duration
		weight int64 // 0: no line
	}
	tests := []struct {
		name    string
		cfg     RequestLogConfig
		reqs    []req
		skipped int64
	}{
		{
			name: "within the burst every request is logged",
			cfg:  RequestLogConfig{Rate: 3},
			reqs: []req{{status: 200, weight: 1}, {status: 404, weight: 1}, {status: 200, weight: 1}},
		},
		{
			name: "past the burst the next line carries the skipped ones of its class",
			cfg:  RequestLogConfig{Rate: 2},
			reqs: []req{
				{status: 200, weight: 1}, {status: 200, weight: 1},
				{status: 200}, {status: 404}, {status: 200},
				// half a second later: one token (2 a second)
				{at: 500 * time.Millisecond, status: 200, weight: 3},
				{at: 500 * time.Millisecond, status: 404},
				{at: time.Second, status: 404, weight: 3},
			},
			skipped: 4,
		},
		{
			name: "failures and slow requests bypass the rate",
			cfg:  RequestLogConfig{Rate: 1, Slow: 100 * time.Millisecond},
			reqs: []req{
				{status: 200, weight: 1},
				{status: 200},
				{status: 500, weight: 1},
				{status: 503, reason: "draining", weight: 1},
				{status: 413, reason: LimitRequestBody, weight: 1},
				{status: 200, d: 100 * time.Millisecond, weight: 1},
				{status: 200, d: 99 * time.Millisecond},
				{at: time.Second, status: 200, weight: 3},
			},
			skipped: 2,
		},
		{
			name:    "no slow rule",
			cfg:     RequestLogConfig{Rate: 1, Slow: -1},
			reqs:    []req{{status: 200, weight: 1}, {status: 200, d: time.Hour}},
			skipped: 1,
		},
		{
			name: "all",
			cfg:  RequestLogConfig{Rate: 1, All: true},
			reqs: []req{{status: 200, weight: 1}, {status: 200, weight: 1}, {status: 404, weight: 1}},
		},
		{
			name: "an idle bucket refills to one second's worth, no more",
			cfg:  RequestLogConfig{Rate: 2},
			reqs: []req{
				{at: time.Hour, status: 200, weight: 1}, {at: time.Hour, status: 200, weight: 1},
				{at: time.Hour, status: 200},
			},
			skipped: 1,
		},
		{
			name:    "statuses below 200 and odd ones share the first class",
			cfg:     RequestLogConfig{Rate: 1},
			reqs:    []req{{status: 200, weight: 1}, {status: 101}, {status: 0}, {at: time.Second, status: 100, weight: 3}},
			skipped: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMetrics("test")
			s := NewRequestSampler(tt.cfg, m)
			var w LineWeights
			for i, r := range tt.reqs {
				weight, write := s.Weigh(&w, 0, int64(r.at), r.status, r.reason, r.d)
				if write != (r.weight > 0) || weight != r.weight {
					t.Fatalf("request %d (%+v): weight %d, written %v; want weight %d", i, r, weight, write, r.weight)
				}
			}
			if got := m.RequestLogSkipped(); got != tt.skipped {
				t.Fatalf("skipped %d, want %d", got, tt.skipped)
			}
		})
	}
}

// TestRequestSamplerSince: the sampler's now comes from the times the gateway already
// has, monotonic, without reading the clock.
func TestRequestSamplerSince(t *testing.T) {
	s := NewRequestSampler(RequestLogConfig{}, nil)
	if got := s.Since(s.epoch.Add(1500 * time.Millisecond)); got != int64(1500*time.Millisecond) {
		t.Fatalf("Since = %d", got)
	}
	// Nil weights and metrics: lines weigh 1, skipped requests are dropped uncounted.
	s = NewRequestSampler(RequestLogConfig{Rate: 1}, nil)
	if w, ok := s.Weigh(nil, 0, 0, 200, "", 0); !ok || w != 1 {
		t.Fatalf("first request: %d %v", w, ok)
	}
	if _, ok := s.Weigh(nil, 0, 0, 200, "", 0); ok {
		t.Fatal("second request in the same instant logged at 1 line/s")
	}
}

// TestRequestSamplerConcurrent hammers one sampler: the lines' weights and the skipped
// count add up to the requests, whatever the interleaving.
func TestRequestSamplerConcurrent(t *testing.T) {
	m := NewMetrics("test")
	s := NewRequestSampler(RequestLogConfig{Rate: 50}, m)
	var w LineWeights
	const workers, each = 4, 5000
	sums := make(chan [2]int64, workers)
	for g := range workers {
		go func() {
			var lines, weight int64
			for i := range each {
				// A clock that moves on 1 ms every 10 requests: ~100 tokens over the run.
				now := int64(g*each+i) / 10 * int64(time.Millisecond) / workers
				// Each worker on a stripe of its own, as the gateway's connections.
				if wt, ok := s.Weigh(&w, uint32(g), now, 200+100*(i%3), "", 0); ok {
					lines++
					weight += wt
				}
			}
			sums <- [2]int64{lines, weight}
		}()
	}
	var lines, weight int64
	for range workers {
		s := <-sums
		lines += s[0]
		weight += s[1]
	}
	var pending int64
	for i := range w.stripes {
		for c := range w.stripes[i].pending {
			pending += w.stripes[i].pending[c].Load()
		}
	}
	if weight+pending != workers*each {
		t.Fatalf("weights %d + pending %d = %d, want %d requests", weight, pending, weight+pending, workers*each)
	}
	if skipped := m.RequestLogSkipped(); skipped != weight-lines+pending {
		t.Fatalf("skipped %d, want weights %d - lines %d + pending %d", skipped, weight, lines, pending)
	}
	if lines >= workers*each/2 {
		t.Fatalf("%d lines of %d requests at 50 lines/s: nothing sampled", lines, workers*each)
	}
}

// BenchmarkRequestSampler is what a request costs the request log above its rate: the
// sampler's decision and, for the few it keeps, nothing else (the line's formatting is
// BenchmarkLogRequest). Parallel, as the gateway's cores call it, each goroutine on a
// stripe of its own as a connection is.
func BenchmarkRequestSampler(b *testing.B) {
	s := NewRequestSampler(RequestLogConfig{}, NewMetrics("bench"))
	var w LineWeights
	var stripes atomic.Uint32
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		stripe := stripes.Add(1)
		for pb.Next() {
			s.Weigh(&w, stripe, s.Since(start), 200, "", time.Millisecond)
		}
	})
}
