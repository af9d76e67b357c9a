package controlplane_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/agent"
	"fermion.dev/fermion/internal/agent/agenttest"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/oci"
	"fermion.dev/fermion/internal/sli"
)

// sliNode is a real agent with telemetry on (so it aggregates and sends SLIs).
type sliNode struct {
	gw   string
	dp   *agent.DataPlane
	node *agent.Node
}

func startSLINode(t *testing.T, natsURL, token, name string, interval time.Duration) *sliNode {
	t.Helper()
	a := agenttest.Start(t, agenttest.Config{
		DataPlane: agent.DataPlaneConfig{CacheDir: compileCache, DrainTimeout: 5 * time.Second, Telemetry: true,
			Labels: map[string]string{"node": name}, SLIInterval: interval},
		Node: agent.NodeConfig{Name: name, Servers: []string{natsURL}, JoinToken: token,
			Capacity: v1.Resources{MemoryBytes: 4 << 30, Instances: 64},
			Registry: &oci.Client{HTTPClient: &http.Client{Timeout: 10 * time.Second}}},
	})
	return &sliNode{gw: a.URL, dp: a.DataPlane, node: a.Node}
}

// gauge reads an unlabelled gauge or counter of the node's registry.
func (n *sliNode) metric(t *testing.T, name, label string) float64 {
	t.Helper()
	mfs, err := n.dp.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := label == ""
			for _, l := range m.GetLabel() {
				ok = ok || l.GetValue() == label
			}
			if !ok {
				continue
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return 0
}

// storedSLIs reads every summary in the stream, by msg id.
func storedSLIs(t *testing.T, s *controlplane.Server) map[string]sli.Summary {
	t.Helper()
	ctx := context.Background()
	st, err := s.SLIStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]sli.Summary{}
	if info.State.Msgs == 0 {
		return out
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sum, err := sli.DecodeSummary(m.Data)
		if err != nil {
			t.Fatalf("stored message %d: %v", seq, err)
		}
		id := m.Header.Get(jetstream.MsgIDHeader)
		if want := v1.SLIMsgID(sum.Node, sum.Seq, sum.Key.Deployment, sum.Key.Version, sum.Key.Route); id != want {
			t.Fatalf("stored message %d has msg id %q, want %q", seq, id, want)
		}
		if _, dup := out[id]; dup {
			t.Fatalf("summary %s stored twice", id)
		}
		out[id] = sum
	}
	return out
}

