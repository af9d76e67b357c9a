package agent_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/agent"
	"fermion.dev/fermion/internal/agent/agenttest"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/telemetry"
)

// startSLINode starts a node with telemetry on, SLIs flushed every interval and a
// buffer of bufBytes.
func startSLINode(t *testing.T, cp *controlPlane, name string, interval time.Duration, bufBytes int) (*testNode, *agent.DataPlane) {
	t.Helper()
	logger := testLogger(t, name)
	a := agenttest.Start(t, agenttest.Config{
		DataPlane: agent.DataPlaneConfig{CacheDir: compileCache, Logger: logger, Telemetry: true,
			Labels: map[string]string{"node": name}, SLIInterval: interval},
		Node: agent.NodeConfig{Name: name, Servers: []string{cp.url()},
			Capacity: v1.Resources{MemoryBytes: 1 << 30, MilliCPU: 1000, Instances: 10}, Logger: logger,
			SLIBufferBytes: bufBytes},
	})
	return &testNode{Node: a.Node, url: a.URL, metrics: a.DataPlane.Metrics.Registry, stop: a.Stop, dp: a.DataPlane}, a.DataPlane
}

// received decodes every summary cp got from node, in the order they arrived.
func (cp *controlPlane) received(t *testing.T, node string) []sli.Summary {
	t.Helper()
	cp.mu.Lock()
	batches := append([]v1.SLIBatch(nil), cp.sliBatches[node]...)
	cp.mu.Unlock()
	var out []sli.Summary
	for _, b := range batches {
		for _, enc := range b.Summaries {
			s, err := sli.DecodeSummary(enc)
			if err != nil {
				t.Fatalf("the node sent a summary that does not decode: %v", err)
			}
			out = append(out, s)
		}
	}
	return out
}

// recordEvery records a 200 into key every d until the returned stop is called.
func recordEvery(agg *sli.Aggregator, key sli.Key, d time.Duration) (stop func() int) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var n int
	wg.Go(func() {
		tick := time.NewTicker(d)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				agg.Record(key, 200, time.Millisecond, false)
				n++
			}
		}
	})
	return func() int { close(done); wg.Wait(); return n }
}

// TestSLIsSentInOrderOnePerInterval: a connected node sends each interval's summary
// once, in order, with nothing buffered for long and nothing dropped.
func TestSLIsSentInOrderOnePerInterval(t *testing.T) {
	cp := startControlPlane(t, false)
	const iv = 50 * time.Millisecond
	n, dp := startSLINode(t, cp, "sli-1", iv, agent.DefaultSLIBufferBytes)
	waitFor(t, func() error {
		if !n.Connected() {
			return errors.New("not registered")
		}
		return nil
	})
	key := sli.Key{Deployment: "hello", Version: "1.0.0", Route: "/"}
	stop := recordEvery(dp.SLIs(), key, time.Millisecond)
	waitFor(t, func() error {
		if got := len(cp.received(t, "sli-1")); got < 10 {
			return fmt.Errorf("%d summaries received", got)
		}
		return nil
	})
	total := stop()
	var got []sli.Summary
	waitFor(t, func() error {
		got = cp.received(t, "sli-1")
		var req uint64
		for _, s := range got {
			req += s.Requests()
		}
		if req != uint64(total) {
			return fmt.Errorf("%d of %d requests received", req, total)
		}
		return nil
	})
	checkInOrder(t, got)
	for _, s := range got {
		if s.Node != "sli-1" || s.Key != key {
			t.Fatalf("summary for %s %+v, want sli-1 %+v", s.Node, s.Key, key)
		}
	}
	if v := n.metric(t, "fermion_sli_sent_total", "result", "accepted"); v != float64(len(got)) {
		t.Errorf("fermion_sli_sent_total{result=accepted} = %v, want %d", v, len(got))
	}
	if v := n.metric(t, "fermion_sli_dropped_total", "", ""); v != 0 {
		t.Errorf("fermion_sli_dropped_total = %v, want 0", v)
	}
}

