package sliingest_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/sliingest"
)

// fakeClock is the server's clock, moved by the test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// assigned is a node → versions table the test changes.
type assigned struct {
	mu sync.Mutex
	m  map[string][]sliingest.VersionRef
}

func (a *assigned) get(node string) []sliingest.VersionRef {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m[node]
}

func (a *assigned) set(node string, v ...sliingest.VersionRef) {
	a.mu.Lock()
	a.m[node] = v
	a.mu.Unlock()
}

type fixture struct {
	in    *sliingest.Ingest
	js    jetstream.JetStream
	clock *fakeClock
	as    *assigned
	reg   *prometheus.Registry
}

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	eng, err := engine.Start(ctx, engine.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	js, err := jetstream.New(eng.Conn())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{js: js, clock: &fakeClock{t: t0}, as: &assigned{m: map[string][]sliingest.VersionRef{}}, reg: prometheus.NewRegistry()}
	f.as.set("n1", sliingest.VersionRef{Deployment: "hello", App: "hello-app", Version: "1.0.0"})
	f.in, err = sliingest.Open(ctx, sliingest.Config{JetStream: js, Versions: f.as.get, Now: f.clock.Now, Metrics: f.reg})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// summary encodes one interval's summary ending at end, with n requests (one a 503).
func summary(t *testing.T, node string, k sli.Key, seq uint64, end time.Time, n int) []byte {
	t.Helper()
	agg := sli.NewAggregator(sli.Config{Node: node, Interval: 10 * time.Second, Start: end.Add(-10 * time.Second), FirstSeq: seq})
	for i := range n {
		status := 200
		if i == 0 {
			status = 503
		}
		agg.Record(k, status, time.Duration(i+1)*time.Millisecond, i == 1)
	}
	out := agg.Flush(end)
	if len(out) != 1 {
		t.Fatalf("flush: %d summaries, want 1", len(out))
	}
	return sli.EncodeSummary(nil, out[0])
}

func (f *fixture) handle(t *testing.T, node string, sentAt time.Time, sums ...[]byte) v1.SLIBatchReply {
	t.Helper()
	b, err := json.Marshal(v1.SLIBatch{SentAt: sentAt, Summaries: sums})
	if err != nil {
		t.Fatal(err)
	}
	return f.in.Handle(context.Background(), node, b)
}

// stored returns the stream's messages: msg id → decoded summary.
func (f *fixture) stored(t *testing.T) map[string]sli.Summary {
	t.Helper()
	ctx := context.Background()
	st, err := f.js.Stream(ctx, v1.StreamSLIs)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]sli.Summary{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		s, err := sli.DecodeSummary(m.Data)
		if err != nil {
			t.Fatalf("stored message %d: %v", seq, err)
		}
		if m.Subject != v1.SubjectSLIStream(s.Node) {
			t.Errorf("stored on %s, want %s", m.Subject, v1.SubjectSLIStream(s.Node))
		}
		out[m.Header.Get(jetstream.MsgIDHeader)] = s
	}
	return out
}