// ofKey returns the stored summaries of k, by seq.
func ofKey(all map[string]sli.Summary, k sli.Key) []sli.Summary {
	var out []sli.Summary
	for _, s := range all {
		if s.Key == k {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b sli.Summary) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

func deployHello(t *testing.T, p *cptest.Plane) {
	t.Helper()
	c, _ := client.New(p.API, p.Token)
	image := p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
	if _, _, err := c.PutDeployment(context.Background(), "hello", v1.DeploymentSpec{Image: image, Daemon: true}, client.CreateOnly()); err != nil {
		t.Fatal(err)
	}
}

// TestSLIsFromARealAgentReachTheStream runs a real agent serving hello and checks that
// its summaries land in FERMION_SLIS with exact counts: requests recorded into the
// agent's aggregator (as the gateway does, under a route of the test's own) and the
// instance starts the sandbox reported.
func TestSLIsFromARealAgentReachTheStream(t *testing.T) {
	p := cptest.Start(t, controlplane.Config{})
	n := startSLINode(t, p.NATSURL(), p.NodeToken(t), "edge-1", 100*time.Millisecond)
	cptest.WaitNodes(t, p.Server, 1, v1.NodeReady, 10*time.Second)
	deployHello(t, p)
	fermiontest.WaitFor(t, 30*time.Second, func() error { return get(n.gw + "/hello") })
	fns := n.dp.Functions()
	if len(fns) != 1 {
		t.Fatalf("%d functions deployed, want 1", len(fns))
	}
	version := fns[0].Version()

	key := sli.Key{Deployment: "hello", Version: version, Route: "/sli-test"}
	agg := n.dp.SLIs()
	for i := range 50 {
		status := 200
		switch {
		case i < 3:
			status = 500
		case i < 5:
			status = 404
		}
		agg.Record(key, status, time.Duration(i+1)*100*time.Microsecond, i == 0)
	}
	var got []sli.Summary
	fermiontest.WaitFor(t, 15*time.Second, func() error {
		got = ofKey(storedSLIs(t, p.Server), key)
		var req uint64
		for _, s := range got {
			req += s.Requests()
		}
		if req != 50 {
			return fmt.Errorf("%d requests stored, want 50", req)
		}
		return nil
	})
	sum := got[0].Clone()
	for _, s := range got[1:] {
		if err := sli.Merge(&sum, s); err != nil {
			t.Fatal(err)
		}
	}
	if sum.Status[4] != 3 || sum.Status[3] != 2 || sum.Status[1] != 45 || sum.ColdStarts != 1 || sum.Latency.Count() != 50 {
		t.Errorf("stored: status %v, %d cold, %d latencies; want 5xx 3, 4xx 2, 2xx 45, 1 cold, 50", sum.Status, sum.ColdStarts, sum.Latency.Count())
	}
	if p99 := sum.Latency.Quantile(0.99); p99 < 4800*time.Microsecond || p99 > 5100*time.Microsecond {
		t.Errorf("p99 %v, want about 4.9ms (within the sketch's 1%%)", p99)
	}
	// The sandbox's own events, under the deployment and no route.
	fermiontest.WaitFor(t, 15*time.Second, func() error {
		var starts uint64
		for _, s := range ofKey(storedSLIs(t, p.Server), sli.Key{Deployment: "hello", Version: version}) {
			for _, n := range s.InstanceStarts { // prewarm at load; scale or request under load
				starts += n
			}
			// Guest CPU alone is content: the snapshot's _initialize runs before any
			// instance is live, so its CPU can land in an interval with no memory
			// observed and no start yet.
			if s.MemoryMaxBytes == 0 && s.InstanceStarts == nil && s.Discards == nil && s.CPUTime == 0 {
				return fmt.Errorf("empty summary stored: %+v", s)
			}
		}
		if starts == 0 {
			return errors.New("no instance start stored")
		}
		return nil
	})
	// The agent counts a batch when the server's reply arrives, just after the stream
	// has it: wait for the count rather than race it.
	fermiontest.WaitFor(t, 15*time.Second, func() error {
		if v := n.metric(t, "fermion_sli_sent_total", "accepted"); v == 0 {
			return errors.New("fermion_sli_sent_total{result=accepted} is 0")
		}
		return nil
	})
	if v := n.metric(t, "fermion_sli_sent_total", "refused"); v != 0 {
		t.Errorf("fermion_sli_sent_total{result=refused} is %v, want 0", v)
	}
}

// TestSLIBackfillAfterPartition cuts a real agent off the control plane for 60
// intervals (10 minutes at the default 10 s; 100 ms here) while it keeps recording,
// then checks that every interval reaches the stream, in order, with no gap, no
// duplicate and no request lost.
func TestSLIBackfillAfterPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("partitions an agent for 6 s")
	}
	const interval = 100 * time.Millisecond
	p := cptest.Start(t, controlplane.Config{})
	px := startProxy(t, strings.TrimPrefix(p.NATSURL(), "nats://"))
	n := startSLINode(t, px.url(), p.NodeToken(t), "edge-1", interval)
	cptest.WaitNodes(t, p.Server, 1, v1.NodeReady, 10*time.Second)
	deployHello(t, p)
	fermiontest.WaitFor(t, 30*time.Second, func() error { return get(n.gw + "/hello") })
	key := sli.Key{Deployment: "hello", Version: n.dp.Functions()[0].Version(), Route: "/sli-test"}

	// Record steadily, as traffic would, so that every interval has a summary.
	var recorded atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		h := n.dp.SLIs().Series(key)
		defer h.Release()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				h.Record(200, time.Millisecond, false)
				recorded.Add(1)
			}
		}
	}()
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if len(ofKey(storedSLIs(t, p.Server), key)) < 3 {
			return errors.New("fewer than 3 intervals stored")
		}
		return nil
	})
	before := len(ofKey(storedSLIs(t, p.Server), key))
	px.setCut(true)
	cutAt := time.Now()
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if n.metric(t, "fermion_sli_buffer_bytes", "") == 0 {
			return errors.New("nothing buffered yet")
		}
		return nil
	})
	time.Sleep(60*interval - time.Since(cutAt)) // the partition's length is the test's subject
	px.setCut(false)
	time.Sleep(5 * interval) // and a few live intervals after it
	close(stop)
	<-done
	total := recorded.Load()

	var got []sli.Summary
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		got = ofKey(storedSLIs(t, p.Server), key)
		var req uint64
		for _, s := range got {
			req += s.Requests()
		}
		if req != total {
			return fmt.Errorf("%d of %d requests stored", req, total)
		}
		return nil
	})
	// Most of the 60 intervals are their own summary; on a starved machine a late
	// flush closes one longer interval instead (no gap: the totals above match).
	if len(got)-before < 30 {
		t.Errorf("%d intervals stored across a 60-interval partition, want at least 30", len(got)-before)
	}
	// Every request arrived (above); each interval once, in order. An interval in which
	// the recorder never ran, on a busy machine, has no summary, so seq may skip.
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		if b.Seq <= a.Seq || b.Start.Before(a.End) || (b.Seq == a.Seq+1 && !b.Start.Equal(a.End)) {
			t.Fatalf("interval %d (%s–%s) after %d (%s–%s): out of order or overlapping", b.Seq, b.Start, b.End, a.Seq, a.Start, a.End)
		}
	}
	if v := n.metric(t, "fermion_sli_dropped_total", ""); v != 0 {
		t.Errorf("fermion_sli_dropped_total = %v, want 0", v)
	}
	t.Logf("%d intervals stored, %d across the partition, %d requests", len(got), len(got)-before, total)
}

