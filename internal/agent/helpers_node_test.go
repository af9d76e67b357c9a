package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/agent"
	"fermion.dev/fermion/internal/agent/agenttest"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/oci"
	"fermion.dev/fermion/internal/registry"
)

// compileCache is the compilation cache of every data plane the node tests start,
// shared with the other packages' tests (fermiontest.CompileCacheDir), so each guest
// is compiled once.
var compileCache string

func TestMain(m *testing.M) {
	dir, err := fermiontest.CompileCacheDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	compileCache = dir
	os.Exit(m.Run())
}

const (
	joinToken = "join-token"
	pushToken = "push-token"
)

// controlPlane answers the agent protocol on an embedded NATS server: the stand-in for
// the control plane's server, as small as the protocol allows. It can stop answering,
// shut the server down and start it again on the same address.
type controlPlane struct {
	t    *testing.T
	dir  string
	addr string // host:port, fixed after the first start
	auth bool   // check NATS credentials: the join token, then the secrets it issued

	mu         sync.Mutex
	eng        *engine.Engine
	subs       []*nats.Subscription
	sets       map[string]v1.AssignmentSet // by node
	trusted    []string                    // PEM public keys sent with registrations
	match      bool                        // MatchRepository sent with registrations
	registry   *v1.RegistryInfo            // sent with registrations
	secrets    map[string]string           // by node: the secret its last join got
	joins      int
	registers  int
	heartbeats map[string][]v1.Heartbeat // by node
	sliBatches map[string][]v1.SLIBatch  // by node
}

func startControlPlane(t *testing.T, auth bool) *controlPlane {
	t.Helper()
	cp := &controlPlane{t: t, dir: t.TempDir(), addr: "127.0.0.1:0", auth: auth,
		sets: map[string]v1.AssignmentSet{}, secrets: map[string]string{}, heartbeats: map[string][]v1.Heartbeat{},
		sliBatches: map[string][]v1.SLIBatch{}}
	cp.start()
	t.Cleanup(cp.shutdown)
	return cp
}

func (cp *controlPlane) url() string { return "nats://" + cp.addr }

// start starts the server (on the same address as before, if any) and the responder.
func (cp *controlPlane) start() {
	cp.t.Helper()
	cfg := engine.Config{DataDir: cp.dir, Listen: cp.addr}
	if cp.auth {
		cfg.Auth = cp.check
	}
	eng, err := engine.Start(context.Background(), cfg)
	if err != nil {
		cp.t.Fatal(err)
	}
	u, err := url.Parse(eng.ClientURL())
	if err != nil {
		cp.t.Fatal(err)
	}
	cp.mu.Lock()
	cp.eng, cp.addr = eng, u.Host
	cp.mu.Unlock()
	cp.respond()
}

func (cp *controlPlane) check(user, password string) (*server.Permissions, bool) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if user == v1.JoinUser {
		return nil, password == joinToken
	}
	node, ok := strings.CutPrefix(user, v1.NodeUserPrefix)
	return nil, ok && password != "" && cp.secrets[node] == password
}

// revoke forgets node's secret: its next connection is refused.
func (cp *controlPlane) revoke(node string) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	delete(cp.secrets, node)
}

