package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/fermiontest"
	slistore "fermion.dev/fermion/internal/fleet"
	"fermion.dev/fermion/internal/sli"
)

// TestSLIsAPI: summaries published into the SLI stream (as the agents' receiver does)
// are answered by GET /v1/slis, grouped with the nodes' regions from their labels; bad
// parameters are 400s naming the parameter.
func TestSLIsAPI(t *testing.T) {
	f := newFleet(t, map[string]map[string]string{
		"edge-1": {"region": "eu", "zone": "eu-a"},
		"edge-2": {"region": "us", "zone": "us-a"},
	})
	ctx := context.Background()
	js := f.p.Engine().JetStream()
	end := sli.Boundary(time.Now(), 10*time.Second)
	for i := range 6 {
		start := end.Add(-time.Duration(i+1) * 10 * time.Second)
		for n, node := range []string{"edge-1", "edge-2"} {
			s := sli.Summary{Node: node, Key: sli.Key{Deployment: "hello", Version: "v1", Route: "/"}, Seq: sli.SeqFor(start, 10*time.Second),
				Start: start, End: start.Add(10 * time.Second), Latency: &sli.Sketch{}, ColdStarts: 1}
			s.Status[1], s.Status[4] = 99, uint64(n) // edge-2 fails 1 %
			s.Latency.AddN(time.Duration(n+1)*time.Millisecond, 99+uint64(n))
			m := nats.NewMsg(slistore.RawSubject(node))
			m.Data = sli.EncodeSummary(nil, s)
			m.Header.Set(jetstream.MsgIDHeader, slistore.MsgID(&s))
			if _, err := js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	tok, err := f.p.CreateToken(ctx, v1.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := client.New(f.p.API, tok)
	if err != nil {
		t.Fatal(err)
	}
	var got *v1.SLIList
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		got, err = viewer.SLIs(ctx, client.SLIQuery{App: "hello", By: []string{"region"}, Window: 5 * time.Minute})
		if err != nil {
			return err
		}
		if len(got.Groups) != 2 || got.Groups[0].Requests+got.Groups[1].Requests != 6*199 {
			return fmt.Errorf("groups %+v", got.Groups)
		}
		return nil
	})
	eu, us := got.Groups[0], got.Groups[1]
	if eu.Region != "eu" || us.Region != "us" || eu.Errors != 0 || us.Errors != 6 || eu.P50Ms > 1.02 || us.P50Ms < 1.9 || eu.ColdStarts != 6 {
		t.Fatalf("groups %+v", got.Groups)
	}

	for _, tt := range []struct {
		q     client.SLIQuery
		field string
		msg   string
	}{
		{client.SLIQuery{By: []string{"regoin"}}, "by", "did you mean region?"},
		{client.SLIQuery{Window: 90 * 24 * time.Hour}, "window", "longer than"},
	} {
		_, err := viewer.SLIs(ctx, tt.q)
		var e *v1.Error
		if !errors.As(err, &e) || e.Code != v1.CodeBadRequest || e.Field != tt.field || !strings.Contains(e.Message, tt.msg) {
			t.Fatalf("%+v: error %v, want a 400 on %s", tt.q, err, tt.field)
		}
	}
}
