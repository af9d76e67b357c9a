package sli

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func traceID(n byte) [16]byte {
	var id [16]byte
	id[0], id[15] = 0xab, n
	return id
}

// TestSlowHeap: whatever the order requests come in, each key's flush carries its k
// slowest, slowest first, across every shard.
func TestSlowHeap(t *testing.T) {
	tests := []struct {
		name      string
		exemplars int
		n         int
		wantK     int
	}{
		{"default k", 0, 100, DefaultExemplars},
		{"k 1", 1, 50, 1},
		{"k capped", 100, 50, MaxExemplars},
		{"fewer requests than k", 0, 3, 3},
		{"off", -1, 50, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAggregator(Config{Node: "n", Start: t0, Exemplars: tc.exemplars})
			k := Key{"app", "v1", "/"}
			h := a.Series(k)
			r := rand.New(rand.NewPCG(3, 4))
			for _, i := range r.Perm(tc.n) {
				h.RecordRequest(&Exemplar{Duration: time.Duration(i+1) * time.Millisecond, Status: 200,
					Start: t0.UnixMilli(), TraceID: traceID(byte(i)), Method: "GET", Path: "/x"}, false)
			}
			sums := a.Flush(t0.Add(10 * time.Second))
			if len(sums) != 1 {
				t.Fatalf("%d summaries", len(sums))
			}
			got := sums[0].Slowest
			if len(got) != tc.wantK {
				t.Fatalf("%d exemplars, want %d", len(got), tc.wantK)
			}
			for i, e := range got {
				if want := time.Duration(tc.n-i) * time.Millisecond; e.Duration != want {
					t.Errorf("exemplar %d: %v, want %v", i, e.Duration, want)
				}
			}
			// The next interval starts empty.
			h.RecordRequest(&Exemplar{Duration: time.Microsecond, Status: 200, TraceID: traceID(1), Start: t0.UnixMilli() + 10000}, false)
			if s := a.Flush(t0.Add(20 * time.Second)); tc.wantK > 0 && len(s[0].Slowest) != 1 {
				t.Fatalf("next interval: %d exemplars, want 1", len(s[0].Slowest))
			}
		})
	}
}

