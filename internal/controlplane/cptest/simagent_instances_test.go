package cptest

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/engine"
)

// checkTimelines checks what any simulated timeline must hold: ids in creation order,
// events oldest first within the simulated history, a discarded instance with its
// reason and a live one without, counts that agree with the events.
func checkTimelines(t *testing.T, node string, since time.Time, ins []v1.InstanceTimeline) {
	t.Helper()
	for i, in := range ins {
		if in.Node != node {
			t.Errorf("#%d: node %q, want %q", in.ID, in.Node, node)
		}
		if i > 0 && ins[i-1].Deployment == in.Deployment && ins[i-1].Version == in.Version {
			if in.ID != ins[i-1].ID+1 || in.Created.Before(ins[i-1].Created) {
				t.Errorf("%s #%d created %s after #%d at %s: ids must number creation order", in.Version, in.ID, in.Created, ins[i-1].ID, ins[i-1].Created)
			}
		}
		if len(in.Events) == 0 || in.Events[0].Kind != "created" || !in.Events[0].Time.Equal(in.Created) {
			t.Errorf("%s #%d: first event %+v, want created at %s", in.Version, in.ID, in.Events, in.Created)
		}
		fails := uint64(0)
		for j, ev := range in.Events {
			if j > 0 && ev.Time.Before(in.Events[j-1].Time) {
				t.Errorf("%s #%d: events out of order: %+v", in.Version, in.ID, in.Events)
			}
			if ev.Time.Before(since.Add(-SimHistory)) || ev.Time.After(since) {
				t.Errorf("%s #%d: event %+v outside [%s, %s]", in.Version, in.ID, ev, since.Add(-SimHistory), since)
			}
			if ev.Kind == "request_failed" {
				fails++
			}
		}
		if fails != in.Errors {
			t.Errorf("%s #%d: %d errors, %d failed-request events", in.Version, in.ID, in.Errors, fails)
		}
		discarded := in.State == "discarded"
		if discarded != !in.Discarded.IsZero() || discarded != (in.DiscardReason != "") {
			t.Errorf("%s #%d: state %q, discarded %s, reason %q: a discarded instance has both, a live one neither", in.Version, in.ID, in.State, in.Discarded, in.DiscardReason)
		}
		if discarded && in.Events[len(in.Events)-1].Kind != "discarded" {
			t.Errorf("%s #%d: last event %+v, want discarded", in.Version, in.ID, in.Events[len(in.Events)-1])
		}
		if in.Requests > 0 && in.LastRequest.IsZero() {
			t.Errorf("%s #%d: %d requests and no last request", in.Version, in.ID, in.Requests)
		}
	}
}

func TestSimInstances(t *testing.T) {
	since := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	v := v1.Version{Version: "1.0.0", Digest: "sha256:" + strings.Repeat("a", 64)}
	reasons := map[string]int{}
	warmups := 0
	for _, tc := range []struct {
		name, node, dep string
		canary          bool
	}{
		{"stable", "edge-0001", "app-001", false},
		{"canary", "edge-0002", "app-001", true},
		{"other node", "edge-0003", "app-001", false},
		{"other deployment", "edge-0001", "app-002", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ins := SimInstances(tc.node, tc.dep, v, tc.canary, since)
			if !reflect.DeepEqual(ins, SimInstances(tc.node, tc.dep, v, tc.canary, since)) {
				t.Fatal("two calls with the same arguments differ")
			}
			if len(ins) < 4 || len(ins) > 5 {
				t.Fatalf("%d instances, want 4 or 5", len(ins))
			}
			checkTimelines(t, tc.node, since, ins)
			want := "prewarm"
			if tc.canary {
				want = "canary"
			}
			if ins[0].Reason != want || ins[0].State != "idle" || ins[0].Requests == 0 {
				t.Errorf("#1: %+v, want an idle %s instance that served", ins[0], want)
			}
			live, gone := 0, 0
			for _, in := range ins {
				if in.State == "discarded" {
					gone++
					reasons[in.DiscardReason]++
					if in.DiscardReason == "warmup" {
						warmups++
						if in.Requests != 0 {
							t.Errorf("#%d failed its warmup and served %d requests", in.ID, in.Requests)
						}
					}
				} else {
					live++
				}
			}
			if live != 3 || gone < 1 {
				t.Errorf("%d live and %d discarded, want 3 live and at least 1 discarded", live, gone)
			}
		})
	}
	t.Logf("discard reasons over the cases: %v (warmup failures %d)", reasons, warmups)
}

