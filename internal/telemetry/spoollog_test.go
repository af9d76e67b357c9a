package telemetry

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpExport is an OTLP/HTTP protobuf export of n spans, gzipped when gz.
func otlpExport(t testing.TB, n int, gz bool) []byte {
	t.Helper()
	spans := make([]*tracepb.Span, n)
	for i := range spans {
		spans[i] = &tracepb.Span{Name: "HTTP GET /hello", TraceId: bytes.Repeat([]byte{1}, 16), SpanId: []byte{0, 0, 0, 0, 0, 0, 0, byte(i + 1)}}
	}
	b, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		{ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !gz {
		return b
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(b)
	zw.Close()
	return z.Bytes()
}

// logLines are the JSON log lines in out whose msg starts with prefix.
func logLines(t *testing.T, out, prefix string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, l)
		}
		if msg, _ := m["msg"].(string); strings.HasPrefix(msg, prefix) {
			lines = append(lines, m)
		}
	}
	return lines
}

// TestSpoolLogsOncePerTransition: an outage writes one WARN line when spooling starts,
// however many exports it spools, and one INFO line when the replay has emptied the
// backlog, with how many payloads and spans went and how long it took; the next outage
// logs again.
func TestSpoolLogsOncePerTransition(t *testing.T) {
	const (
		started  = "telemetry spool: collector unavailable, spooling span exports"
		finished = "telemetry spool: replay finished, the backlog is empty"
	)
	c := newCollector(t)
	var logs fermiontest.SyncBuffer
	s, err := NewSpool(SpoolConfig{Dir: t.TempDir(), MaxBytes: 1 << 20, Retry: 20 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	send := func(body []byte, gz bool) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, c.srv.URL+"/v1/traces", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-protobuf")
		if gz {
			req.Header.Set("Content-Encoding", "gzip")
		}
		resp, err := s.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("export: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	empty := func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.files) == 0 }

	send(otlpExport(t, 1, false), false) // the collector is up: nothing to say
	if got := logLines(t, logs.String(), "telemetry spool:"); len(got) != 0 {
		t.Fatalf("a delivered export logged %v", got)
	}

	for round := 1; round <= 2; round++ {
		c.status.Store(http.StatusServiceUnavailable)
		send(otlpExport(t, 3, true), true)
		send(otlpExport(t, 2, false), false)
		send(otlpExport(t, 4, true), true)
		if got := logLines(t, logs.String(), started); len(got) != round {
			t.Fatalf("outage %d: %d %q lines, want one per outage\n%s", round, len(got), started, logs.String())
		} else if last := got[round-1]; last["level"] != "WARN" || last["err"] != "503 Service Unavailable" {
			t.Fatalf("outage %d: start line %v, want level WARN and the collector's answer", round, last)
		}
		if got := logLines(t, logs.String(), finished); len(got) != round-1 {
			t.Fatalf("outage %d: replay logged finished before the collector came back\n%s", round, logs.String())
		}
		c.status.Store(0)
		waitUntil(t, "the replay to empty the spool", empty)
		waitUntil(t, "the replay's log line", func() bool { return len(logLines(t, logs.String(), finished)) == round })
		line := logLines(t, logs.String(), finished)[round-1]
		want := map[string]float64{"payloads": 3, "spans": 9, "dropped": 0, "spooled": 3}
		for k, v := range want {
			if got, _ := line[k].(float64); got != v {
				t.Errorf("outage %d: finished line %s = %v, want %v\n%v", round, k, line[k], v, line)
			}
		}
		if line["level"] != "INFO" || line["bytes"].(float64) <= 0 {
			t.Errorf("outage %d: finished line %v, want level INFO and the bytes replayed", round, line)
		}
		for _, k := range []string{"took_ms", "spooled_for_ms"} {
			if _, ok := line[k].(float64); !ok {
				t.Errorf("outage %d: finished line has no duration %s: %v", round, k, line)
			}
		}
	}
}

func TestCountSpans(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		encoding    string
		body        []byte
		want        int
	}{
		{name: "protobuf", contentType: "application/x-protobuf", body: otlpExport(t, 5, false), want: 5},
		{name: "gzip", contentType: "application/x-protobuf", encoding: "gzip", body: otlpExport(t, 7, true), want: 7},
		{name: "empty export", contentType: "application/x-protobuf", body: nil, want: 0},
		{name: "json", contentType: "application/json", body: []byte(`{"resourceSpans":[]}`), want: 0},
		{name: "not gzip", contentType: "application/x-protobuf", encoding: "gzip", body: []byte("plain"), want: 0},
		{name: "unknown encoding", contentType: "application/x-protobuf", encoding: "br", body: otlpExport(t, 1, false), want: 0},
		{name: "garbage", contentType: "application/x-protobuf", body: []byte{0xff, 0xff, 0xff}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := countSpans(tt.contentType, tt.encoding, tt.body); got != tt.want {
				t.Fatalf("countSpans = %d, want %d", got, tt.want)
			}
		})
	}
}

// FuzzCountSpans: a damaged spool file's body never panics the count, and a count is
// never negative.
func FuzzCountSpans(f *testing.F) {
	f.Add(otlpExport(f, 3, false), false)
	f.Add(otlpExport(f, 2, true), true)
	f.Add([]byte{0x0a, 0x80}, false)
	f.Fuzz(func(t *testing.T, body []byte, gz bool) {
		enc := ""
		if gz {
			enc = "gzip"
		}
		if n := countSpans("application/x-protobuf", enc, body); n < 0 {
			t.Fatalf("countSpans = %d", n)
		}
	})
}
