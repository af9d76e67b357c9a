package sli

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func TestAggregatorFlush(t *testing.T) {
	a := NewAggregator(Config{Node: "n1", Start: t0, FirstSeq: 41})
	hello := Key{"hello", "v1", "/hello"}
	other := Key{"hello", "v2", "/hello"}
	a.Record(hello, 200, time.Millisecond, true)
	a.Record(hello, 204, 2*time.Millisecond, false)
	a.Record(hello, 503, 30*time.Millisecond, false)
	a.Record(hello, 404, time.Millisecond, false)
	a.Record(hello, 99, time.Millisecond, false)
	a.Record(other, 101, time.Millisecond, false)
	a.RecordInstanceStart(hello, "scale")
	a.RecordInstanceStart(hello, "scale")
	a.RecordInstanceStart(hello, "")
	a.RecordDiscard(hello, "trap")
	a.RecordLimitRejection(hello, "concurrency")
	a.RecordOutboundError(hello)
	a.RecordPolicyDenial(hello)
	a.ObserveInstance(hello, 4<<20, 3*time.Millisecond)
	a.ObserveInstance(hello, 2<<20, 2*time.Millisecond)
	a.SetTelemetryBacklog(7)

	end := t0.Add(10 * time.Second)
	got := a.Flush(end)
	if len(got) != 2 {
		t.Fatalf("Flush returned %d summaries, want 2", len(got))
	}
	s := got[0]
	if s.Key != hello || got[1].Key != other {
		t.Fatalf("summaries not sorted by key: %v, %v", s.Key, got[1].Key)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"node", s.Node, "n1"},
		{"start", s.Start, t0},
		{"end", s.End, end},
		{"seq", s.Seq, uint64(41)},
		{"status", s.Status, [5]uint64{0, 2, 0, 1, 1}},
		{"other status", s.OtherStatus, uint64(1)},
		{"requests", s.Requests(), uint64(5)},
		{"errors", s.Errors(), uint64(1)},
		{"latency count", s.Latency.Count(), uint64(5)},
		{"latency max", s.Latency.Max(), 30 * time.Millisecond},
		{"cold", s.ColdStarts, uint64(1)},
		{"starts", fmt.Sprint(s.InstanceStarts), "map[scale:2 unknown:1]"},
		{"discards", fmt.Sprint(s.Discards), "map[trap:1]"},
		{"rejections", fmt.Sprint(s.LimitRejections), "map[concurrency:1]"},
		{"outbound", s.OutboundErrors, uint64(1)},
		{"denials", s.PolicyDenials, uint64(1)},
		{"memory max", s.MemoryMaxBytes, uint64(4 << 20)},
		{"cpu", s.CPUTime, 5 * time.Millisecond},
		{"backlog", s.TelemetryBacklog, uint64(7)},
		{"other's status", got[1].Status, [5]uint64{1, 0, 0, 0, 0}},
		{"same seq", got[1].Seq, uint64(41)},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if err := ValidateSummary(s); err != nil {
		t.Errorf("flushed summary does not validate: %v", err)
	}

	// The next interval starts where the last ended and is empty until recorded into.
	if again := a.Flush(end.Add(10 * time.Second)); len(again) != 0 {
		t.Fatalf("empty interval produced %d summaries", len(again))
	}
	a.Record(hello, 200, time.Millisecond, false)
	next := a.Flush(end.Add(20 * time.Second))
	if len(next) != 1 || next[0].Seq != 43 || !next[0].Start.Equal(end.Add(10*time.Second)) || next[0].Requests() != 1 {
		t.Fatalf("third interval: %+v", next)
	}
	if next[0].InstanceStarts != nil || next[0].MemoryMaxBytes != 0 {
		t.Fatalf("interval state leaked into the next: %+v", next[0])
	}
}

func TestAggregatorDropsIdleKeys(t *testing.T) {
	a := NewAggregator(Config{Node: "n", Start: t0, Shards: 1})
	k := Key{"d", "v", "/"}
	a.Record(k, 200, time.Millisecond, false)
	at := t0
	for i := 0; i <= idleFlushes; i++ {
		at = at.Add(time.Second)
		a.Flush(at)
	}
	if n := len(a.shards[0].series); n != 0 {
		t.Fatalf("%d series kept after %d idle intervals", n, idleFlushes)
	}
}

// TestAggregatorRecordDoesNotAllocate checks the request path's promise: once a key is
// known and its latency range covered, Record allocates nothing.
func TestAggregatorRecordDoesNotAllocate(t *testing.T) {
	a := NewAggregator(Config{Node: "n", Start: t0})
	k := Key{"hello", "v1", "/hello"}
	for i := 0; i < 1000; i++ { // every shard sees the key and the range
		a.Record(k, 200, time.Millisecond, false)
		a.Record(k, 500, 5*time.Millisecond, true)
	}
	a.Flush(t0.Add(time.Second)) // and a flush keeps the memory
	for i := 0; i < 1000; i++ {
		a.Record(k, 200, time.Millisecond, false)
		a.Record(k, 500, 5*time.Millisecond, true)
	}
	if n := testing.AllocsPerRun(1000, func() { a.Record(k, 200, 2*time.Millisecond, false) }); n != 0 {
		t.Fatalf("Record allocated %v times per call", n)
	}
}

