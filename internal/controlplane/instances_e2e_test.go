package controlplane_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/agent"
	"fermion.dev/fermion/internal/agent/agenttest"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/oci"
)

// TestInstanceTimelines: on a real agent serving the panic fault guest, a few requests
// and a panic show through GET /v1/deployments/{name}/instances and
// GET /v1/nodes/{node}/instances (a viewer's client): the instance that served them
// with its requests, error and discard reason, numbered as the responses' exemplars
// number it, and its replacement; a command module's runs (examples/cgi), one instance
// per request, each exited; unknown names are 404s; a stopped agent is listed as
// unreachable with why.
func TestInstanceTimelines(t *testing.T) {
	if testing.Short() {
		t.Skip("deploys a guest on a real agent; the record is covered by the sandbox's timeline tests")
	}
	ctx := context.Background()
	p := cptest.Start(t, controlplane.Config{})
	a := agenttest.Start(t, agenttest.Config{
		DataPlane: agent.DataPlaneConfig{CacheDir: compileCache, DrainTimeout: 5 * time.Second},
		Node: agent.NodeConfig{Name: "edge-1", Servers: []string{p.NATSURL()}, JoinToken: p.NodeToken(t),
			Capacity: v1.Resources{MemoryBytes: 4 << 30, Instances: 64},
			Registry: &oci.Client{HTTPClient: &http.Client{Timeout: 10 * time.Second}}},
	})
	cptest.WaitNodes(t, p.Server, 1, v1.NodeReady, 10*time.Second)
	c, _ := client.New(p.API, p.Token)
	image := p.PushGuest(t, "examples/testdata/faults/panic", "panic", "0.1.0", artifact.Meta{})
	if _, _, err := c.PutDeployment(ctx, "panicky", v1.DeploymentSpec{Image: image, Daemon: true}, client.CreateOnly()); err != nil {
		t.Fatal(err)
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error { return get(a.URL + "/panic") })
	for range 3 {
		if err := get(a.URL + "/panic"); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Get(a.URL + "/panic?panic=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("panic request: %d, want 500", resp.StatusCode)
	}

	tok, err := p.CreateToken(ctx, v1.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	viewer, _ := client.New(p.API, tok)
	list, err := viewer.DeploymentInstances(ctx, "panicky")
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Unreachable) != 0 {
		t.Fatalf("unreachable: %+v", list.Unreachable)
	}
	var panicked *v1.InstanceTimeline
	for i, tl := range list.Instances {
		if tl.Node != "edge-1" || tl.Deployment != "panicky" || tl.Version != "0.1.0" || tl.ID == 0 {
			t.Errorf("timeline %+v: want edge-1, panicky 0.1.0, an id", tl)
		}
		if tl.DiscardReason == "panic" {
			panicked = &list.Instances[i]
		}
	}
	if panicked == nil {
		t.Fatalf("no instance discarded for its panic in %+v", list.Instances)
	}
	if panicked.State != "discarded" || panicked.Errors != 1 || panicked.Requests < 2 || panicked.Created.IsZero() ||
		!strings.Contains(panicked.DiscardDetail, "panicked") || len(panicked.Events) < 4 {
		t.Errorf("panicked instance %+v", *panicked)
	}

	byNode, err := viewer.NodeInstances(ctx, "edge-1", "panicky")
	if err != nil {
		t.Fatal(err)
	}
	if len(byNode.Instances) != len(list.Instances) {
		t.Errorf("node edge-1 has %d timelines, the deployment %d", len(byNode.Instances), len(list.Instances))
	}

	// A command module's instances: one per request, each ended as it exited.
	cgi := p.PushGuest(t, "examples/cgi", "cgi", "0.1.0", artifact.Meta{})
	if _, _, err := c.PutDeployment(ctx, "cgi", v1.DeploymentSpec{Image: cgi, Daemon: true}, client.CreateOnly()); err != nil {
		t.Fatal(err)
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error { return get(a.URL + "/cgi") })
	if err := get(a.URL + "/cgi"); err != nil {
		t.Fatal(err)
	}
	runs, err := viewer.NodeInstances(ctx, "edge-1", "cgi")
	if err != nil {
		t.Fatal(err)
	}
	if len(runs.Instances) < 2 {
		t.Fatalf("cgi: %d timelines after at least two requests: %+v", len(runs.Instances), runs.Instances)
	}
	for _, tl := range runs.Instances {
		if tl.Deployment != "cgi" || tl.Start != "command" || tl.Reason != "request" || tl.State != "discarded" ||
			tl.Requests != 1 || tl.DiscardReason != "exited" || tl.ID == 0 {
			t.Errorf("cgi timeline %+v: want one request, started for it as a command, exited", tl)
		}
	}

	if other, err := viewer.NodeInstances(ctx, "edge-1", "nothing-here"); err != nil || len(other.Instances) != 0 {
		t.Errorf("another deployment's instances: %+v, %v; want none", other, err)
	}

	for name, call := range map[string]func() error{
		"unknown deployment": func() error { _, err := viewer.DeploymentInstances(ctx, "nope"); return err },
		"unknown node":       func() error { _, err := viewer.NodeInstances(ctx, "nope", ""); return err },
	} {
		var e *v1.Error
		if err := call(); !errors.As(err, &e) || e.Code != v1.CodeNotFound {
			t.Errorf("%s: %v, want not_found", name, err)
		}
	}
	var e *v1.Error
	if _, err := viewer.NodeInstances(ctx, "edge-1", "Bad_Name"); !errors.As(err, &e) || e.Code != v1.CodeBadRequest {
		t.Errorf("bad deployment name: %v, want bad_request", err)
	}

	a.Stop()
	gone, err := viewer.DeploymentInstances(ctx, "panicky")
	if err != nil {
		t.Fatal(err)
	}
	if len(gone.Instances) != 0 || len(gone.Unreachable) != 1 || gone.Unreachable[0].Node != "edge-1" || gone.Unreachable[0].Error == "" {
		t.Errorf("with the agent stopped: %+v, want edge-1 unreachable with why", gone)
	}
}

// TestInstancesPermissions: a node's credentials receive its own instances requests
// and may answer them, and cannot subscribe to another node's.
func TestInstancesPermissions(t *testing.T) {
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
	asyncErrs := make(chan error, 4)
	nc, err := nats.Connect(p.NATSURL(), nats.UserInfo(v1.NodeUserPrefix+"edge-a", jr.Secret),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { asyncErrs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Subscribe(v1.SubjectInstances("edge-a"), func(m *nats.Msg) {
		b, _ := json.Marshal(v1.InstancesReply{Node: "edge-a", Instances: []v1.InstanceTimeline{}})
		m.Respond(b)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.SubscribeSync(v1.SubjectInstances("edge-b")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-asyncErrs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Errorf("subscribing to edge-b's subject: %v, want a permissions violation", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("subscribing to edge-b's instances subject was not refused")
	}
	// The server's connection asks edge-a: the node may answer.
	server := p.Server.Engine().Conn()
	reply, err := server.Request(v1.SubjectInstances("edge-a"), []byte(`{}`), 5*time.Second)
	if err != nil {
		t.Fatalf("ask edge-a: %v", err)
	}
	var got v1.InstancesReply
	if err := json.Unmarshal(reply.Data, &got); err != nil || got.Node != "edge-a" {
		t.Fatalf("edge-a's answer %s: %v", reply.Data, err)
	}
	if _, err := server.Request(v1.SubjectInstances("edge-b"), []byte(`{}`), time.Second); err == nil {
		t.Error("a request for edge-b was answered")
	}
}
