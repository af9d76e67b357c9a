package sli

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// helloSummary is one version-interval of a hello-like load: 10 s at rps requests per
// second, warm latencies around 300 µs with a cold tail, a few 404s and 5xx.
func helloSummary(tb testing.TB, rps int) Summary {
	tb.Helper()
	a := NewAggregator(Config{Node: "edge-fra-01", Start: t0, FirstSeq: SeqFor(t0, 10*time.Second)})
	k := Key{"hello", "sha256-4f2a9c1e", "/hello"}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < rps*10; i++ {
		lat := time.Duration(math.Exp(r.NormFloat64()*0.4) * float64(300*time.Microsecond))
		status, cold := 200, false
		switch {
		case i%500 == 0:
			status = 503
		case i%97 == 0:
			status = 404
		case i%1000 == 1:
			cold, lat = true, 2*time.Millisecond+lat
		}
		a.Record(k, status, lat, cold)
	}
	a.RecordInstanceStart(k, "scale")
	a.RecordDiscard(k, "idle")
	a.ObserveInstance(k, 4<<20, 900*time.Millisecond)
	a.SetTelemetryBacklog(0)
	s := a.Flush(t0.Add(10 * time.Second))
	if len(s) != 1 {
		tb.Fatalf("%d summaries", len(s))
	}
	return s[0]
}

func TestSummaryRoundTrip(t *testing.T) {
	s := helloSummary(t, 1000)
	s.LimitRejections = map[string]uint64{"rate": 3, "concurrency": 1}
	s.OutboundErrors, s.PolicyDenials = 2, 1
	b := EncodeSummary(nil, s)
	got, err := DecodeSummary(b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Latency.Equal(s.Latency) {
		t.Fatal("latency sketch differs after a round trip")
	}
	got.Latency, s.Latency = nil, nil
	if !got.Start.Equal(s.Start) || !got.End.Equal(s.End) {
		t.Fatalf("interval %v–%v, want %v–%v", got.Start, got.End, s.Start, s.End)
	}
	got.Start, got.End, s.Start, s.End = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
	}
	if again := EncodeSummary(nil, mustDecode(t, b)); !bytes.Equal(again, b) {
		t.Fatal("re-encoding a decoded summary changed its bytes")
	}
}

