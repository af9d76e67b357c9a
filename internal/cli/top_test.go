package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/fleet"
	"fermion.dev/fermion/internal/sli"
)

// TestTop runs `fermion top` against a real control plane whose SLI stream holds real
// encoded summaries of two nodes in two regions (what the agents' receiver publishes).
func TestTop(t *testing.T) {
	t.Setenv("FERMION_HOME", t.TempDir())
	p := cptest.Start(t, controlplane.Config{})
	ctx := context.Background()
	join := p.NodeToken(t)
	for name, region := range map[string]string{"edge-1": "eu", "edge-2": "us"} {
		a, err := cptest.JoinSimAgent(ctx, p.NATSURL(), join, name, v1.Register{Labels: map[string]string{"region": region},
			Capacity: v1.Resources{MemoryBytes: 1 << 30, MilliCPU: 1000, Instances: 8}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Close)
	}
	js := p.Engine().JetStream()
	// Intervals end up to a minute ahead (within the store's clock skew allowance), so
	// that any 5-minute window ending in the next minute holds exactly 30 of them,
	// however long the store takes to catch up: a window is (now-5m, now] by the
	// summaries' ends, and one ending past now is not counted yet.
	end := sli.Boundary(time.Now(), 10*time.Second).Add(time.Minute)
	for i := range 36 {
		start := end.Add(-time.Duration(i+1) * 10 * time.Second)
		for n, node := range []string{"edge-1", "edge-2"} {
			s := sli.Summary{Node: node, Key: sli.Key{Deployment: "hello", Version: "1.0.0", Route: "/"}, Seq: sli.SeqFor(start, 10*time.Second),
				Start: start, End: start.Add(10 * time.Second), Latency: &sli.Sketch{}, MemoryMaxBytes: 2 << 20}
			s.Status[1] = 100
			s.Status[4] = uint64(n) // edge-2 answers 1 % errors
			s.ColdStarts = 1
			s.Latency.AddN(time.Duration(n+1)*time.Millisecond, 100+uint64(n))
			m := nats.NewMsg(fleet.RawSubject(node))
			m.Data = sli.EncodeSummary(nil, s)
			m.Header.Set(jetstream.MsgIDHeader, fleet.MsgID(&s))
			if _, err := js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	api := []string{"--server", p.API, "--token", p.Token}
	top := func(args ...string) (int, string, string) {
		return run(t, append(append([]string{"top"}, args...), api...)...)
	}
	// The store catches up with the stream in the background.
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if _, out, _ := top("--once"); !strings.Contains(out, "hello") {
			return fmt.Errorf("no hello row yet:\n%s", out)
		}
		return nil
	})

	t.Run("per app and version", func(t *testing.T) {
		code, out, errOut := top("hello", "--once")
		// 6,030 requests in 5 min: 20.1/s, 30 errors: 0.50 %, 60 cold starts: 1.00 %; the
		// lower-rank median is among edge-2's 2 ms requests (3,030 of them).
		want := regexp.MustCompile(`(?m)^APP\s+VERSION\s+REQ/S\s+ERR%\s+P50\s+P95\s+P99\s+COLD%\s+INST\s+MEM\n` +
			`hello\s+1\.0\.0\s+20\.1\s+0\.50\s+2\.0\dms\s+2\.0\dms\s+2\.0\dms\s+1\.00\s+0\s+2MiB\n$`)
		if code != 0 || !want.MatchString(out) {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
	})
	t.Run("per region and node", func(t *testing.T) {
		code, out, _ := top("--once", "--regions", "--nodes")
		want := regexp.MustCompile(`(?m)^APP\s+VERSION\s+REGION\s+NODE\s+REQ/S.*\n` +
			`hello\s+1\.0\.0\s+eu\s+edge-1\s+10\.0\s+0\.00\s.*\n` +
			`hello\s+1\.0\.0\s+us\s+edge-2\s+10\.1\s+0\.99\s.*\n$`)
		if code != 0 || !want.MatchString(out) {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
	t.Run("json", func(t *testing.T) {
		code, out, _ := top("-o", "json", "--window", "1m")
		var l v1.SLIList
		if err := json.Unmarshal([]byte(out), &l); code != 0 || err != nil || l.WindowSeconds != 60 || len(l.Groups) != 1 || l.Groups[0].Requests != 6*201 {
			t.Fatalf("exit %d, %v:\n%s", code, err, out)
		}
	})
	t.Run("no data", func(t *testing.T) {
		code, out, _ := top("nope", "--once")
		if code != 0 || !strings.Contains(out, "no requests or instances of nope in the last 5m") {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
	t.Run("bad window", func(t *testing.T) {
		code, _, errOut := top("--window", "5 minutes")
		if code != 2 || !strings.Contains(errOut, "--window") {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
		code, _, errOut = top("--window", "90d")
		if code != 1 || !strings.Contains(errOut, "longer than the 30d the server keeps") {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
		// Per node, the server keeps 15 minutes: the refusal names the flags.
		code, _, errOut = top("--nodes", "--window", "1h")
		if code != 1 || !strings.Contains(errOut, "--nodes cannot reach back --window 1h: give a shorter --window, or leave --nodes out") {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
	})
	t.Run("live", func(t *testing.T) {
		b := startVerb(t, append([]string{"top", "hello", "--interval", "50ms"}, api...)...)
		fermiontest.WaitFor(t, 10*time.Second, func() error {
			if n := strings.Count(b.out.String(), "fermion top — "); n < 3 {
				return fmt.Errorf("%d frames", n)
			}
			return nil
		})
		if !strings.Contains(b.out.String(), "hello") {
			t.Fatalf("frames without the hello row:\n%s", b.out)
		}
	})
}
