package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
)

type fleet struct {
	p      *cptest.Plane
	c      *client.Client
	agents map[string]*cptest.SimAgent
	join   string
}

func newFleet(t *testing.T, nodes map[string]map[string]string) *fleet {
	t.Helper()
	p := cptest.Start(t, controlplane.Config{})
	c, err := client.New(p.API, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{p: p, c: c, agents: map[string]*cptest.SimAgent{}, join: p.NodeToken(t)}
	for name, labels := range nodes {
		f.add(t, name, labels)
	}
	cptest.WaitNodes(t, p.Server, len(nodes), v1.NodeReady, 10*time.Second)
	return f
}

func (f *fleet) add(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	a, err := cptest.JoinSimAgent(context.Background(), f.p.NATSURL(), f.join, name, v1.Register{
		Labels: labels, Capacity: v1.Resources{MemoryBytes: 4 << 30, MilliCPU: 2000, Instances: 64},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.agents[name] = a
	t.Cleanup(a.Close)
}

func (f *fleet) waitConverged(t *testing.T, name string, timeout time.Duration) *v1.DeploymentStatus {
	t.Helper()
	var st *v1.DeploymentStatus
	fermiontest.WaitFor(t, timeout, func() error {
		var err error
		st, err = f.c.DeploymentStatus(context.Background(), name)
		if err != nil {
			return err
		}
		if !st.Converged {
			return fmt.Errorf("not converged: %d/%d ready, placement %q", st.Ready, st.Desired, st.Deployment.Placement.Message)
		}
		return nil
	})
	return st
}

func placed(st *v1.DeploymentStatus) []string {
	var out []string
	for _, n := range st.Nodes {
		if n.Desired != nil {
			out = append(out, n.Node)
		}
	}
	slices.Sort(out)
	return out
}

func threeZones() map[string]map[string]string {
	return map[string]map[string]string{
		"edge-1": {"region": "eu-west", "zone": "a"},
		"edge-2": {"region": "eu-west", "zone": "b"},
		"edge-3": {"region": "us-east", "zone": "a"},
	}
}

func TestDeploySpreadStatusEvents(t *testing.T) {
	f := newFleet(t, threeZones())
	ctx := context.Background()
	image := f.p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
	d, created, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Nodes: 2, Spread: "zone",
		Selector: `region == "eu-west"`}, client.CreateOnly())
	if err != nil {
		t.Fatal(err)
	}
	if !created || d.Generation != 1 || d.Version.App != "hello" || !strings.HasPrefix(d.Version.Digest, "sha256:") {
		t.Fatalf("created=%v %+v", created, d)
	}
	st := f.waitConverged(t, "hello", 10*time.Second)
	if got := placed(st); !slices.Equal(got, []string{"edge-1", "edge-2"}) {
		t.Fatalf("placed on %v, want the two eu-west nodes (one per zone)", got)
	}
	// Events tell the story.
	evs, err := f.c.Events(ctx, client.EventFilter{Deployment: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs.Events {
		types = append(types, e.Type)
	}
	for _, want := range []string{v1.EventDeployed, v1.EventAssigned, v1.EventPlaced, v1.EventStarted} {
		if !slices.Contains(types, want) {
			t.Errorf("no %s event in %v", want, types)
		}
	}
	// Nodes show their assignments.
	nodes, err := f.c.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Nodes {
		want := n.Name != "edge-3"
		if got := slices.Contains(n.Assignments, "hello"); got != want {
			t.Errorf("node %s assignments %v", n.Name, n.Assignments)
		}
		if n.LeaseAge > 2 {
			t.Errorf("node %s lease age %.1fs", n.Name, n.LeaseAge)
		}
	}
	// A new version rolls onto the same nodes.
	image2 := f.p.PushExample(t, "hello", "1.0.1", artifact.Meta{Revision: "v2"})
	d2, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image2, Nodes: 2, Spread: "zone",
		Selector: `region == "eu-west"`}, client.IfMatch(d.Revision))
	if err != nil {
		t.Fatal(err)
	}
	if d2.Generation != 2 || d2.Version.Digest == d.Version.Digest {
		t.Fatalf("update: %+v", d2)
	}
	st = f.waitConverged(t, "hello", 10*time.Second)
	if got := placed(st); !slices.Equal(got, []string{"edge-1", "edge-2"}) {
		t.Fatalf("after update placed on %v", got)
	}
	// Delete retires it everywhere, then the record goes.
	if _, err := f.c.DeleteDeployment(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		_, err := f.c.GetDeployment(ctx, "hello")
		if client.IsCode(err, v1.CodeNotFound) {
			return nil
		}
		return fmt.Errorf("still there: %v", err)
	})
	for name, a := range f.agents {
		if len(a.Assignments()) != 0 {
			t.Errorf("%s still runs %v", name, a.Assignments())
		}
	}
}