func TestTruncatePath(t *testing.T) {
	long := strings.Repeat("a", MaxExemplarPath-1) + "é" // é straddles the limit
	tests := []struct{ in, want string }{
		{"/hello", "/hello"},
		{"/hello?token=secret", "/hello"},
		{"?a", ""},
		{long, long[:MaxExemplarPath-1]},
		{strings.Repeat("b", 100), strings.Repeat("b", MaxExemplarPath)},
		{"/a\xffb", "/a\uFFFDb"},
	}
	for _, tc := range tests {
		if got := TruncatePath(tc.in); got != tc.want {
			t.Errorf("TruncatePath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestExemplarFromAnyRequest: whatever method and path a client sent, the summary the
// aggregator makes decodes (an odd request must not get a node's summary refused).
func TestExemplarFromAnyRequest(t *testing.T) {
	a := NewAggregator(Config{Node: "n", Start: t0})
	h := a.Series(Key{"d", "v", "/"})
	h.RecordRequest(&Exemplar{Duration: time.Second, Status: 200, Start: t0.UnixMilli(), TraceID: traceID(1),
		Method: strings.Repeat("X", 40), Path: "/\xff\xfe" + strings.Repeat("é", 60) + "?q=1"}, false)
	h.RecordRequest(&Exemplar{Duration: 2 * time.Second, Status: 200, Start: t0.UnixMilli(), TraceID: traceID(2),
		Method: "G\xffT", Path: "/%3F"}, false)
	s := a.Flush(t0.Add(10 * time.Second))[0]
	got := mustDecode(t, EncodeSummary(nil, s))
	if len(got.Slowest) != 2 || len(got.Slowest[1].Method) != MaxExemplarMethod || len(got.Slowest[1].Path) > MaxExemplarPath {
		t.Fatalf("decoded %+v", got.Slowest)
	}
}

// TestRecordRequestAllocs: the request path allocates nothing, slow or not.
func TestRecordRequestAllocs(t *testing.T) {
	a := NewAggregator(Config{Node: "n", Start: t0})
	warm(a)
	h := a.Series(benchKey)
	path := "/hello/" + strings.Repeat("x", 100)
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		i++
		h.RecordRequest(&Exemplar{Duration: latencies[i&255] + time.Duration(i), Status: 200, TraceID: traceID(1), Method: "GET", Path: path}, false)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per request", allocs)
	}
}

func slowSummary(t testing.TB, paths ...string) Summary {
	t.Helper()
	return slowSummaryAt(t, 10, paths...)
}

// slowSummaryAt is helloSummary at rps with one exemplar per path, slowest first.
func slowSummaryAt(t testing.TB, rps int, paths ...string) Summary {
	t.Helper()
	s := helloSummary(t, rps)
	for i, p := range paths {
		s.Slowest = append(s.Slowest, Exemplar{Duration: time.Duration(50-i) * time.Millisecond, Status: 200 + i,
			Start: s.Start.UnixMilli() + int64(i*100), TraceID: traceID(byte(i + 1)), Sampled: i%2 == 0,
			Instance: uint64(i), Method: []string{"GET", "POST", "PROPFIND"}[i%3], Path: p})
	}
	return s
}

func TestExemplarsRoundTrip(t *testing.T) {
	s := slowSummary(t, "/hello", "/a", "/b", "/hello", "/ü")
	b := EncodeSummary(nil, s)
	got := mustDecode(t, b)
	if len(got.Slowest) != len(s.Slowest) {
		t.Fatalf("%d exemplars, want %d", len(got.Slowest), len(s.Slowest))
	}
	for i := range s.Slowest {
		if got.Slowest[i] != s.Slowest[i] {
			t.Errorf("exemplar %d:\n got %+v\nwant %+v", i, got.Slowest[i], s.Slowest[i])
		}
	}
	if again := EncodeSummary(nil, got); !bytes.Equal(again, b) {
		t.Fatal("re-encoding changed the bytes")
	}
	// An old server's view: the version-1 prefix, exactly the encoding without them.
	s.Slowest = nil
	if base := WithoutExtensions(b); !bytes.Equal(base, EncodeSummary(nil, s)) {
		t.Fatal("WithoutExtensions is not the encoding without exemplars")
	}
	// A summary without exemplars still decodes (an older agent's).
	if got := mustDecode(t, EncodeSummary(nil, s)); got.Slowest != nil {
		t.Fatalf("exemplars from nowhere: %+v", got.Slowest)
	}
}

// TestExemplarsWireBudget: the section never exceeds MaxExemplarBytes, nor, past the
// first exemplar, the summary MaxSummaryWithExemplars; the slowest are the ones kept.
func TestExemplarsWireBudget(t *testing.T) {
	long := "/" + strings.Repeat("p", 100)
	hello := []string{"/hello", "/hello", "/hello", "/hello", "/hello"}
	tests := []struct {
		name  string
		rps   int
		paths []string
		want  int
	}{
		{"hello paths: all five", 10, hello, 5},
		{"a larger sketch: as many as the summary's bound leaves room for", 1000, hello, 4},
		{"long paths: as many as the section holds", 10, []string{long, long, long, long, long}, 1},
		{"the bound stops the second, not the first", 1000, []string{long, "/a"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := len(EncodeSummary(nil, helloSummary(t, tc.rps)))
			s := slowSummaryAt(t, tc.rps, tc.paths...)
			b := EncodeSummary(nil, s)
			t.Logf("exemplars: %d bytes, summary %d bytes", len(b)-base, len(b))
			if extra := len(b) - base; extra > MaxExemplarBytes+3 {
				t.Errorf("exemplars cost %d bytes, over %d", extra, MaxExemplarBytes+3)
			}
			got := mustDecode(t, b)
			if len(got.Slowest) != tc.want {
				t.Fatalf("%d exemplars on the wire, want %d", len(got.Slowest), tc.want)
			}
			if len(got.Slowest) > 1 && len(b) > MaxSummaryWithExemplars {
				t.Errorf("summary is %d bytes with %d exemplars, over %d", len(b), len(got.Slowest), MaxSummaryWithExemplars)
			}
			if got.Slowest[0].Duration != s.Slowest[0].Duration {
				t.Fatal("the slowest was not kept")
			}
		})
	}
}

func TestExemplarsRefused(t *testing.T) {
	mutate := func(f func(s *Summary)) []byte {
		s := slowSummary(t, "/hello", "/a")
		f(&s)
		return EncodeSummary(nil, s)
	}
	good := mutate(func(*Summary) {})
	base := len(WithoutExtensions(good))
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"zero trace id", mutate(func(s *Summary) { s.Slowest[1].TraceID = [16]byte{} }), "trace id is all zeros"},
		{"out of order", mutate(func(s *Summary) { s.Slowest[1].Duration = time.Second }), "slowest first"},
		{"status", mutate(func(s *Summary) { s.Slowest[0].Status = 1000 }), "not an HTTP status"},
		{"starts well after the interval", mutate(func(s *Summary) { s.Slowest[0].Start = s.End.Add(exemplarLateStart).UnixMilli() + 1 }), "starts over 1m0s after"},
		{"more exemplars than requests", func() []byte {
			s := slowSummary(t, "/a")
			s.Status, s.OtherStatus, s.Latency, s.ColdStarts = [5]uint64{}, 0, &Sketch{}, 0
			return EncodeSummary(nil, s)
		}(), "1 exemplars but 0 requests"},
		{"section cut short", good[:len(good)-2], "truncated"},
		{"section oversize", func() []byte {
			b := append([]byte{}, good[:base]...)
			b = binary.AppendUvarint(append(b, extExemplars), MaxExemplarBytes+1) // length over the limit
			return append(b, make([]byte, MaxExemplarBytes+1)...)
		}(), "over the 160-byte limit"},
		{"over the summary's bound past the first", func() []byte {
			// Five exemplars that fit the section, after a base made large.
			s := slowSummaryAt(t, 1000, "/hello", "/hello", "/hello", "/hello", "/hello")
			s.Node = strings.Repeat("n", 200)
			lim := s
			lim.Slowest = nil
			b := EncodeSummary(nil, lim)
			sec := []byte{5}
			for i := range s.Slowest {
				sec = appendExemplar(sec, &s.Slowest[i], &s)
			}
			b = binary.AppendUvarint(append(b, extExemplars), uint64(len(sec)))
			return append(b, sec...)
		}(), "over the 560-byte limit past the first"},
		{"repeated extension", append(append([]byte{}, good...), good[base:]...), "out of order or repeated"},
		{"unknown flags", func() []byte {
			b := append([]byte{}, good...)
			// the first exemplar's flags: tag, length, count, then duration (3), status (2), start (1), trace (16)
			b[base+3+3+2+1+16] |= 0x80
			return b
		}(), "unknown flags"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeSummary(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	// Negative durations cannot be encoded; the in-memory check refuses them.
	s := slowSummary(t, "/a")
	s.Slowest[0].Duration = -time.Second
	if err := ValidateSummary(s); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Fatalf("negative duration: err = %v", err)
	}
	// A request that started just after the boundary, before the flush ran, is kept.
	late := slowSummary(t, "/a")
	late.Slowest[0].Start = late.End.UnixMilli() + 5
	if got := mustDecode(t, EncodeSummary(nil, late)); got.Slowest[0].Start != late.Slowest[0].Start {
		t.Fatal("a request started between the boundary and the flush was refused")
	}
	// A newer agent's unknown extension is skipped.
	b := append(append([]byte{}, good...), 7, 2, 0xff, 0xff)
	if got := mustDecode(t, b); len(got.Slowest) != 2 {
		t.Fatalf("with an unknown extension: %d exemplars, want 2", len(got.Slowest))
	}
}