// respond answers join, register and heartbeat requests.
func (cp *controlPlane) respond() {
	cp.t.Helper()
	cp.mu.Lock()
	nc := cp.eng.Conn()
	cp.mu.Unlock()
	handlers := map[string]nats.MsgHandler{
		v1.SubjectJoin: func(m *nats.Msg) {
			var req v1.JoinRequest
			json.Unmarshal(m.Data, &req)
			cp.mu.Lock()
			cp.joins++
			secret := fmt.Sprintf("secret-%d", cp.joins)
			cp.secrets[req.Node] = secret
			cp.mu.Unlock()
			reply(m, v1.JoinReply{Node: req.Node, Secret: secret})
		},
		v1.SubjectRegister("*"): func(m *nats.Msg) {
			node := strings.Split(m.Subject, ".")[2]
			cp.mu.Lock()
			cp.registers++
			set, trusted, match, registry := cp.sets[node], cp.trusted, cp.match, cp.registry
			cp.mu.Unlock()
			set.Node = node
			reply(m, v1.RegisterReply{LeaseRenewSeconds: 0.2, LeaseLostSeconds: 1, TrustedKeys: trusted, RequireSignatures: len(trusted) > 0,
				MatchRepository: match, Assignments: set, Registry: registry})
		},
		v1.SubjectHeartbeat("*"): func(m *nats.Msg) {
			node := strings.Split(m.Subject, ".")[2]
			var hb v1.Heartbeat
			json.Unmarshal(m.Data, &hb)
			cp.mu.Lock()
			cp.heartbeats[node] = append(cp.heartbeats[node], hb)
			set := cp.sets[node]
			cp.mu.Unlock()
			set.Node = node
			reply(m, v1.HeartbeatReply{Assignments: set})
		},
		v1.SubjectSLIs("*"): func(m *nats.Msg) {
			node := strings.Split(m.Subject, ".")[2]
			var b v1.SLIBatch
			json.Unmarshal(m.Data, &b)
			cp.mu.Lock()
			cp.sliBatches[node] = append(cp.sliBatches[node], b)
			cp.mu.Unlock()
			reply(m, v1.SLIBatchReply{Done: len(b.Summaries), Accepted: len(b.Summaries)})
		},
	}
	var subs []*nats.Subscription
	for subject, h := range handlers {
		sub, err := nc.QueueSubscribe(subject, v1.QueueServers, h)
		if err != nil {
			cp.t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	if err := nc.Flush(); err != nil {
		cp.t.Fatal(err)
	}
	cp.mu.Lock()
	cp.subs = subs
	cp.mu.Unlock()
}

func reply(m *nats.Msg, v any) {
	b, _ := json.Marshal(v)
	m.Respond(b)
}

// stopResponding leaves the server up but answers nothing: requests get no responders.
func (cp *controlPlane) stopResponding() {
	cp.mu.Lock()
	subs := cp.subs
	cp.subs = nil
	cp.mu.Unlock()
	for _, s := range subs {
		s.Unsubscribe()
	}
}

// shutdown stops the server.
func (cp *controlPlane) shutdown() {
	cp.stopResponding()
	cp.mu.Lock()
	eng := cp.eng
	cp.eng = nil
	cp.mu.Unlock()
	if eng != nil {
		eng.Close()
	}
}

// restart shuts the server down and starts it again on the same address.
func (cp *controlPlane) restart() {
	cp.shutdown()
	cp.start()
}

// assign makes set node's assignments and pushes it, as the leader does on a change.
func (cp *controlPlane) assign(node string, set v1.AssignmentSet) {
	cp.t.Helper()
	set.Node = node
	cp.mu.Lock()
	cp.sets[node] = set
	cp.mu.Unlock()
	cp.push(node, set)
}

// push publishes set to node without making it node's assignments.
func (cp *controlPlane) push(node string, set v1.AssignmentSet) {
	cp.t.Helper()
	set.Node = node
	b, err := json.Marshal(set)
	if err != nil {
		cp.t.Fatal(err)
	}
	cp.mu.Lock()
	nc := cp.eng.Conn()
	cp.mu.Unlock()
	if err := nc.Publish(v1.SubjectAssignments(node), b); err != nil {
		cp.t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		cp.t.Fatal(err)
	}
}

func (cp *controlPlane) counts() (joins, registers int) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.joins, cp.registers
}

// lastHeartbeat returns the statuses node reported last, by deployment.
func (cp *controlPlane) lastHeartbeat(node string) (map[string]v1.InstanceStatus, bool) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	hbs := cp.heartbeats[node]
	if len(hbs) == 0 {
		return nil, false
	}
	out := map[string]v1.InstanceStatus{}
	for _, s := range hbs[len(hbs)-1].Statuses {
		out[s.Deployment] = s
	}
	return out, true
}