func TestUnplaceableWritesNothing(t *testing.T) {
	f := newFleet(t, threeZones())
	ctx := context.Background()
	image := f.p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
	_, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Nodes: 3, Selector: `region == "eu-west"`}, client.Unconditional())
	var e *v1.Error
	if !errors.As(err, &e) || e.Code != v1.CodeUnplaceable {
		t.Fatalf("want unplaceable, got %v", err)
	}
	if !strings.Contains(e.Message, "1 selector mismatch") {
		t.Errorf("explanation does not count why: %q", e.Message)
	}
	if _, err := f.c.GetDeployment(ctx, "hello"); !client.IsCode(err, v1.CodeNotFound) {
		t.Fatalf("a refused deployment was written: %v", err)
	}
	for name, a := range f.agents {
		if len(a.Assignments()) != 0 {
			t.Errorf("%s got a partial placement %v", name, a.Assignments())
		}
	}
}

func TestConcurrentDeploysOneWins(t *testing.T) {
	f := newFleet(t, threeZones())
	ctx := context.Background()
	image := f.p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
	d, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Nodes: 1}, client.CreateOnly())
	if err != nil {
		t.Fatal(err)
	}
	// Both read revision d.Revision, both write conditionally on it.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, errs[i] = f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Nodes: 1 + i + 1}, client.IfMatch(d.Revision))
		}()
	}
	wg.Wait()
	ok, conflicts := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case client.IsCode(err, v1.CodeConflict):
			conflicts++
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 || conflicts != 1 {
		t.Fatalf("want one success and one conflict, got %v", errs)
	}
	// Two creates: the second is a conflict too.
	if _, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Nodes: 1}, client.CreateOnly()); !client.IsCode(err, v1.CodeConflict) {
		t.Fatalf("second create: %v", err)
	}
}

func TestKilledAgentIsRescheduled(t *testing.T) {
	f := newFleet(t, threeZones())
	ctx := context.Background()
	image := f.p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
	if _, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Nodes: 2}, client.Unconditional()); err != nil {
		t.Fatal(err)
	}
	st := f.waitConverged(t, "hello", 10*time.Second)
	victim := placed(st)[0]
	f.agents[victim].Close()
	// Lease lost after 2s (test timing); rescheduled within that plus a few seconds.
	cptest.WaitNodes(t, f.p.Server, 1, v1.NodeLost, 8*time.Second)
	st = f.waitConverged(t, "hello", 5*time.Second)
	got := placed(st)
	if len(got) != 2 || slices.Contains(got, victim) {
		t.Fatalf("after losing %s placed on %v", victim, got)
	}
	evs, _ := f.c.Events(ctx, client.EventFilter{Node: victim})
	var types []string
	for _, e := range evs.Events {
		types = append(types, e.Type)
	}
	if !slices.Contains(types, v1.EventLeaseLost) || !slices.Contains(types, v1.EventRescheduled) {
		t.Errorf("events for %s: %v", victim, types)
	}
	// A live node cannot be removed; the lost one can, with its credentials.
	for _, n := range got {
		if err := f.c.RemoveNode(ctx, n); !client.IsCode(err, v1.CodeConflict) {
			t.Fatalf("removing ready node %s: %v", n, err)
		}
	}
	if err := f.c.RemoveNode(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.GetNode(ctx, victim); !client.IsCode(err, v1.CodeNotFound) {
		t.Fatalf("removed node still there: %v", err)
	}
	if err := f.c.RemoveNode(ctx, victim); !client.IsCode(err, v1.CodeNotFound) {
		t.Fatalf("second remove: %v", err)
	}
}

