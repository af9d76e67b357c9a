package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/oci"
)

const (
	hello1 = "Hello from Fermion!\n"
	hello2 = "Howdy from Fermion!\n"
)

// wantStatus checks a reported status.
func wantStatus(s v1.InstanceStatus, ok bool, state string, v v1.Version, generation int64) error {
	switch {
	case !ok:
		return fmt.Errorf("no status, want %s", state)
	case s.State != state || s.Digest != v.Digest || s.Generation != generation:
		return fmt.Errorf("status %s at %s generation %d (%s), want %s at %s generation %d",
			s.State, s.Digest, s.Generation, s.LastError, state, v.Digest, generation)
	}
	return nil
}

// reported waits until node's last heartbeat says deployment is in state at v and
// generation.
func reported(t *testing.T, cp *controlPlane, node, deployment, state string, v v1.Version, generation int64) v1.InstanceStatus {
	t.Helper()
	var got v1.InstanceStatus
	waitFor(t, func() error {
		hb, ok := cp.lastHeartbeat(node)
		if !ok {
			return fmt.Errorf("%s has sent no heartbeat", node)
		}
		s, ok := hb[deployment]
		got = s
		return wantStatus(s, ok, state, v, generation)
	})
	return got
}

func assignment(deployment, node string, generation int64, v v1.Version) v1.Assignment {
	return v1.Assignment{Deployment: deployment, Node: node, Generation: generation, Version: v,
		Reserved: v1.Resources{MemoryBytes: 64 << 20, Instances: 1}}
}