// testRegistry is the built-in registry on its own embedded JetStream behind a loopback
// listener, optionally behind a proxy that corrupts the blobs the test names.
type testRegistry struct {
	srv   *httptest.Server
	proxy *httptest.Server
	host  string // the registry, 127.0.0.1:PORT
	proxd string // the proxy, 127.0.0.1:PORT

	mu      sync.Mutex
	corrupt map[string]bool // blob digests the proxy flips a byte of
}

func startRegistry(t *testing.T) *testRegistry {
	t.Helper()
	ctx := context.Background()
	eng, err := engine.Start(ctx, engine.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(ctx, eng.JetStream(), registry.Config{PushTokens: []string{pushToken}})
	if err != nil {
		eng.Close()
		t.Fatal(err)
	}
	r := &testRegistry{srv: httptest.NewServer(reg), corrupt: map[string]bool{}}
	u, _ := url.Parse(r.srv.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.ModifyResponse = func(resp *http.Response) error {
		parts := strings.Split(resp.Request.URL.Path, "/")
		r.mu.Lock()
		bad := len(parts) > 2 && parts[len(parts)-2] == "blobs" && r.corrupt[parts[len(parts)-1]]
		r.mu.Unlock()
		if !bad || resp.StatusCode != http.StatusOK {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		b[len(b)/2] ^= 0xff
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	r.proxy = httptest.NewServer(rp)
	r.host, r.proxd = strings.TrimPrefix(r.srv.URL, "http://"), strings.TrimPrefix(r.proxy.URL, "http://")
	t.Cleanup(func() {
		r.proxy.Close()
		r.srv.Close()
		reg.Close()
		eng.Close()
	})
	return r
}

func (r *testRegistry) setCorrupt(digest string, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.corrupt[digest] = on
}

// pushApp packages m with wasm and pushes it to repo on the registry; it returns the
// artifact and the assignment version naming it through host (the registry's or the
// proxy's address).
func (r *testRegistry) pushApp(t *testing.T, host, repo string, m *manifest.Manifest, wasm []byte) (*artifact.Artifact, v1.Version) {
	t.Helper()
	a, err := artifact.Package(m, wasm, artifact.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := oci.ParseRef(r.host + "/" + repo + ":" + m.App.Version)
	if err != nil {
		t.Fatal(err)
	}
	c := &oci.Client{Token: pushToken, HTTPClient: &http.Client{Timeout: 30 * time.Second}}
	if _, err := c.Push(context.Background(), ref, a); err != nil {
		t.Fatal(err)
	}
	return a, v1.Version{App: m.App.Name, Version: m.App.Version, Repository: host + "/" + repo,
		Digest: a.ManifestDigest.String(), Size: int64(len(a.Layer))}
}

// testNode is a Node with its own served data plane.
type testNode struct {
	*agent.Node
	url     string // the gateway
	admin   string // the admin address (/readyz)
	metrics *prometheus.Registry
	stop    func()
	dp      *agent.DataPlane
}

// startNode starts a node named name on dir, with its own data plane, until the test
// ends or stop is called.
func startNode(t *testing.T, cp *controlPlane, name, dir, token string) *testNode {
	t.Helper()
	return startNodeWith(t, cp, name, dir, token, false)
}

// startNodeWith is startNode with the data plane's telemetry on or off; on, the node's
// metrics share the data plane's registry, as in fermion agent.
func startNodeWith(t *testing.T, cp *controlPlane, name, dir, token string, telemetryOn bool) *testNode {
	t.Helper()
	logger := testLogger(t, name)
	reg := prometheus.NewRegistry()
	nc := agent.NodeConfig{
		Name:         name,
		DataDir:      dir,
		Servers:      []string{cp.url()},
		JoinToken:    token,
		Labels:       map[string]string{"zone": "test"},
		Capacity:     v1.Resources{MemoryBytes: 1 << 30, MilliCPU: 2000, Instances: 100},
		AgentVersion: "test",
		// No retrying transport: a broken registry shows at once.
		Registry: &oci.Client{HTTPClient: &http.Client{Timeout: 10 * time.Second}},
		Logger:   logger,
	}
	if !telemetryOn {
		nc.Metrics = reg // with telemetry, the data plane's registry (agenttest)
	}
	a := agenttest.Start(t, agenttest.Config{
		DataPlane: agent.DataPlaneConfig{CacheDir: compileCache, Logger: logger, DrainTimeout: 10 * time.Second, Telemetry: telemetryOn},
		Node:      nc,
		Admin:     true,
	})
	if telemetryOn {
		reg = a.DataPlane.Metrics.Registry
	}
	return &testNode{Node: a.Node, url: a.URL, admin: a.Admin, metrics: reg, stop: a.Stop, dp: a.DataPlane}
}

// metric reads a counter or gauge with the given label value (or none).
func (n *testNode) metric(t *testing.T, name, label, value string) float64 {
	t.Helper()
	mfs, err := n.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				match = match || (l.GetName() == label && l.GetValue() == value)
			}
			if !match {
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

// status returns the node's own view of deployment.
func (n *testNode) status(deployment string) (v1.InstanceStatus, bool) {
	for _, s := range n.Statuses() {
		if s.Deployment == deployment {
			return s, true
		}
	}
	return v1.InstanceStatus{}, false
}

// testLogger collects a node's log and prints it if the test fails.
func testLogger(t *testing.T, name string) *slog.Logger {
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("log of %s:\n%s", name, buf.String())
		}
	})
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// hammer GETs a URL from three goroutines until stopped, counting bodies and failures.
type hammer struct {
	mu       sync.Mutex
	ok       map[string]int
	failures []string
	halt     chan struct{}
	wg       sync.WaitGroup
}

func startHammer(t *testing.T, url string) *hammer {
	t.Helper()
	h := &hammer{ok: map[string]int{}, halt: make(chan struct{})}
	for range 3 {
		h.wg.Go(func() {
			for {
				select {
				case <-h.halt:
					return
				default:
				}
				status, body, err := get(url)
				h.mu.Lock()
				switch {
				case err != nil:
					h.failures = append(h.failures, err.Error())
				case status != http.StatusOK:
					h.failures = append(h.failures, fmt.Sprintf("%d %s", status, body))
				default:
					h.ok[body]++
				}
				h.mu.Unlock()
			}
		})
	}
	t.Cleanup(h.stop)
	return h
}

func (h *hammer) seen(body string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ok[body]
}

// waitSeen waits until the hammer got body n more times.
func (h *hammer) waitSeen(t *testing.T, body string, n int) {
	t.Helper()
	target := h.seen(body) + n
	waitFor(t, func() error {
		if h.seen(body) < target {
			return fmt.Errorf("hammer has seen %q %d times, want %d", body, h.seen(body), target)
		}
		return nil
	})
}

// stop stops the hammer and returns its failures and how many requests succeeded.
func (h *hammer) stop() {
	select {
	case <-h.halt:
	default:
		close(h.halt)
	}
	h.wg.Wait()
}

func (h *hammer) result() (failures []string, ok int) {
	h.stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failures, total(h.ok)
}

// waitFor polls cond until it holds, for at most 20 seconds (more with the race
// detector).
func waitFor(t *testing.T, cond func() error) {
	t.Helper()
	timeout := 20 * time.Second
	if raceEnabled {
		timeout = 3 * time.Minute
	}
	fermiontest.WaitFor(t, timeout, cond)
}

// serves checks that GET url answers 200 with body.
func serves(url, body string) error {
	status, got, err := get(url)
	switch {
	case err != nil:
		return err
	case status != http.StatusOK || got != body:
		return fmt.Errorf("GET %s = %d %q, want 200 %q", url, status, got, body)
	}
	return nil
}