func TestCutOffAgentComesBack(t *testing.T) {
	f := newFleet(t, map[string]map[string]string{"edge-1": {"zone": "a"}, "edge-2": {"zone": "b"}})
	ctx := context.Background()
	image := f.p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
	if _, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Daemon: true}, client.Unconditional()); err != nil {
		t.Fatal(err)
	}
	f.waitConverged(t, "hello", 10*time.Second)
	f.agents["edge-1"].Pause()
	cptest.WaitNodes(t, f.p.Server, 1, v1.NodeLost, 8*time.Second)
	// Its last report (ready) is stale: status says unknown and counts it not ready.
	lost, err := f.c.DeploymentStatus(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range lost.Nodes {
		want := v1.InstanceReady
		if ns.Node == "edge-1" {
			want = v1.InstanceUnknown
			if ns.NodeState != v1.NodeLost || ns.Actual == nil || !strings.HasPrefix(ns.Actual.LastError, "node lost: last report ") {
				t.Fatalf("edge-1 while lost: %+v %+v", ns, ns.Actual)
			}
		}
		if ns.Actual == nil || ns.Actual.State != want {
			t.Fatalf("status of %s while edge-1 is lost: %+v, want %s", ns.Node, ns.Actual, want)
		}
	}
	if lost.Ready != 1 || lost.Converged {
		t.Fatalf("status while edge-1 is lost: ready %d/%d converged %v; want 1, not converged", lost.Ready, lost.Desired, lost.Converged)
	}
	f.agents["edge-1"].Resume()
	cptest.WaitNodes(t, f.p.Server, 2, v1.NodeReady, 8*time.Second)
	st := f.waitConverged(t, "hello", 10*time.Second)
	if got := placed(st); !slices.Equal(got, []string{"edge-1", "edge-2"}) {
		t.Fatalf("daemon after the node came back: %v", got)
	}
}

func TestDrainMovesWorkFirst(t *testing.T) {
	f := newFleet(t, threeZones())
	ctx := context.Background()
	image := f.p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
	if _, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Nodes: 2}, client.Unconditional()); err != nil {
		t.Fatal(err)
	}
	st := f.waitConverged(t, "hello", 10*time.Second)
	victim := placed(st)[0]
	n, err := f.c.DrainNode(ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	if n.Schedulable || n.State != v1.NodeDraining {
		t.Fatalf("after drain: %+v", n)
	}
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		n, err := f.c.GetNode(ctx, victim)
		if err != nil {
			return err
		}
		if n.State != v1.NodeDrained {
			return fmt.Errorf("state %s, assignments %v", n.State, n.Assignments)
		}
		return nil
	})
	st = f.waitConverged(t, "hello", 5*time.Second)
	if got := placed(st); len(got) != 2 || slices.Contains(got, victim) {
		t.Fatalf("after drain placed on %v", got)
	}
	if _, err := f.c.UncordonNode(ctx, victim); err != nil {
		t.Fatal(err)
	}
	n, _ = f.c.GetNode(ctx, victim)
	if !n.Schedulable || n.State != v1.NodeReady {
		t.Fatalf("after uncordon: %+v", n)
	}
}

