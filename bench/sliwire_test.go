package bench

// Bytes on the wire per version-interval of SLI summaries (issue 14 budget: ≤ 1 KB),
// measured on a real NATS connection whose socket counts its bytes: each iteration
// sends one flush's v1.SLIBatch the way the agent does (JSON, summaries base64) as a
// request on v1.SubjectSLIs, answered by the control plane's real receive path
// (sliingest, which stores into FERMION_SLIS). Both directions and the NATS protocol
// lines count. The baseline, in the same run, is the binary summaries alone.
//
//	go test ./bench -run '^$' -bench SLIWire -count 5 -benchtime 200x
//
// Results: bench/RESULTS.md ("SLI transport").

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/sliingest"
)

// countConn counts what goes through a connection as it goes, so the benchmark can
// read the totals without closing the connection.
type countConn struct {
	net.Conn
	in, out *atomic.Int64
}

func (c countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}
func (c countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

// helloFlush is one 10 s flush of a hello-like load at rps per version: warm latencies
// around 300 µs (lognormal), a cold tail, a few 404s and 503s, one instance start and
// discard and the memory of the versions' pools.
func helloFlush(node string, versions, rps int) []sli.Summary {
	t0 := time.Now().Add(-20 * time.Second).Truncate(10 * time.Second)
	a := sli.NewAggregator(sli.Config{Node: node, Start: t0, FirstSeq: sli.SeqFor(t0, 10*time.Second)})
	r := rand.New(rand.NewPCG(1, 2))
	for v := range versions {
		k := sli.Key{Deployment: fmt.Sprintf("app-%02d", v), Version: "1.0.0", Route: "/"}
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
		a.RecordInstanceStart(k, "prewarm")
		a.RecordDiscard(k, "idle")
		a.ObserveInstance(k, 4<<20, 0)
	}
	return a.Flush(t0.Add(10 * time.Second))
}

func BenchmarkSLIWire(b *testing.B) {
	for _, tc := range []struct{ versions, rps int }{{1, 10}, {1, 1000}, {20, 10}, {20, 1000}} {
		b.Run(fmt.Sprintf("versions=%d/rps=%d", tc.versions, tc.rps), func(b *testing.B) {
			benchSLIWire(b, tc.versions, tc.rps)
		})
	}
}

func benchSLIWire(b *testing.B, versions, rps int) {
	benchSLIWireOf(b, versions, helloFlush("edge-fra-01", versions, rps))
}

// benchSLIWireOf sends sums, one flush of versions versions, as benchSLIWire does.
func benchSLIWireOf(b *testing.B, versions int, sums []sli.Summary) {
	ctx := context.Background()
	eng, err := engine.Start(ctx, engine.Config{DataDir: b.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	js, err := jetstream.New(eng.Conn())
	if err != nil {
		b.Fatal(err)
	}
	refs := make([]sliingest.VersionRef, versions)
	for v := range refs {
		refs[v] = sliingest.VersionRef{Deployment: fmt.Sprintf("app-%02d", v), App: "hello", Version: "1.0.0"}
	}
	in, err := sliingest.Open(ctx, sliingest.Config{JetStream: js, Versions: func(string) []sliingest.VersionRef { return refs }})
	if err != nil {
		b.Fatal(err)
	}
	sub, err := eng.Conn().QueueSubscribe(v1.SubjectSLIs("*"), v1.QueueServers, func(m *nats.Msg) {
		reply, _ := json.Marshal(in.Handle(ctx, "edge-fra-01", m.Data))
		m.Respond(reply)
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()

	var up, down atomic.Int64
	nc, err := nats.Connect(eng.ClientURL(), nats.SetCustomDialer(dialerFunc(func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err != nil {
			return nil, err
		}
		return countConn{Conn: c, in: &down, out: &up}, nil
	})))
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()

	var raw int
	cpu0 := cpuTime()
	b.ResetTimer()
	up.Store(0)
	down.Store(0)
	for i := 0; i < b.N; i++ {
		batch := v1.SLIBatch{SentAt: time.Now()}
		for j := range sums {
			sums[j].Seq++ // a new interval each time: nothing deduplicated, nothing cached
			enc := sli.EncodeSummary(nil, sums[j])
			raw += len(enc)
			batch.Summaries = append(batch.Summaries, enc)
		}
		body, err := json.Marshal(batch)
		if err != nil {
			b.Fatal(err)
		}
		msg, err := nc.Request(v1.SubjectSLIs("edge-fra-01"), body, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		var reply v1.SLIBatchReply
		if err := json.Unmarshal(msg.Data, &reply); err != nil || reply.Accepted != len(sums) {
			b.Fatalf("reply %+v, %v", reply, err)
		}
	}
	b.StopTimer()
	// The process's CPU time: the agent's side (encode, JSON) and the server's (NATS,
	// decode and checks, JetStream file store), so an upper bound on the server's.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/batch")
	n := float64(b.N * len(sums))
	wire := float64(up.Load()+down.Load()) / n
	b.ReportMetric(wire, "wire-B/version-interval")
	b.ReportMetric(float64(raw)/n, "binary-B/version-interval")
	b.ReportMetric(wire/(float64(raw)/n), "wire/binary")
	if wire > 1024 {
		b.Errorf("%.0f bytes on the wire per version-interval, over the 1 KB budget", wire)
	}
}

type dialerFunc func(network, addr string) (net.Conn, error)

func (f dialerFunc) Dial(network, addr string) (net.Conn, error) { return f(network, addr) }