// TestAggregatorHammer records from many goroutines while flushing and checks that
// every request lands in exactly one interval.
func TestAggregatorHammer(t *testing.T) {
	a := NewAggregator(Config{Node: "n", Start: t0})
	keys := []Key{{"a", "v1", "/"}, {"a", "v2", "/"}, {"b", "v1", "/x"}}
	handles := make([]*Series, len(keys))
	for i, k := range keys {
		handles[i] = a.Series(k)
	}
	const workers, each = 8, 5000
	var wg sync.WaitGroup
	done := make(chan struct{})
	var flushed []Summary
	var flusherDone sync.WaitGroup
	flusherDone.Add(1)
	go func() {
		defer flusherDone.Done()
		at := t0
		for {
			select {
			case <-done: // every Record has returned: one last flush takes the rest
				flushed = append(flushed, a.Flush(at.Add(time.Second))...)
				return
			default:
			}
			at = at.Add(time.Second)
			flushed = append(flushed, a.Flush(at)...)
		}
	}()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				k := keys[(w+i)%len(keys)]
				if w%2 == 0 {
					a.Record(k, 200+100*(i%4), time.Duration(1+i%50)*time.Millisecond, i%100 == 0)
				} else {
					handles[(w+i)%len(keys)].Record(200+100*(i%4), time.Duration(1+i%50)*time.Millisecond, i%100 == 0)
				}
				if i%500 == 0 {
					a.RecordDiscard(k, "idle")
				}
			}
		}(w)
	}
	wg.Wait()
	close(done)
	flusherDone.Wait()
	var req, lat, discards uint64
	for _, s := range flushed {
		req += s.Requests()
		lat += s.Latency.Count()
		discards += s.Discards["idle"]
		if err := ValidateSummary(s); err != nil {
			t.Fatalf("summary %d: %v", s.Seq, err)
		}
	}
	if want := uint64(workers * each); req != want || lat != want {
		t.Fatalf("requests %d, latencies %d, want %d", req, lat, want)
	}
	if want := uint64(workers * each / 500); discards != want {
		t.Fatalf("discards %d, want %d", discards, want)
	}
}

func TestBoundaryAndSeq(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 7, 5, time.UTC)
	if b := Boundary(at, 10*time.Second); !b.Equal(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("Boundary = %v", b)
	}
	if b := Boundary(at, 0); !b.Equal(Boundary(at, DefaultInterval)) {
		t.Fatalf("Boundary with no interval = %v", b)
	}
	s1, s2 := SeqFor(t0, 10*time.Second), SeqFor(t0.Add(10*time.Second), 10*time.Second)
	if s2 != s1+1 {
		t.Fatalf("SeqFor not consecutive: %d, %d", s1, s2)
	}
}

func TestAggregatorFlushWhenTheClockStepsBack(t *testing.T) {
	a := NewAggregator(Config{Node: "n", Start: t0, Interval: 10 * time.Second})
	k := Key{"d", "v", "/"}
	a.Record(k, 200, time.Millisecond, false)
	first := a.Flush(t0.Add(10 * time.Second))
	a.Record(k, 200, time.Millisecond, false)
	back := a.Flush(t0.Add(5 * time.Second)) // the clock went back 5 s
	if len(first) != 1 || len(back) != 1 {
		t.Fatalf("%d and %d summaries", len(first), len(back))
	}
	s := back[0]
	if !s.Start.Equal(first[0].End) || !s.End.Equal(s.Start.Add(10*time.Second)) {
		t.Fatalf("interval after the step back: %v–%v", s.Start, s.End)
	}
	if _, err := DecodeSummary(EncodeSummary(nil, s)); err != nil {
		t.Fatalf("summary after the step back is refused: %v", err)
	}
}

func TestSeriesHandle(t *testing.T) {
	a := NewAggregator(Config{Node: "n", Start: t0, Shards: 4})
	k := Key{"hello", "v1", "/hello"}
	h := a.Series(k)
	at := t0
	flush := func() []Summary { at = at.Add(10 * time.Second); return a.Flush(at) }

	h.Record(200, time.Millisecond, true)
	h.Record(500, 2*time.Millisecond, false)
	a.Record(k, 404, time.Millisecond, false) // the key path and the handle share state
	got := flush()
	if len(got) != 1 || got[0].Status != [5]uint64{0, 1, 0, 1, 1} || got[0].ColdStarts != 1 || got[0].Latency.Count() != 3 {
		t.Fatalf("first interval: %+v", got)
	}

	// A live handle keeps its key through idle intervals; records after them count.
	for i := 0; i <= idleFlushes; i++ {
		if s := flush(); len(s) != 0 {
			t.Fatalf("idle interval reported %d summaries", len(s))
		}
	}
	h.Record(200, time.Millisecond, false)
	if got := flush(); len(got) != 1 || got[0].Requests() != 1 {
		t.Fatalf("after idle intervals the handle's record was lost: %+v", got)
	}
	if allocs := testing.AllocsPerRun(1000, func() { h.Record(200, time.Millisecond, false) }); allocs != 0 {
		t.Fatalf("Series.Record allocated %v times", allocs)
	}

	// Released, the key is dropped after its idle intervals.
	h.Release()
	for i := 0; i <= idleFlushes+1; i++ {
		flush()
	}
	for i := range a.shards {
		if n := len(a.shards[i].series); n != 0 {
			t.Fatalf("shard %d keeps %d series after the handle's release", i, n)
		}
	}
}