func TestBadAPIInput(t *testing.T) {
	f := newFleet(t, nil)
	ctx := context.Background()
	image := f.p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
	cases := []struct {
		name, method, path, body, token string
		status                          int
		code, field                     string
	}{
		{"garbage body", "PUT", "/v1/deployments/hello", "{nope", f.p.Token, 400, v1.CodeBadRequest, ""},
		{"unknown field", "PUT", "/v1/deployments/hello", `{"image":"` + image + `","nodes":1,"replicas":3}`, f.p.Token, 400, v1.CodeBadRequest, "replicas"},
		{"wrong type", "PUT", "/v1/deployments/hello", `{"image":"` + image + `","nodes":"one"}`, f.p.Token, 400, v1.CodeBadRequest, "nodes"},
		{"trailing data", "PUT", "/v1/deployments/hello", `{"image":"x","nodes":1} {}`, f.p.Token, 400, v1.CodeBadRequest, ""},
		{"empty body", "PUT", "/v1/deployments/hello", ``, f.p.Token, 400, v1.CodeBadRequest, ""},
		{"no nodes", "PUT", "/v1/deployments/hello", `{"image":"` + image + `"}`, f.p.Token, 400, v1.CodeBadRequest, "spec.nodes"},
		{"bad name", "PUT", "/v1/deployments/Hello_World", `{"image":"` + image + `","nodes":1}`, f.p.Token, 400, v1.CodeBadRequest, "name"},
		{"bad selector", "PUT", "/v1/deployments/hello", `{"image":"` + image + `","nodes":1,"selector":"region =="}`, f.p.Token, 400, v1.CodeBadRequest, "spec.selector"},
		{"missing image", "PUT", "/v1/deployments/hello", `{"image":"` + f.p.Registry + `/nope:1.0.0","nodes":1}`, f.p.Token, 422, v1.CodeArtifact, "spec.image"},
		{"huge body", "PUT", "/v1/deployments/hello", `{"image":"` + strings.Repeat("a", 2<<20) + `"}`, f.p.Token, 413, v1.CodeTooLarge, ""},
		{"no token", "GET", "/v1/nodes", "", "", 401, v1.CodeUnauthorized, ""},
		{"bad token", "GET", "/v1/nodes", "", "fmn_abc_def", 401, v1.CodeUnauthorized, ""},
		{"node token on the API", "GET", "/v1/nodes", "", f.join, 403, v1.CodeForbidden, ""},
		{"bad role", "POST", "/v1/tokens", `{"role":"root"}`, f.p.Token, 400, v1.CodeBadRequest, "role"},
		{"bad if-match", "PUT", "/v1/deployments/hello", `{"image":"` + image + `","nodes":1}`, f.p.Token, 400, v1.CodeBadRequest, "If-Match"},
		{"unknown route", "GET", "/v1/nope", "", f.p.Token, 404, v1.CodeNotFound, ""},
		{"bad limit", "GET", "/v1/events?limit=0", "", f.p.Token, 400, v1.CodeBadRequest, "limit"},
		{"bad since", "GET", "/v1/events?since=yesterday", "", f.p.Token, 400, v1.CodeBadRequest, "since"},
		{"no such node", "POST", "/v1/nodes/ghost/drain", "", f.p.Token, 404, v1.CodeNotFound, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(ctx, c.method, f.p.API+c.path, strings.NewReader(c.body))
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			if c.name == "bad if-match" {
				req.Header.Set("If-Match", "yesterday")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			for _, want := range []string{`"code": "` + c.code + `"`, `"code":"` + c.code + `"`} {
				if strings.Contains(string(body), want) {
					goto codeOK
				}
			}
			t.Fatalf("body lacks code %s: %s", c.code, body)
		codeOK:
			if c.field != "" && !strings.Contains(string(body), `"field":"`+c.field+`"`) && !strings.Contains(string(body), `"field": "`+c.field+`"`) {
				t.Fatalf("body lacks field %s: %s", c.field, body)
			}
		})
	}
	// Nothing was written by any of them.
	if l, err := f.c.ListDeployments(ctx); err != nil || len(l.Deployments) != 0 {
		t.Fatalf("deployments after bad input: %v %v", l, err)
	}
}