func TestHandleKeepsGoodSummariesAndRefusesBadOnes(t *testing.T) {
	f := newFixture(t)
	end := t0.Add(-5 * time.Second).Truncate(10 * time.Second)
	hello := sli.Key{Deployment: "hello", Version: "1.0.0", Route: "/hello"}
	byApp := sli.Key{Deployment: "hello-app", Version: "1.0.0", Route: "/"}
	good := summary(t, "n1", hello, 7, end, 5)
	oversized := make([]byte, sli.MaxSummaryBytes+1)
	oversized[0] = sli.WireVersion
	batch := [][]byte{
		summary(t, "n2", hello, 7, end, 3), // 0 foreign node
		good,                               // 1
		{sli.WireVersion, 0xff},            // 2 malformed
		oversized,                          // 3 too large
		summary(t, "n1", sli.Key{Deployment: "hello", Version: "2.0.0", Route: "/hello"}, 7, end, 2), // 4 unknown version
		summary(t, "n1", hello, 8, t0.Add(5*time.Minute), 2),                                         // 5 future-dated
		summary(t, "n1", hello, 1, t0.Add(-7*time.Hour), 2),                                          // 6 too old
		summary(t, "n1", byApp, 7, end, 4),                                                           // 7 app name as deployment
	}
	reply := f.handle(t, "n1", t0, batch...)
	if reply.Error != nil {
		t.Fatalf("error: %v", reply.Error)
	}
	if reply.Done != len(batch) || reply.Accepted != 2 {
		t.Fatalf("done %d accepted %d, want %d and 2 (%+v)", reply.Done, reply.Accepted, len(batch), reply.Refused)
	}
	want := map[int]string{0: v1.SLIRefusedForeignNode, 2: v1.SLIRefusedMalformed, 3: v1.SLIRefusedTooLarge,
		4: v1.SLIRefusedUnknownVersion, 5: v1.SLIRefusedClockSkew, 6: v1.SLIRefusedTooOld}
	if len(reply.Refused) != len(want) {
		t.Fatalf("refused %+v, want %v", reply.Refused, want)
	}
	for _, r := range reply.Refused {
		if want[r.Index] != r.Reason {
			t.Errorf("summary %d refused for %s (%s), want %s", r.Index, r.Reason, r.Message, want[r.Index])
		}
		if r.Message == "" {
			t.Errorf("summary %d refused without a message", r.Index)
		}
	}
	for _, reason := range []string{v1.SLIRefusedForeignNode, v1.SLIRefusedMalformed, v1.SLIRefusedTooLarge, v1.SLIRefusedUnknownVersion, v1.SLIRefusedClockSkew, v1.SLIRefusedTooOld} {
		if got := refused(t, f.reg, reason); got != 1 {
			t.Errorf("fermion_sli_refused_total{reason=%q} = %v, want 1", reason, got)
		}
	}
	got := f.stored(t)
	if len(got) != 2 {
		t.Fatalf("stored %d summaries, want 2: %v", len(got), got)
	}
	s, ok := got[v1.SLIMsgID("n1", 7, "hello", "1.0.0", "/hello")]
	if !ok {
		t.Fatalf("stored %v, want the good summary under its msg id", got)
	}
	if s.Requests() != 5 || s.Errors() != 1 || s.ColdStarts != 1 || s.Latency.Count() != 5 {
		t.Errorf("stored summary: %d requests, %d errors, %d cold, %d latencies; want 5, 1, 1, 5", s.Requests(), s.Errors(), s.ColdStarts, s.Latency.Count())
	}

	// Sent again (the reply was lost): stored once.
	reply = f.handle(t, "n1", t0, good)
	if reply.Done != 1 || reply.Accepted != 1 {
		t.Fatalf("resend: %+v", reply)
	}
	if n := len(f.stored(t)); n != 2 {
		t.Errorf("after a resend the stream holds %d summaries, want 2 (deduplicated)", n)
	}
}

// refused reads fermion_sli_refused_total{reason} from reg.
func refused(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "fermion_sli_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no fermion_sli_refused_total{reason=%q}", reason)
	return 0
}

func TestHandleClockSkew(t *testing.T) {
	hello := sli.Key{Deployment: "hello", Version: "1.0.0", Route: "/hello"}
	for _, tc := range []struct {
		name     string
		sentAt   time.Duration // agent clock − server clock
		end      time.Duration // summary end − server clock
		accepted bool
	}{
		{"in sync", 0, -time.Second, true},
		{"agent 30s ahead, within the bound", 30 * time.Second, 25 * time.Second, true},
		{"agent 30s behind, within the bound", -30 * time.Second, -35 * time.Second, true},
		{"backfill from an hour ago", 0, -time.Hour, true},
		{"agent 5 min ahead", 5 * time.Minute, 5 * time.Minute, false},
		{"agent 5 min behind: its live data would pass for backfill", -5 * time.Minute, -5 * time.Minute, false},
		{"future-dated summary from a clock that stepped back since", 0, 3 * time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			end := t0.Add(tc.end)
			reply := f.handle(t, "n1", t0.Add(tc.sentAt), summary(t, "n1", hello, 3, end, 2))
			if reply.Error != nil || reply.Done != 1 {
				t.Fatalf("reply %+v", reply)
			}
			if got := reply.Accepted == 1; got != tc.accepted {
				t.Fatalf("accepted %v, want %v (%+v)", got, tc.accepted, reply.Refused)
			}
			if !tc.accepted && (reply.Refused[0].Reason != v1.SLIRefusedClockSkew || !strings.Contains(reply.Refused[0].Message, "clock")) {
				t.Errorf("refusal %+v, want clock_skew saying so", reply.Refused[0])
			}
		})
	}
}