func mustDecode(t *testing.T, b []byte) Summary {
	t.Helper()
	s, err := DecodeSummary(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSummarySizeBudget holds the budget: ≤ 1 KB per version per interval on
// the wire for a hello-like load. The JSON form is measured beside it (docs/sli.md).
func TestSummarySizeBudget(t *testing.T) {
	for _, rps := range []int{10, 1000} {
		s := helloSummary(t, rps)
		bin := len(EncodeSummary(nil, s))
		js := len(jsonForm(t, s))
		t.Logf("%d req/s: binary %d bytes, JSON with base64 sketch %d bytes, %d buckets", rps, bin, js, nonEmpty(s.Latency))
		if bin > 1024 {
			t.Errorf("%d req/s: summary is %d bytes, over the 1 KB budget", rps, bin)
		}
	}
}

func nonEmpty(s *Sketch) int {
	n := 0
	for _, c := range s.counts {
		if c != 0 {
			n++
		}
	}
	return n
}

// jsonForm is the alternative the wire format was measured against.
func jsonForm(tb testing.TB, s Summary) []byte {
	b, err := json.Marshal(struct {
		Summary
		Latency []byte
	}{s, s.Latency.AppendBinary(nil)})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestDecodeSummaryRefuses(t *testing.T) {
	good := EncodeSummary(nil, helloSummary(t, 10))
	mutate := func(f func(s *Summary)) []byte {
		s := helloSummary(t, 10)
		f(&s)
		return EncodeSummary(nil, s)
	}
	// hand builds an encoding up to the sketch with the given overrides.
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "empty input"},
		{"oversized", make([]byte, MaxSummaryBytes+1), "over the 16384-byte limit"},
		{"unknown version", append([]byte{9}, good[1:]...), "wire version 9"},
		{"truncated", good[:len(good)/2], "truncated"},
		{"trailing bytes", append(append([]byte{}, good...), 0), "1 trailing bytes"},
		{"non-minimal varint", append([]byte{WireVersion, 0x81, 0x00}, good[2:]...), "not minimally encoded"},
		{"end before start", mutate(func(s *Summary) { s.End = s.Start.Add(-time.Second) }), "end must be after start"},
		{"zero-length interval", mutate(func(s *Summary) { s.End = s.Start }), "end must be after start"},
		{"negative cpu", mutate(func(s *Summary) { s.CPUTime = -time.Second }), "cpu time -1s is negative"},
		{"counts disagree", mutate(func(s *Summary) { s.Status[1]++ }), "must agree"},
		{"cold exceeds requests", mutate(func(s *Summary) { s.ColdStarts = 1 << 40 }), "cold starts"},
		{"empty node", mutate(func(s *Summary) { s.Node = "" }), "node is empty"},
		{"long route", mutate(func(s *Summary) { s.Key.Route = "/" + strings.Repeat("x", MaxRouteLen) }), "route is 1025 bytes"},
		{"bad utf8", mutate(func(s *Summary) { s.Key.Version = "v\xff" }), "not valid UTF-8"},
		{"too many reasons", mutate(func(s *Summary) {
			s.Discards = map[string]uint64{}
			for i := 0; i <= MaxReasons; i++ {
				s.Discards[strings.Repeat("r", i+1)] = 1
			}
		}), "over the limit of 32"},
		{"too many buckets", sketchBytes(t, func(b []byte) []byte {
			return binary.AppendUvarint(append(b, 0, 0, 0), uint64(MaxBuckets+1))
		}), "more than the"},
		{"bucket index out of range", sketchBytes(t, func(b []byte) []byte {
			b = binary.AppendUvarint(append(b, 0, 0, 0), 1)
			return binary.AppendUvarint(b, uint64(MaxBuckets+5))
		}), "outside the sketch's range"},
		{"repeated bucket", sketchBytes(t, func(b []byte) []byte {
			b = binary.AppendUvarint(append(b, 0, 0, 0), 2)
			return append(b, 1, 1, 0, 1)
		}), "not increasing"},
		{"empty bucket", sketchBytes(t, func(b []byte) []byte {
			b = binary.AppendUvarint(append(b, 0, 0, 0), 1)
			return append(b, 1, 0)
		}), "count of 0"},
		{"max outside the top bucket", sketchBytes(t, func(b []byte) []byte {
			b = append(b, 0)
			b = binary.AppendUvarint(b, uint64(time.Hour))
			b = binary.AppendUvarint(b, uint64(time.Hour))
			return append(b, 1, 1, 1)
		}), "does not fall in the highest bucket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeSummary(tt.in)
			if err == nil {
				t.Fatal("decoded without error")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "decode sli summary: ") {
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// sketchBytes encodes a minimal summary header and lets f write the sketch; the rest
// of the summary is never reached because the sketch is refused.
func sketchBytes(t *testing.T, f func([]byte) []byte) []byte {
	t.Helper()
	b := []byte{WireVersion}
	for _, s := range []string{"n", "d", "v", "/"} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, 1)
	b = binary.AppendVarint(b, t0.UnixNano())
	b = binary.AppendVarint(b, int64(time.Second))
	b = append(b, 0, 0, 0, 0, 0, 0) // statuses and other
	return append(f(b), make([]byte, 16)...)
}

func FuzzDecodeSummary(f *testing.F) {
	f.Add(EncodeSummary(nil, helloSummary(f, 10)))
	s := helloSummary(f, 100)
	s.LimitRejections = map[string]uint64{"rate": 1}
	f.Add(EncodeSummary(nil, s))
	f.Add([]byte{WireVersion})
	f.Add(EncodeSummary(nil, slowSummary(f, "/hello", "/a/b", "/hello/ü")))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSummary(b)
		if err != nil {
			return
		}
		// Anything accepted is valid, re-encodes to the same bytes and answers queries.
		if err := ValidateSummary(s); err != nil {
			t.Fatalf("decoded summary does not validate: %v", err)
		}
		// Re-encoding drops only sections this decoder does not know.
		again := EncodeSummary(nil, s)
		if !bytes.Equal(WithoutExtensions(again), WithoutExtensions(b)) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, again)
		}
		if s2 := mustDecode(t, again); !reflect.DeepEqual(s2.Slowest, s.Slowest) {
			t.Fatalf("exemplars differ after re-encoding:\n in %+v\nout %+v", s.Slowest, s2.Slowest)
		}
		for _, q := range []float64{0, 0.5, 0.99, 1} {
			if v := s.Latency.Quantile(q); v < 0 || v > s.Latency.Max() {
				t.Fatalf("Quantile(%v) = %v outside [0, max %v]", q, v, s.Latency.Max())
			}
		}
	})
}