func TestAgentBadTokenRefused(t *testing.T) {
	f := newFleet(t, nil)
	ctx := context.Background()
	viewer, err := f.c.CreateToken(ctx, v1.TokenRequest{Role: v1.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"garbage": "nope", "unknown": "fmn_0123456789ab_00", "not a node token": viewer.Secret, "admin": f.p.Token} {
		t.Run(name, func(t *testing.T) {
			if _, err := cptest.JoinSimAgent(ctx, f.p.NATSURL(), tok, "edge-x", v1.Register{}); err == nil {
				t.Fatal("joined")
			}
		})
	}
	// A revoked join token stops working.
	tok, err := f.c.CreateToken(ctx, v1.TokenRequest{Role: v1.RoleNode})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.c.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	fermiontest.WaitFor(t, 5*time.Second, func() error {
		if a, err := cptest.JoinSimAgent(ctx, f.p.NATSURL(), tok.Secret, "edge-y", v1.Register{}); err == nil {
			a.Close()
			return errors.New("a revoked token joined")
		}
		return nil
	})
}

func TestRouteConflictIsAPlacementReason(t *testing.T) {
	f := newFleet(t, map[string]map[string]string{"edge-1": {"zone": "a"}, "edge-2": {"zone": "b"}})
	ctx := context.Background()
	image := f.p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
	if _, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Nodes: 1}, client.CreateOnly()); err != nil {
		t.Fatal(err)
	}
	first := placed(f.waitConverged(t, "hello", 10*time.Second))
	// The same routes under another name go to the other node, then fit nowhere.
	if _, _, err := f.c.PutDeployment(ctx, "hello-b", v1.DeploymentSpec{Image: image, Nodes: 1}, client.CreateOnly()); err != nil {
		t.Fatal(err)
	}
	second := placed(f.waitConverged(t, "hello-b", 10*time.Second))
	if slices.Equal(first, second) {
		t.Fatalf("both on %v: their routes clash", first)
	}
	_, _, err := f.c.PutDeployment(ctx, "hello-c", v1.DeploymentSpec{Image: image, Nodes: 1}, client.CreateOnly())
	if !client.IsCode(err, v1.CodeUnplaceable) || !strings.Contains(err.Error(), "2 route taken by another deployment") {
		t.Fatalf("third: %v", err)
	}
}

func TestFollowEvents(t *testing.T) {
	f := newFleet(t, map[string]map[string]string{"edge-1": {"zone": "a"}})
	// Generous: a loaded 2-core machine delays the follower's subscription.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := make(chan v1.Event, 16)
	done := make(chan error, 1)
	go func() {
		done <- f.c.FollowEvents(ctx, client.EventFilter{Node: "edge-1", Type: v1.EventDrainStarted}, func(e v1.Event) error {
			got <- e
			return nil
		})
	}()
	// The follower sees events recorded after it started, and only those it asked for.
	fermiontest.WaitFor(t, 45*time.Second, func() error {
		if _, err := f.c.DrainNode(ctx, "edge-1"); err != nil {
			return err
		}
		select {
		case e := <-got:
			if e.Type != v1.EventDrainStarted || e.Node != "edge-1" || e.Seq == 0 {
				t.Fatalf("followed %+v", e)
			}
			return nil
		case <-time.After(500 * time.Millisecond):
			f.c.UncordonNode(ctx, "edge-1") // drain again on the next try
			return errors.New("no event yet")
		}
	})
	cancel()
	<-done
}

func TestJoinUnderALiveNameRefused(t *testing.T) {
	f := newFleet(t, map[string]map[string]string{"edge-1": {"zone": "a"}})
	ctx := context.Background()
	_, err := cptest.JoinSimAgent(ctx, f.p.NATSURL(), f.join, "edge-1", v1.Register{})
	var e *v1.Error
	if !errors.As(err, &e) || e.Code != v1.CodeConflict || !strings.Contains(e.Message, "another agent already runs under this name") {
		t.Fatalf("second agent as edge-1: %v", err)
	}
	// Once the first is gone and its lease lapsed, the name is free again.
	f.agents["edge-1"].Close()
	cptest.WaitNodes(t, f.p.Server, 1, v1.NodeLost, 8*time.Second)
	a, err := cptest.JoinSimAgent(ctx, f.p.NATSURL(), f.join, "edge-1", v1.Register{})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
}
