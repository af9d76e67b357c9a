package fleet

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"fermion.dev/fermion/internal/sli"
)

// TestStoredRoundTrip pins that the store's compact form loses nothing: every count,
// every reason and the sketch bucket by bucket, with fields zero and not (the head's
// mask), wide gaps and big counts, the zero bucket and the range's ends.
func TestStoredRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lognormal := &sli.Sketch{}
	for range 1000 {
		lognormal.Add(time.Duration(300e3 * (1 + rng.ExpFloat64())))
	}
	heavy := &sli.Sketch{}
	heavy.AddN(time.Millisecond, 1<<40)
	heavy.AddN(0, 3)
	heavy.Add(sli.MaxTrackable)
	heavy.Add(sli.MinTrackable)
	for _, tt := range []struct {
		name string
		s    sli.Summary
	}{
		{"empty", sli.Summary{}},
		{"nil latency", sli.Summary{Seq: 7, Status: [5]uint64{1, 2, 3, 4, 5}}},
		{"counts and reasons", sli.Summary{Seq: 1 << 50, Status: [5]uint64{0, 100, 0, 3, 2}, OtherStatus: 1,
			ColdStarts: 4, MemoryMaxBytes: 64 << 20, CPUTime: 1500 * time.Millisecond, OutboundErrors: 5,
			PolicyDenials: 6, TelemetryBacklog: 7, Latency: lognormal,
			InstanceStarts: map[string]uint64{"scale": 1, "cold": 9}, Discards: map[string]uint64{"trap": 2},
			LimitRejections: map[string]uint64{"concurrency": 1 << 33}}},
		{"wide gaps and big counts", sli.Summary{Status: [5]uint64{0, 1<<40 + 5}, Latency: heavy}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := pack(&tt.s)
			start := time.Unix(600, 0).UTC()
			key := sli.Key{Deployment: "hello", Version: "v1"}
			got := p.summary(key, "edge-1", start, start.Add(5*time.Minute))
			want := tt.s.Clone()
			if want.Latency == nil {
				want.Latency = &sli.Sketch{}
			}
			want.Key, want.Node, want.Start, want.End = key, "edge-1", start, start.Add(5*time.Minute)
			if !got.Latency.Equal(want.Latency) {
				t.Errorf("sketch: got n=%d p99=%v, want n=%d p99=%v", got.Latency.Count(), got.Latency.Quantile(.99), want.Latency.Count(), want.Latency.Quantile(.99))
			}
			got.Latency, want.Latency = nil, nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("summary:\n got %+v\nwant %+v", got, want)
			}
			r, e := p.requestsErrors()
			if r != tt.s.Requests() || e != tt.s.Errors() {
				t.Errorf("requestsErrors = %d, %d; want %d, %d", r, e, tt.s.Requests(), tt.s.Errors())
			}
		})
	}
}

// TestStoredAdd pins that merging into the compact form equals sli.Merge.
func TestStoredAdd(t *testing.T) {
	a := sli.Summary{Seq: 3, Status: [5]uint64{0, 10}, Latency: &sli.Sketch{}, InstanceStarts: map[string]uint64{"scale": 1}, MemoryMaxBytes: 10}
	b := sli.Summary{Seq: 9, Status: [5]uint64{0, 5, 0, 0, 2}, Latency: &sli.Sketch{}, InstanceStarts: map[string]uint64{"scale": 2, "cold": 1}, MemoryMaxBytes: 4, CPUTime: time.Second}
	for i := range 50 {
		a.Latency.Add(time.Duration(i) * 37 * time.Microsecond)
		b.Latency.Add(time.Duration(i) * 5 * time.Millisecond)
	}
	p := pack(&a)
	var scratch sli.Sketch
	p.add(&b, &scratch)
	want := a.Clone()
	if err := sli.Merge(&want, b); err != nil {
		t.Fatal(err)
	}
	got := p.summary(sli.Key{}, "", time.Time{}, time.Time{})
	if !got.Latency.Equal(want.Latency) {
		t.Error("merged sketch differs from sli.Merge's")
	}
	got.Latency, want.Latency = nil, nil
	want.Start, want.End = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merged:\n got %+v\nwant %+v", got, want)
	}
}

// TestStoredMergeTo pins that the query's merge straight from the encoding equals
// sli.Merge of the decoded summaries.
func TestStoredMergeTo(t *testing.T) {
	parts := []sli.Summary{
		{Seq: 3, Status: [5]uint64{0, 10}, InstanceStarts: map[string]uint64{"scale": 1}, MemoryMaxBytes: 10, TelemetryBacklog: 9},
		{Seq: 9, Status: [5]uint64{1, 5, 0, 2, 2}, OtherStatus: 1, ColdStarts: 2, InstanceStarts: map[string]uint64{"scale": 2, "cold": 1},
			Discards: map[string]uint64{"trap": 1}, LimitRejections: map[string]uint64{"memory": 4}, MemoryMaxBytes: 4,
			CPUTime: time.Second, OutboundErrors: 3, PolicyDenials: 4, TelemetryBacklog: 2},
	}
	got := sli.Summary{Latency: &sli.Sketch{}}
	want := sli.Summary{Latency: &sli.Sketch{}}
	for i := range parts {
		parts[i].Latency = &sli.Sketch{}
		for j := range 40 {
			parts[i].Latency.Add(time.Duration(j*(i+1)) * 71 * time.Microsecond)
		}
		p := pack(&parts[i])
		p.mergeTo(&got)
		if err := sli.Merge(&want, parts[i]); err != nil {
			t.Fatal(err)
		}
	}
	if !got.Latency.Equal(want.Latency) {
		t.Error("merged sketch differs from sli.Merge's")
	}
	got.Latency, want.Latency = nil, nil
	want.Start, want.End = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merged:\n got %+v\nwant %+v", got, want)
	}
}

// TestMarkSeen pins the dedupe bitmap: exact per (seq, route), across words, and its
// front ages out.
func TestMarkSeen(t *testing.T) {
	var seen []seenRun
	steps := []struct {
		seq   uint64
		route string
		dup   bool
	}{
		{100, "/", false}, {100, "/", true}, {100, "/a", false}, {101, "/", false},
		{127, "/", false}, {128, "/", false}, {128, "/", true}, {64, "/", false},
		{1<<64 - 1, "/", false}, {1<<64 - 1, "/", true}, {0, "/", false}, {101, "/", true}, {100, "/a", true},
	}
	for i, s := range steps {
		if got := markSeen(&seen, s.seq, s.route, int64(iv)); got != s.dup {
			t.Errorf("step %d: markSeen(%d, %q) = %v, want %v", i, s.seq, s.route, got, s.dup)
		}
	}
	if len(seen) != 3 {
		t.Errorf("%d bitmaps, want 3 (/ over 0–191, / at 2^64-64 on its own, /a)", len(seen))
	}
	// The front ages out with the raw horizon: seqs below 128 started before 128 × iv.
	seen = pruneSeen(seen, int64(128*iv))
	if got := markSeen(&seen, 130, "/", int64(iv)); got {
		t.Error("pruning dropped a word it must keep")
	}
	if got := markSeen(&seen, 100, "/", int64(iv)); got {
		t.Error("seq 100 is still marked after its word aged out")
	}
}