// checkInOrder fails unless summaries follow each other in order, each once: seq
// increasing, each interval starting where or after the previous one ended. (An
// interval in which the recorder never ran, on a busy machine, has no summary: seq may
// skip, which is why the callers also compare request totals.)
func checkInOrder(t *testing.T, got []sli.Summary) {
	t.Helper()
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		if b.Seq <= a.Seq || b.Start.Before(a.End) {
			t.Fatalf("summary %d (seq %d, %s–%s) does not follow seq %d (%s–%s): a duplicate or out of order",
				i, b.Seq, b.Start.Format("15:04:05.000"), b.End.Format("15:04:05.000"), a.Seq, a.Start.Format("15:04:05.000"), a.End.Format("15:04:05.000"))
		}
		if b.Seq == a.Seq+1 && !b.Start.Equal(a.End) {
			t.Fatalf("summary %d (seq %d) starts at %s, its predecessor ended at %s", i, b.Seq, b.Start, a.End)
		}
	}
}

// TestSLIBufferDropsOldestWhenFull: while the control plane does not answer, a small
// buffer drops its oldest summaries and counts them; when it answers again, the newest
// arrive in order with no gap among them.
func TestSLIBufferDropsOldestWhenFull(t *testing.T) {
	cp := startControlPlane(t, false)
	cp.stopResponding()
	const iv = 20 * time.Millisecond
	n, dp := startSLINode(t, cp, "sli-2", iv, 1024)
	key := sli.Key{Deployment: "hello", Version: "1.0.0", Route: "/"}
	began := time.Now()
	stop := recordEvery(dp.SLIs(), key, time.Millisecond)
	waitFor(t, func() error {
		if v := n.metric(t, "fermion_sli_dropped_total", "", ""); v < 20 {
			return fmt.Errorf("%v summaries dropped so far", v)
		}
		return nil
	})
	stop()
	if b := n.metric(t, "fermion_sli_buffer_bytes", "", ""); b == 0 || b > 1024 {
		t.Fatalf("fermion_sli_buffer_bytes = %v, want 1–1024", b)
	}
	cp.respond()
	waitFor(t, func() error {
		if b := n.metric(t, "fermion_sli_buffer_bytes", "", ""); b != 0 {
			return fmt.Errorf("%v bytes still buffered", b)
		}
		return nil
	})
	got := cp.received(t, "sli-2")
	if len(got) == 0 {
		t.Fatal("nothing received after the control plane came back")
	}
	checkInOrder(t, got)
	if !got[0].Start.After(began.Add(10 * iv)) {
		t.Errorf("the oldest summary received starts at %s, %s after recording began: the oldest should have been dropped",
			got[0].Start.Format("15:04:05.000"), got[0].Start.Sub(began))
	}
}

// TestSLIsCountSandboxEvents deploys a real guest under a deployment name and checks
// that the sandbox's events reach the aggregator through the telemetry sink, keyed by
// the deployment: the prewarmed instance's start, then its discard when
// the version is removed.
func TestSLIsCountSandboxEvents(t *testing.T) {
	dp, err := agent.NewDataPlane(agent.DataPlaneConfig{CacheDir: compileCache, Telemetry: true, Labels: map[string]string{"node": "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close(context.Background()) })
	m, wasm := example(t, "hello")
	// Generous: the first compile of a test binary under -race on a busy machine.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := dp.DeployAs(ctx, "greeter", m, wasm); err != nil {
		t.Fatal(err)
	}
	key := sli.Key{Deployment: "greeter", Version: m.App.Version}
	agg := dp.SLIs()
	find := func(sums []sli.Summary) (sli.Summary, bool) {
		for _, s := range sums {
			if s.Key == key {
				return s, true
			}
		}
		return sli.Summary{}, false
	}
	s, ok := find(agg.Flush(time.Now().Add(time.Hour)))
	if !ok || s.InstanceStarts[telemetry.StartPrewarm] != uint64(m.Scaling.MinWarm) || s.Node != "n1" {
		t.Fatalf("after the deploy: %+v (found %v), want %d start(s) under %+v", s, ok, m.Scaling.MinWarm, key)
	}
	if err := dp.Remove(ctx, "greeter"); err != nil {
		t.Fatal(err)
	}
	s, ok = find(agg.Flush(time.Now().Add(2 * time.Hour)))
	if !ok || s.Discards["closed"] != uint64(m.Scaling.MinWarm) {
		t.Fatalf("after the removal: %+v (found %v), want %d discard(s) for closed", s, ok, m.Scaling.MinWarm)
	}
}