func TestHandleToleratesAVersionJustReplaced(t *testing.T) {
	f := newFixture(t)
	v1Key := sli.Key{Deployment: "hello", Version: "1.0.0", Route: "/hello"}
	end := t0.Truncate(10 * time.Second)
	if r := f.handle(t, "n1", t0, summary(t, "n1", v1Key, 1, end, 1)); r.Accepted != 1 {
		t.Fatalf("while assigned: %+v", r)
	}
	// The node switches to 2.0.0; its last 1.0.0 intervals still arrive.
	f.as.set("n1", sliingest.VersionRef{Deployment: "hello", App: "hello", Version: "2.0.0"})
	f.clock.Set(t0.Add(30 * time.Second))
	if r := f.handle(t, "n1", t0.Add(30*time.Second), summary(t, "n1", v1Key, 2, end.Add(10*time.Second), 1)); r.Accepted != 1 {
		t.Fatalf("just after the switch: %+v", r)
	}
	// Long after, a summary of 1.0.0 for a recent interval is not believable.
	later := t0.Add(sliingest.DefaultGrace + time.Minute)
	f.clock.Set(later)
	r := f.handle(t, "n1", later, summary(t, "n1", v1Key, 30, later.Truncate(10*time.Second), 1))
	if r.Accepted != 0 || len(r.Refused) != 1 || r.Refused[0].Reason != v1.SLIRefusedUnknownVersion {
		t.Fatalf("long after the switch: %+v", r)
	}
}

func TestHandleRefusesBadBatches(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name, body, code string
	}{
		{"not json", "{", v1.CodeBadRequest},
		{"unknown field", `{"sentAt":"2026-12-06T12:00:00Z","summaries":[],"extra":1}`, v1.CodeBadRequest},
		{"no sentAt", `{"summaries":[]}`, v1.CodeBadRequest},
		{"trailing data", `{"sentAt":"2026-12-06T12:00:00Z","summaries":[]} {}`, v1.CodeBadRequest},
		{"too many", `{"sentAt":"2026-12-06T12:00:00Z","summaries":[` + strings.Repeat(`"AQ==",`, v1.MaxSLIBatchSummaries) + `"AQ=="]}`, v1.CodeTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.in.Handle(context.Background(), "n1", []byte(tc.body))
			if r.Error == nil || r.Error.Code != tc.code || r.Done != 0 {
				t.Fatalf("reply %+v, want error %s and nothing done", r, tc.code)
			}
		})
	}
}

func FuzzHandle(f *testing.F) {
	f.Add([]byte(`{"sentAt":"2026-12-06T12:00:00Z","summaries":["AQ=="]}`))
	f.Add([]byte(`{"sentAt":"2026-12-06T12:00:00Z","summaries":[]}`))
	f.Add([]byte(`{}`))
	eng, err := engine.Start(context.Background(), engine.Config{DataDir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	defer eng.Close()
	js, err := jetstream.New(eng.Conn())
	if err != nil {
		f.Fatal(err)
	}
	clock := &fakeClock{t: t0}
	in, err := sliingest.Open(context.Background(), sliingest.Config{JetStream: js, Now: clock.Now,
		Versions: func(string) []sliingest.VersionRef {
			return []sliingest.VersionRef{{Deployment: "hello", App: "hello", Version: "1.0.0"}}
		}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := in.Handle(context.Background(), "n1", data)
		var batch v1.SLIBatch
		_ = json.Unmarshal(data, &batch)
		if r.Done < 0 || r.Done > len(batch.Summaries) || r.Accepted+len(r.Refused) > r.Done {
			t.Fatalf("reply %+v for %d summaries", r, len(batch.Summaries))
		}
		if r.Error == nil && r.Done != len(batch.Summaries) {
			t.Fatalf("done %d of %d without an error", r.Done, len(batch.Summaries))
		}
	})
}

// TestHandleStopsWhereTheStreamFails: with the stream gone, the reply says how far the
// server got (a refusal before the first store is final), so the agent keeps the rest.
func TestHandleStopsWhereTheStreamFails(t *testing.T) {
	f := newFixture(t)
	if err := f.js.DeleteStream(context.Background(), v1.StreamSLIs); err != nil {
		t.Fatal(err)
	}
	end := t0.Truncate(10 * time.Second)
	hello := sli.Key{Deployment: "hello", Version: "1.0.0", Route: "/hello"}
	r := f.handle(t, "n1", t0,
		summary(t, "n2", hello, 1, end, 1), // refused: final
		summary(t, "n1", hello, 1, end, 1), // cannot be stored
		summary(t, "n1", hello, 2, end.Add(10*time.Second), 1))
	if r.Error == nil || r.Error.Code != v1.CodeUnavailable {
		t.Fatalf("error %v, want unavailable", r.Error)
	}
	if r.Done != 1 || r.Accepted != 0 || len(r.Refused) != 1 || r.Refused[0].Index != 0 {
		t.Fatalf("reply %+v, want done 1 with the foreign summary refused", r)
	}
}
