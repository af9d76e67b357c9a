package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
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

// TestSlowest runs `fermion slowest` against a real control plane whose SLI stream
// holds a real encoded summary with exemplars.
func TestSlowest(t *testing.T) {
	t.Setenv("FERMION_HOME", t.TempDir())
	p := cptest.Start(t, controlplane.Config{})
	ctx := context.Background()
	start := sli.Boundary(time.Now(), 10*time.Second).Add(-10 * time.Second)
	s := sli.Summary{Node: "edge-1", Key: sli.Key{Deployment: "hello", Version: "1.0.0", Route: "/hello"}, Seq: sli.SeqFor(start, 10*time.Second),
		Start: start, End: start.Add(10 * time.Second), Latency: &sli.Sketch{}}
	s.Status[1] = 3
	s.Latency.AddN(time.Millisecond, 3)
	for i, d := range []time.Duration{900 * time.Millisecond, 2 * time.Millisecond} {
		id := [16]byte{0xab, byte(i + 1)}
		s.Slowest = append(s.Slowest, sli.Exemplar{Duration: d, Status: 200, Start: start.UnixMilli() + 5, TraceID: id, Sampled: i == 0,
			Instance: 3, Method: "GET", Path: "/hello/x"})
	}
	m := nats.NewMsg(fleet.RawSubject("edge-1"))
	m.Data = sli.EncodeSummary(nil, s)
	m.Header.Set(jetstream.MsgIDHeader, fleet.MsgID(&s))
	if _, err := p.Engine().JetStream().PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	api := []string{"--server", p.API, "--token", p.Token}
	slowest := func(args ...string) (int, string, string) {
		return run(t, append(append([]string{"slowest"}, args...), api...)...)
	}
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if _, out, _ := slowest(); !strings.Contains(out, "ab01") {
			return fmt.Errorf("no slow request yet:\n%s", out)
		}
		return nil
	})
	t.Run("table", func(t *testing.T) {
		code, out, errOut := slowest("hello", "--limit", "1")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{"DURATION", "900ms", "hello", "edge-1", "GET /hello/x", "ab010000000000000000000000000000*"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "ab02") {
			t.Errorf("--limit 1 printed two requests:\n%s", out)
		}
	})
	t.Run("json", func(t *testing.T) {
		code, out, errOut := slowest("-o", "json")
		var l v1.SlowestRequests
		if code != 0 || json.Unmarshal([]byte(out), &l) != nil || len(l.Requests) != 2 || l.Requests[0].DurationMs != 900 {
			t.Fatalf("exit %d, %s %s", code, out, errOut)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--limit", "0"}, "--limit 0"},
			{[]string{"--window", "2h"}, "window"},
		} {
			code, _, errOut := slowest(tc.args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("%v: exit %d, %q; want an error naming %s", tc.args, code, errOut, tc.want)
			}
		}
	})
}
