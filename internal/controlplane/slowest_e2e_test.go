package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
)

// TestSlowestRequests: a request made slow on a real agent (the slow fault guest)
// reaches GET /v1/slis/slowest through the whole path — the gateway's exemplar, the
// agent's summary, the SLI stream, the control plane's ring — first, with the trace
// id its client got back, its path without the query, and the node; a viewer may read
// it; bad parameters are refused by name.
func TestSlowestRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("deploys a guest on a real agent and waits for its SLIs; the parts are covered by TestSLISlowest (gateway) and TestSlowest (cli)")
	}
	ctx := context.Background()
	p := cptest.Start(t, controlplane.Config{})
	n := startSLINode(t, p.NATSURL(), p.NodeToken(t), "edge-1", 100*time.Millisecond)
	cptest.WaitNodes(t, p.Server, 1, v1.NodeReady, 10*time.Second)
	c, _ := client.New(p.API, p.Token)
	image := p.PushGuest(t, "examples/testdata/faults/slow", "slow", "0.1.0", artifact.Meta{})
	if _, _, err := c.PutDeployment(ctx, "slow", v1.DeploymentSpec{Image: image, Daemon: true}, client.CreateOnly()); err != nil {
		t.Fatal(err)
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error { return get(n.gw + "/slow") })
	for range 5 {
		if err := get(n.gw + "/slow/fast"); err != nil {
			t.Fatal(err)
		}
	}
	// 300 ms: far slower than the others, with margin for a busy machine.
	resp, err := http.Get(n.gw + "/slow/x?d=300ms&token=secret")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tp := resp.Header.Get("Traceparent")
	if resp.StatusCode != 200 || len(tp) != 55 {
		t.Fatalf("slow request: %d, traceparent %q", resp.StatusCode, tp)
	}
	traceID := tp[3:35]

	tok, err := p.CreateToken(ctx, v1.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	viewer, _ := client.New(p.API, tok)
	var got *v1.SlowestRequests
	fermiontest.WaitFor(t, 20*time.Second, func() error {
		got, err = viewer.SlowestRequests(ctx, client.SlowestQuery{App: "slow", Window: "5m", Limit: 3})
		if err != nil {
			return err
		}
		if len(got.Requests) == 0 || got.Requests[0].TraceID != traceID {
			return fmt.Errorf("slowest %+v, want trace %s first", got.Requests, traceID)
		}
		return nil
	})
	r := got.Requests[0]
	if r.Node != "edge-1" || r.Path != "/slow/x" || r.Route != "/slow" || r.Method != "GET" || r.Status != 200 || r.DurationMs < 300 || r.Instance == 0 {
		t.Errorf("slowest request %+v: want edge-1, GET /slow/x (no query) on route /slow, 200, ≥ 300 ms, an instance", r)
	}
	if got.Window != "5m" || len(got.Requests) > 3 {
		t.Errorf("window %q, %d requests; want 5m and at most 3", got.Window, len(got.Requests))
	}
	if v := n.metric(t, "fermion_sli_sent_total", "refused"); v != 0 {
		t.Errorf("fermion_sli_sent_total{result=refused} is %v, want 0", v)
	}
	// Filters that match nothing give an empty list, not an error.
	if none, err := viewer.SlowestRequests(ctx, client.SlowestQuery{Node: "elsewhere"}); err != nil || len(none.Requests) != 0 {
		t.Errorf("node=elsewhere: %+v, %v; want none", none, err)
	}
	for _, tc := range []struct {
		q     client.SlowestQuery
		field string
	}{
		{client.SlowestQuery{Window: "1h"}, "window"},
		{client.SlowestQuery{Limit: 1000}, "limit"},
	} {
		_, err := viewer.SlowestRequests(ctx, tc.q)
		var e *v1.Error
		if !errors.As(err, &e) || e.Code != v1.CodeBadRequest || e.Field != tc.field {
			t.Errorf("%+v: err = %v, want bad_request on %s", tc.q, err, tc.field)
		}
	}
}