// TestSimAgentAnswersInstances joins a simulated agent to a control plane and asks it
// for its instances over NATS, as the control plane does. The NATS server is an
// external one, without the control plane's per-node permissions: this checks the
// simulated agent's answers, not who may ask (the control plane's own tests do).
func TestSimAgentAnswersInstances(t *testing.T) {
	ctx := context.Background()
	ext, err := engine.Start(ctx, engine.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ext.Close) // after the plane's cleanup, which runs first
	p := Start(t, controlplane.Config{NATS: ext.ClientURL()})
	a, err := JoinSimAgent(ctx, ext.ClientURL(), p.NodeToken(t), "edge-1", v1.Register{Capacity: v1.Resources{MemoryBytes: 4 << 30, Instances: 64}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// The assignments as the leader would push them: one deployment running a canary
	// beside its stable version, and another.
	stable := v1.Version{Version: "1.0.0", Digest: "sha256:" + strings.Repeat("a", 64)}
	canary := v1.Version{Version: "1.1.0", Digest: "sha256:" + strings.Repeat("b", 64)}
	other := v1.Version{Version: "2.0.0", Digest: "sha256:" + strings.Repeat("c", 64)}
	before := time.Now()
	a.apply(v1.AssignmentSet{Node: "edge-1", Revision: 1 << 40, Assignments: []v1.Assignment{
		{Deployment: "shop", Node: "edge-1", Version: stable, Canary: &v1.Canary{Version: canary, Weight: 10}},
		{Deployment: "blog", Node: "edge-1", Version: other},
	}})
	after := time.Now()

	nc, err := nats.Connect(ext.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ask := func(t *testing.T, body []byte) v1.InstancesReply {
		t.Helper()
		m, err := nc.Request(v1.SubjectInstances("edge-1"), body, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var r v1.InstancesReply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatalf("reply %s: %v", m.Data, err)
		}
		return r
	}
	versions := func(ins []v1.InstanceTimeline) []string {
		var out []string
		for _, in := range ins {
			if k := in.Deployment + " " + in.Version; len(out) == 0 || out[len(out)-1] != k {
				out = append(out, k)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name, deployment string
		want             []string
	}{
		{"one deployment, stable and canary", "shop", []string{"shop 1.0.0", "shop 1.1.0"}},
		{"every deployment", "", []string{"shop 1.0.0", "shop 1.1.0", "blog 2.0.0"}},
		{"a deployment not on the node", "gone", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := json.Marshal(v1.InstancesRequest{Deployment: tc.deployment})
			r := ask(t, b)
			if r.Error != nil || r.Node != "edge-1" || r.Time.Before(after) {
				t.Fatalf("reply error %v, node %q, time %s", r.Error, r.Node, r.Time)
			}
			if got := versions(r.Instances); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("versions %v, want %v", got, tc.want)
			}
			if r.Instances == nil {
				t.Fatal("instances is null, want [] when there are none")
			}
			// Anchored when the set arrived: within the history before it, never after.
			for _, in := range r.Instances {
				if in.Created.Before(before.Add(-SimHistory)) || in.Created.After(after) {
					t.Errorf("%s #%d created %s, want within the history before %s", in.Version, in.ID, in.Created, after)
				}
			}
			for _, in := range r.Instances {
				if in.Version == "1.1.0" && in.ID == 1 && in.Reason != "canary" {
					t.Errorf("the canary's first instance has reason %q, want canary", in.Reason)
				}
			}
		})
	}
	t.Run("a later set keeps the anchor", func(t *testing.T) {
		first := ask(t, []byte(`{"deployment":"blog"}`))
		a.apply(v1.AssignmentSet{Node: "edge-1", Revision: 1<<40 + 1, Assignments: []v1.Assignment{{Deployment: "blog", Node: "edge-1", Version: other, Generation: 2}}})
		again := ask(t, []byte(`{"deployment":"blog"}`))
		if !reflect.DeepEqual(first.Instances, again.Instances) {
			t.Errorf("blog's timelines changed when its version did not")
		}
		if got := versions(ask(t, []byte(`{}`)).Instances); !reflect.DeepEqual(got, []string{"blog 2.0.0"}) {
			t.Errorf("after shop left the node: %v", got)
		}
	})
	t.Run("malformed request", func(t *testing.T) {
		r := ask(t, []byte(`{"deployment":`))
		if r.Error == nil || r.Error.Code != v1.CodeBadRequest || r.Node != "edge-1" {
			t.Errorf("reply %+v, want a bad_request error from edge-1", r)
		}
	})
	t.Run("paused agent does not answer", func(t *testing.T) {
		a.Pause()
		defer a.Resume()
		if _, err := nc.Request(v1.SubjectInstances("edge-1"), []byte(`{}`), 300*time.Millisecond); err == nil {
			t.Error("a paused (cut off) agent answered")
		}
	})
}

func TestFitReply(t *testing.T) {
	since := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	full := v1.InstancesReply{Node: "edge-1", Time: since}
	for i := range 50 {
		full.Instances = append(full.Instances, SimInstances("edge-1", "app-"+strings.Repeat("x", i%7), v1.Version{Version: "1"}, false, since)...)
	}
	whole, _ := json.Marshal(full)
	for _, tc := range []struct {
		name    string
		max     int64
		dropped bool
		ok      bool
	}{
		{"fits", int64(len(whole)), false, true},
		{"a third", int64(len(whole)) / 3, true, true},
		{"not even an empty reply", 10, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, ok := fitReply(full, tc.max)
			if ok != tc.ok {
				t.Fatalf("ok %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			var r v1.InstancesReply
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			if int64(len(b)) > tc.max || len(r.Instances)+r.Dropped != len(full.Instances) || (r.Dropped > 0) != tc.dropped {
				t.Errorf("%d bytes (max %d), %d instances + %d dropped of %d", len(b), tc.max, len(r.Instances), r.Dropped, len(full.Instances))
			}
		})
	}
}