// A node under a control plane: join, assignments served through the gateway under a
// deployment name, version switches without failed requests, stale pushes, failures and
// retries, removal; then the control plane goes away, the node is restarted without it
// and with the registry gone too, and it converges when the control plane returns.
func TestNode(t *testing.T) {
	reg := startRegistry(t)
	cp := startControlPlane(t, false)
	helloM, helloWasm := example(t, "hello")
	echoM, echoWasm := example(t, "echo")
	_, v1Hello := reg.pushApp(t, reg.host, "acme/hello", helloM, helloWasm)
	_, v2Hello := reg.pushApp(t, reg.host, "acme/hello", withVersion(helloM, "0.2.0", map[string]string{"GREETING": "Howdy"}), helloWasm)
	echoArt, vEcho := reg.pushApp(t, reg.proxd, "acme/echo", echoM, echoWasm) // through the corrupting proxy
	dir := t.TempDir()
	n := startNode(t, cp, "n1", dir, joinToken)

	t.Run("joins and registers", func(t *testing.T) {
		waitFor(t, func() error {
			if !n.Connected() {
				return fmt.Errorf("not connected")
			}
			return nil
		})
		if joins, _ := cp.counts(); joins != 1 {
			t.Fatalf("%d joins, want 1", joins)
		}
		var creds map[string]string
		b, err := os.ReadFile(filepath.Join(dir, "node.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &creds); err != nil || creds["node"] != "n1" || creds["secret"] != "secret-1" {
			t.Fatalf("node.json = %s (%v), want n1's secret", b, err)
		}
		if st, err := os.Stat(filepath.Join(dir, "node.json")); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("node.json mode %v (%v), want 0600", st.Mode(), err)
		}
		if got := n.metric(t, "fermion_agent_control_plane_connected", "", ""); got != 1 {
			t.Fatalf("connected gauge = %v", got)
		}
		for _, l := range [][2]string{{"node", "n1"}, {"zone", "test"}, {"version", "test"}} {
			if got := n.metric(t, "fermion_node_info", l[0], l[1]); got != 1 {
				t.Fatalf("fermion_node_info{%s=%q} = %v, want 1", l[0], l[1], got)
			}
		}
	})

	t.Run("serves an assignment under its deployment name", func(t *testing.T) {
		cp.assign("n1", v1.AssignmentSet{Revision: 1, Assignments: []v1.Assignment{assignment("web", "n1", 1, v1Hello)}})
		waitFor(t, func() error { return serves(n.url+"/hello", hello1) })
		reported(t, cp, "n1", "web", v1.InstanceReady, v1Hello, 1)
		if err := n.Ready(); err != nil {
			t.Fatalf("Ready() = %v while serving its one deployment", err)
		}
		if s, _ := n.status("web"); s.Instances < 1 || s.Version != "0.1.0" || s.Node != "n1" {
			t.Fatalf("status %+v, want a running instance of 0.1.0 on n1", s)
		}
		var saved v1.AssignmentSet
		b, err := os.ReadFile(filepath.Join(dir, "assignments.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &saved); err != nil || saved.Revision != 1 || len(saved.Assignments) != 1 {
			t.Fatalf("assignments.json = %s (%v), want revision 1", b, err)
		}
		for name, want := range map[string]float64{"fermion_agent_assignment_revision": 1, "fermion_agent_assignments": 1} {
			if got := n.metric(t, name, "", ""); got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
	})

	t.Run("new digest switches without failed requests", func(t *testing.T) {
		h := startHammer(t, n.url+"/hello")
		h.waitSeen(t, hello1, 20)
		cp.assign("n1", v1.AssignmentSet{Revision: 2, Assignments: []v1.Assignment{assignment("web", "n1", 2, v2Hello)}})
		h.waitSeen(t, hello2, 20)
		if failures, ok := h.result(); len(failures) > 0 {
			t.Fatalf("%d requests failed during the switch (%d succeeded): %q", len(failures), ok, failures)
		}
		if err := serves(n.url+"/hello", hello2); err != nil {
			t.Fatal(err)
		}
		reported(t, cp, "n1", "web", v1.InstanceReady, v2Hello, 2)
	})

	t.Run("stale push is ignored", func(t *testing.T) {
		// Pushes arrive in order: once revision 3 shows, revision 1 has been seen.
		cp.push("n1", v1.AssignmentSet{Revision: 1, Assignments: []v1.Assignment{assignment("web", "n1", 1, v1Hello)}})
		cp.assign("n1", v1.AssignmentSet{Revision: 3, Assignments: []v1.Assignment{assignment("web", "n1", 3, v2Hello)}})
		waitFor(t, func() error {
			s, ok := n.status("web")
			return wantStatus(s, ok, v1.InstanceReady, v2Hello, 3)
		})
		if rev, _ := n.Revision(); rev != 3 {
			t.Fatalf("revision %d applied, want 3", rev)
		}
		if err := serves(n.url+"/hello", hello2); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("failures are reported and retried", func(t *testing.T) {
		reg.setCorrupt(echoArt.LayerDigest.String(), true)
		missing := v2Hello
		missing.Digest = "sha256:" + strings.Repeat("0", 64)
		cp.assign("n1", v1.AssignmentSet{Revision: 4, Assignments: []v1.Assignment{
			assignment("web", "n1", 3, v2Hello),
			assignment("api", "n1", 4, vEcho),
			assignment("ghost", "n1", 4, missing),
		}})
		tests := []struct {
			deployment string
			v          v1.Version
			want       string
		}{
			{"api", vEcho, "tampered: layer bytes hash to"},
			{"ghost", missing, "manifest " + missing.Digest + ": not found"},
		}
		for _, tt := range tests {
			s := reported(t, cp, "n1", tt.deployment, v1.InstanceFailed, tt.v, 4)
			if !strings.Contains(s.LastError, tt.want) || !strings.Contains(s.LastError, tt.v.Repository) {
				t.Errorf("%s: lastError %q, want it to name %s and say %q", tt.deployment, s.LastError, tt.v.Repository, tt.want)
			}
		}
		// Retried with backoff: more failures are counted while nothing changes.
		failed := n.metric(t, "fermion_agent_reconciles_total", "result", "failed")
		waitFor(t, func() error {
			if got := n.metric(t, "fermion_agent_reconciles_total", "result", "failed"); got < failed+2 {
				return fmt.Errorf("%v failed attempts, want at least %v", got, failed+2)
			}
			return nil
		})
		if status, _ := mustGet(t, n.url+"/echo"); status != http.StatusNotFound {
			t.Fatalf("GET /echo = %d while its artifact is refused, want 404", status)
		}
		if err := serves(n.url+"/hello", hello2); err != nil {
			t.Fatalf("a failing deployment disturbed another: %v", err)
		}
		if err := n.Ready(); err != nil {
			t.Fatalf("Ready() = %v: deployments that failed to start must not hold the node's readiness", err)
		}
		// The registry is fixed: the next retry starts it.
		reg.setCorrupt(echoArt.LayerDigest.String(), false)
		reported(t, cp, "n1", "api", v1.InstanceReady, vEcho, 4)
		if status, body := mustGet(t, n.url+"/echo"); status != http.StatusOK || !strings.Contains(body, `"path": "/echo"`) {
			t.Fatalf("GET /echo = %d %q", status, body)
		}
	})

	t.Run("removed deployments stop serving", func(t *testing.T) {
		cp.assign("n1", v1.AssignmentSet{Revision: 5, Assignments: []v1.Assignment{assignment("web", "n1", 3, v2Hello)}})
		// Draining for the route drain period (30 s by default): 503, not 404.
		waitFor(t, func() error {
			if status, body, err := get(n.url + "/echo"); err != nil || status != http.StatusServiceUnavailable {
				return fmt.Errorf("GET /echo = %d %q, %v; want 503 while it drains", status, body, err)
			}
			return nil
		})
		waitFor(t, func() error {
			hb, _ := cp.lastHeartbeat("n1")
			if len(hb) != 1 {
				return fmt.Errorf("heartbeat reports %d deployments, want web alone", len(hb))
			}
			return nil
		})
		if got := len(n.Statuses()); got != 1 {
			t.Fatalf("%d statuses, want 1", got)
		}
		// Only what is assigned stays pinned in the cache.
		var idx struct{ Pins []string }
		b, err := os.ReadFile(filepath.Join(dir, "cache", "index.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &idx); err != nil || len(idx.Pins) != 1 || idx.Pins[0] != v2Hello.Digest {
			t.Fatalf("cache pins %v (%v), want %s alone", idx.Pins, err, v2Hello.Digest)
		}
	})

	t.Run("keeps serving while the control plane is away", func(t *testing.T) {
		h := startHammer(t, n.url+"/hello")
		cp.stopResponding()
		unreachable := n.metric(t, "fermion_agent_heartbeats_total", "result", "unreachable")
		waitFor(t, func() error {
			if got := n.metric(t, "fermion_agent_heartbeats_total", "result", "unreachable"); got < unreachable+3 {
				return fmt.Errorf("%v unanswered heartbeats, want %v", got, unreachable+3)
			}
			if n.Connected() {
				return fmt.Errorf("connected with its lease lost")
			}
			return nil
		})
		cp.shutdown()
		h.waitSeen(t, hello2, 50)
		waitFor(t, func() error {
			if got := n.metric(t, "fermion_agent_registrations_total", "result", "unreachable"); got < 1 {
				return fmt.Errorf("no registration attempted after the lease was lost")
			}
			return nil
		})
		h.waitSeen(t, hello2, 50)
		if failures, ok := h.result(); len(failures) > 0 {
			t.Fatalf("%d requests failed without the control plane (%d succeeded): %q", len(failures), ok, failures)
		}
	})

	t.Run("restarted without control plane and registry, serves the last assignments", func(t *testing.T) {
		n.stop()
		reg.proxy.Close()
		reg.srv.Close()
		n2 := startNode(t, cp, "n1", dir, "")
		waitFor(t, func() error { return serves(n2.url+"/hello", hello2) })
		if s, ok := n2.status("web"); wantStatus(s, ok, v1.InstanceReady, v2Hello, 3) != nil || n2.Connected() {
			t.Fatalf("status %+v, connected %v; want ready and not connected", s, n2.Connected())
		}
		if err := n2.Ready(); err != nil {
			t.Fatalf("Ready() = %v while serving the saved assignments", err)
		}

		t.Run("converges when the control plane returns", func(t *testing.T) {
			h := startHammer(t, n2.url+"/hello")
			h.waitSeen(t, hello2, 10)
			// Back, with a change of version it can serve from its cache.
			cp.mu.Lock()
			cp.sets["n1"] = v1.AssignmentSet{Node: "n1", Revision: 6, Assignments: []v1.Assignment{assignment("web", "n1", 6, v1Hello)}}
			cp.mu.Unlock()
			cp.start()
			reported(t, cp, "n1", "web", v1.InstanceReady, v1Hello, 6)
			h.waitSeen(t, hello1, 10)
			if failures, ok := h.result(); len(failures) > 0 {
				t.Fatalf("%d requests failed while converging (%d succeeded): %q", len(failures), ok, failures)
			}
			if !n2.Connected() {
				t.Fatal("not connected")
			}
			if joins, _ := cp.counts(); joins != 1 {
				t.Fatalf("%d joins, want 1: the saved credentials are reused", joins)
			}
		})
	})
}

// The node's credentials: reused across restarts, and replaced by joining again when the
// control plane refuses them.
func TestNodeCredentials(t *testing.T) {
	cp := startControlPlane(t, true)
	dir := t.TempDir()
	connected := func(n *testNode) func() error {
		return func() error {
			if !n.Connected() {
				return fmt.Errorf("not connected")
			}
			return nil
		}
	}
	secret := func() string {
		var c struct{ Secret string }
		b, _ := os.ReadFile(filepath.Join(dir, "node.json"))
		json.Unmarshal(b, &c)
		return c.Secret
	}

	n := startNode(t, cp, "edge-1", dir, joinToken)
	waitFor(t, connected(n))
	n.stop()
	if joins, _ := cp.counts(); joins != 1 || secret() != "secret-1" {
		t.Fatalf("joins %d, saved secret %q; want one join, secret-1", joins, secret())
	}

	// Without a token, the saved credentials are all it has.
	n = startNode(t, cp, "edge-1", dir, "")
	waitFor(t, connected(n))
	n.stop()

	n = startNode(t, cp, "edge-1", dir, joinToken)
	waitFor(t, connected(n))
	if joins, _ := cp.counts(); joins != 1 {
		t.Fatalf("%d joins, want 1: the saved credentials are reused", joins)
	}

	// The control plane forgets the node's secret and drops every connection.
	cp.revoke("edge-1")
	cp.restart()
	waitFor(t, func() error {
		if joins, _ := cp.counts(); joins != 2 {
			return fmt.Errorf("%d joins, want 2", joins)
		}
		return connected(n)()
	})
	if secret() != "secret-2" {
		t.Fatalf("saved secret %q after joining again, want secret-2", secret())
	}

	// Refused on the very first connection of a start.
	n.stop()
	if err := os.WriteFile(filepath.Join(dir, "node.json"), []byte(`{"node":"edge-1","secret":"stale"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, cp, "edge-1", dir, joinToken)
	waitFor(t, func() error {
		if joins, _ := cp.counts(); joins != 3 {
			return fmt.Errorf("%d joins, want 3", joins)
		}
		return connected(n)()
	})

	// Started while the control plane is down, which refuses the credentials once back:
	// nats.go reports only the first failure of a connection that never connected.
	n.stop()
	cp.shutdown()
	if err := os.WriteFile(filepath.Join(dir, "node.json"), []byte(`{"node":"edge-1","secret":"stale"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, cp, "edge-1", dir, joinToken)
	cp.start()
	waitFor(t, func() error {
		if joins, _ := cp.counts(); joins != 4 {
			return fmt.Errorf("%d joins, want 4", joins)
		}
		return connected(n)()
	})
}

// The trust roots come from the control plane: an unsigned artifact is refused while
// keys are trusted, and started once it is signed with one of them.
func TestNodeTrust(t *testing.T) {
	reg := startRegistry(t)
	cp := startControlPlane(t, false)
	key, err := artifact.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := artifact.MarshalPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	cp.trusted = []string{string(pub)}
	helloM, helloWasm := example(t, "hello")
	a, v := reg.pushApp(t, reg.host, "acme/hello", helloM, helloWasm)
	dir := t.TempDir()
	n := startNode(t, cp, "n1", dir, joinToken)

	cp.assign("n1", v1.AssignmentSet{Revision: 1, Assignments: []v1.Assignment{assignment("web", "n1", 1, v)}})
	if s := reported(t, cp, "n1", "web", v1.InstanceFailed, v, 1); !strings.Contains(s.LastError, "not signed") {
		t.Fatalf("lastError %q, want it to say the artifact is not signed", s.LastError)
	}
	ref, err := oci.ParseRef(reg.host + "/acme/hello:0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	c := &oci.Client{Token: pushToken, HTTPClient: &http.Client{Timeout: 30 * time.Second}}
	if err := c.Sign(context.Background(), ref, a.ManifestDigest, key); err != nil {
		t.Fatal(err)
	}
	reported(t, cp, "n1", "web", v1.InstanceReady, v, 1)
	waitFor(t, func() error { return serves(n.url+"/hello", hello1) })

	// Kept for a restart without the control plane.
	var saved struct{ TrustedKeys []string }
	b, err := os.ReadFile(filepath.Join(dir, "trust.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &saved); err != nil || len(saved.TrustedKeys) != 1 || saved.TrustedKeys[0] != string(pub) {
		t.Fatalf("trust.json = %s (%v), want the trusted key", b, err)
	}
}

// Readiness before and after the first assignments: a node that has never heard from
// the control plane (and has nothing saved) is not ready, and becomes ready once what it
// is assigned is routed. /readyz on the admin address answers the same.
func TestNodeReady(t *testing.T) {
	reg := startRegistry(t)
	cp := startControlPlane(t, false)
	helloM, helloWasm := example(t, "hello")
	_, vHello := reg.pushApp(t, reg.host, "acme/hello", helloM, helloWasm)
	cp.stopResponding()
	n := startNode(t, cp, "r1", t.TempDir(), joinToken)
	if err := n.Ready(); err == nil || !strings.Contains(err.Error(), "no assignments yet") {
		t.Fatalf("Ready() = %v before the control plane answered, want no assignments yet", err)
	}
	if status, body := mustGet(t, n.admin+"/readyz"); status != http.StatusServiceUnavailable || !strings.Contains(body, "no assignments yet") {
		t.Fatalf("GET /readyz = %d %q before the control plane answered, want 503", status, body)
	}
	cp.mu.Lock()
	cp.sets["r1"] = v1.AssignmentSet{Node: "r1", Revision: 1, Assignments: []v1.Assignment{assignment("web", "r1", 1, vHello)}}
	cp.mu.Unlock()
	cp.respond()
	waitFor(t, func() error { return n.Ready() })
	if err := serves(n.url+"/hello", hello1); err != nil {
		t.Fatalf("ready but not serving: %v", err)
	}
	if status, body := mustGet(t, n.admin+"/readyz"); status != http.StatusOK || body != "ready\n" {
		t.Fatalf("GET /readyz = %d %q once serving, want 200 ready", status, body)
	}
}

// TestNodeRegistryScheme: the scheme the control plane gives for its registry is the one
// the node pulls with (here, wrongly, TLS for a plain registry), and it is kept for a
// restart.
func TestNodeRegistryScheme(t *testing.T) {
	reg := startRegistry(t)
	cp := startControlPlane(t, false)
	helloM, helloWasm := example(t, "hello")
	_, v := reg.pushApp(t, reg.host, "acme/hello", helloM, helloWasm)
	cp.mu.Lock()
	cp.registry = &v1.RegistryInfo{Host: reg.host, TLS: true}
	cp.mu.Unlock()
	dir := t.TempDir()
	startNode(t, cp, "s1", dir, joinToken)
	cp.assign("s1", v1.AssignmentSet{Revision: 1, Assignments: []v1.Assignment{assignment("web", "s1", 1, v)}})
	if s := reported(t, cp, "s1", "web", v1.InstanceFailed, v, 1); !strings.Contains(s.LastError, "HTTP response to HTTPS client") {
		t.Fatalf("lastError %q, want a TLS request to the plain registry", s.LastError)
	}
	var saved struct{ Registry *v1.RegistryInfo }
	b, err := os.ReadFile(filepath.Join(dir, "trust.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &saved); err != nil || saved.Registry == nil || *saved.Registry != *cp.registry {
		t.Fatalf("trust.json = %s (%v), want registry %+v", b, err, cp.registry)
	}
}