// TestSLIPermissions: a node's credentials send SLIs on its own subject only, and
// cannot write into the stream directly around the server's checks.
func TestSLIPermissions(t *testing.T) {
	ctx := context.Background()
	p := cptest.Start(t, controlplane.Config{})
	jc, err := nats.Connect(p.NATSURL(), nats.UserInfo(v1.JoinUser, p.NodeToken(t)))
	if err != nil {
		t.Fatal(err)
	}
	var jr v1.JoinReply
	b, _ := json.Marshal(v1.JoinRequest{Node: "edge-a"})
	m, err := jc.Request(v1.SubjectJoin, b, 5*time.Second)
	jc.Close()
	if err != nil || json.Unmarshal(m.Data, &jr) != nil || jr.Error != nil {
		t.Fatalf("join: %v %+v", err, jr)
	}
	nc, err := nats.Connect(p.NATSURL(), nats.UserInfo(v1.NodeUserPrefix+"edge-a", jr.Secret), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	end := time.Now().Truncate(10 * time.Second)
	agg := sli.NewAggregator(sli.Config{Node: "edge-a", Start: end.Add(-10 * time.Second), FirstSeq: 1})
	agg.Record(sli.Key{Deployment: "hello", Version: "1.0.0", Route: "/"}, 200, time.Millisecond, false)
	batch, _ := json.Marshal(v1.SLIBatch{SentAt: time.Now(), Summaries: [][]byte{sli.EncodeSummary(nil, agg.Flush(end)[0])}})

	// Its own subject: answered (refused: the node runs nothing).
	m, err = nc.Request(v1.SubjectSLIs("edge-a"), batch, 5*time.Second)
	if err != nil {
		t.Fatalf("own subject: %v", err)
	}
	var reply v1.SLIBatchReply
	if err := json.Unmarshal(m.Data, &reply); err != nil || reply.Done != 1 || len(reply.Refused) != 1 || reply.Refused[0].Reason != v1.SLIRefusedUnknownVersion {
		t.Fatalf("own subject: %+v %v", reply, err)
	}
	// Another node's subject, and the stream's subject: not allowed.
	for _, subject := range []string{v1.SubjectSLIs("edge-b"), v1.SubjectSLIStream("edge-a")} {
		if _, err := nc.Request(subject, batch, time.Second); err == nil {
			t.Errorf("%s: answered, want a permissions violation", subject)
		}
	}
	st, err := p.SLIStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("the stream holds %d messages, want 0", info.State.Msgs)
	}
}
