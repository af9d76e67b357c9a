package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/cli"
	"fermion.dev/fermion/internal/fermiontest"
)

// background is a long-running verb (up, server, agent) in a goroutine.
type background struct {
	out, errs *fermiontest.SyncBuffer
	cancel    context.CancelFunc
	done      chan int
}

func startVerb(t *testing.T, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{out: &fermiontest.SyncBuffer{}, errs: &fermiontest.SyncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() { b.done <- cli.RunContext(ctx, args, b.out, b.errs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-b.done:
		case <-time.After(30 * time.Second):
			t.Errorf("fermion %s did not stop 30s after its context was canceled", args[0])
		}
	})
	return b
}

// waitLine waits for a line of output matching re and returns its first group.
func (b *background) waitLine(t *testing.T, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	var got string
	fermiontest.WaitFor(t, timeout, func() error {
		select {
		case code := <-b.done:
			b.done <- code
			t.Fatalf("exited %d\nstdout:\n%s\nstderr:\n%s", code, b.out, b.errs)
		default:
		}
		m := re.FindStringSubmatch(b.out.String())
		if m == nil {
			return fmt.Errorf("no line matching %s in %q", re, b.out)
		}
		got = m[1]
		return nil
	})
	return got
}

func httpGet(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

var (
	apiLine     = regexp.MustCompile(`(?m)API (https?://127\.0\.0\.1:\d+)$`)
	natsLine    = regexp.MustCompile(`(?m)^agents connect to ((?:nats|tls)://127\.0\.0\.1:\d+)$`)
	gwLine      = regexp.MustCompile(`(?m)^node \S+: gateway (https?://127\.0\.0\.1:\d+)$`)
	answerLine  = regexp.MustCompile(`(?m)^hello answering at (http://\S+)$`)
	tokenLine   = regexp.MustCompile(`(?m)^token\s+(fmn_\S+)$`)
	quietListen = []string{"--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0", "--admin-listen", ""}
)

// TestUp runs the README's command: everything in one process, the example answering,
// its agent exporting spans to the OTLP endpoint the environment names.
func TestUp(t *testing.T) {
	home := t.TempDir()
	t.Setenv("FERMION_HOME", home)
	var posts atomic.Int32
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" {
			posts.Add(1)
		}
	}))
	t.Cleanup(collector.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	args := append([]string{"up", "--example", filepath.Join(fermiontest.Root(t), "examples", "hello"),
		"--agent-listen", "127.0.0.1:0", "--agent-admin-listen", "127.0.0.1:0",
		// Short intervals so that SLIs reach top and the SLO's budget within the test.
		"--agent-sli-interval", "1s", "--slo-interval", "1s"}, quietListen...)
	b := startVerb(t, args...)
	url := b.waitLine(t, answerLine, 3*time.Minute)
	admin := b.waitLine(t, metricsLine, time.Second) // the agent's: the server's is off
	if code, body, err := httpGet(admin + "/metrics"); err != nil || code != 200 || !strings.Contains(body, "fermion_telemetry_spool_bytes 0") {
		t.Fatalf("agent /metrics: %d %v, want the span export spool's backlog gauge", code, err)
	}
	code, body, err := httpGet(url)
	if err != nil || code != 200 || !strings.Contains(body, "Hello") {
		t.Fatalf("GET %s: %d %q %v", url, code, body, err)
	}
	// The other verbs find the control plane through the saved context.
	c, out, errOut := run(t, "status", "hello")
	if c != 0 || !strings.Contains(out, "converged") {
		t.Fatalf("status: %d\n%s\n%s", c, out, errOut)
	}
	c, out, _ = run(t, "nodes")
	if c != 0 || !strings.Contains(out, "local") || !strings.Contains(out, "hello") {
		t.Fatalf("nodes: %d\n%s", c, out)
	}
	// hello's [[slo]] came with its deployment: its budget reports (issue 14).
	c, out, errOut = run(t, "slo", "status", "hello-availability")
	if c != 0 || !strings.Contains(out, "SLO hello-availability (version 1): availability of hello ≥ 99.9% over 30d, scope node") {
		t.Fatalf("slo status: %d\n%s\n%s", c, out, errOut)
	}
	if c, out, errOut = run(t, "alerts"); c != 0 || !strings.Contains(out, "no alerts") {
		t.Fatalf("alerts: %d\n%s\n%s", c, out, errOut)
	}
	// top works with no Prometheus: at least the instances the node reports.
	c, out, _ = run(t, "top", "--once")
	if c != 0 || !regexp.MustCompile(`(?m)^hello\s`).MatchString(out) {
		t.Fatalf("top: %d\n%s", c, out)
	}
	// With no Prometheus anywhere, a few requests to hello show in top as req/s and
	// latency quantiles, and in hello-availability's budget as a non-zero total: the
	// agent's SLIs reached the control plane's store and its SLO engine (issue 14).
	for range 20 {
		if code, _, err := httpGet(url); err != nil || code != 200 {
			t.Fatalf("GET %s: %d %v", url, code, err)
		}
	}
	fermiontest.WaitFor(t, time.Minute, func() error {
		c, out, errOut := run(t, "top", "--once", "-o", "json")
		var l v1.SLIList
		if c != 0 || json.Unmarshal([]byte(out), &l) != nil {
			return fmt.Errorf("top -o json: %d\n%s\n%s", c, out, errOut)
		}
		for _, g := range l.Groups {
			if g.App == "hello" && g.RequestsPerSecond > 0 && g.P50Ms > 0 && g.P99Ms >= g.P50Ms {
				return nil
			}
		}
		return fmt.Errorf("top shows no requests to hello yet: %s", out)
	})
	c, out, _ = run(t, "top", "--once")
	if c != 0 || !regexp.MustCompile(`(?m)^hello\s+\S+\s+\d`).MatchString(out) || !strings.Contains(out, "P99") {
		t.Fatalf("top: %d\n%s", c, out)
	}
	fermiontest.WaitFor(t, time.Minute, func() error {
		c, out, errOut := run(t, "slo", "status", "hello-availability", "-o", "json")
		var sts []v1.SLOStatus
		if c != 0 || json.Unmarshal([]byte(out), &sts) != nil || len(sts) != 1 {
			return fmt.Errorf("slo status -o json: %d\n%s\n%s", c, out, errOut)
		}
		for _, se := range sts[0].Series {
			if se.App == "hello" && se.Total > 0 && se.Good == se.Total && se.BudgetRemaining == 1 {
				return nil
			}
		}
		return fmt.Errorf("hello-availability has no requests counted yet: %+v", sts[0].Series)
	})
	c, out, _ = run(t, "slo", "status", "hello-availability")
	if c != 0 || !regexp.MustCompile(`hello\s+0\.1\.0\s+local\s+[1-9]\d*/[1-9]\d*\s+100\.0%`).MatchString(out) {
		t.Fatalf("slo status: %d\n%s", c, out)
	}
	// Stopping flushes the spans still queued.
	b.cancel()
	select {
	case code := <-b.done:
		b.done <- code // for the cleanup's wait
	case <-time.After(30 * time.Second):
		t.Fatal("up did not stop 30s after its context was canceled")
	}
	if posts.Load() == 0 {
		t.Fatal("the agent exported no spans to OTEL_EXPORTER_OTLP_ENDPOINT")
	}
}

// TestUpOutsideTheRepository: without --example and without examples/hello under the
// working directory (a test runs in its package's), up serves and says why nothing is
// deployed.
func TestUpOutsideTheRepository(t *testing.T) {
	t.Setenv("FERMION_HOME", t.TempDir())
	args := append([]string{"up", "--data", t.TempDir(), "--agent-listen", "127.0.0.1:0", "--agent-admin-listen", ""}, quietListen...)
	b := startVerb(t, args...)
	b.waitLine(t, regexp.MustCompile(`(?m)^no example deployed: (examples/hello) is not here`), time.Minute)
	b.waitLine(t, regexp.MustCompile(`(?m)^(ready): `), 10*time.Second)
}

// TestServerAndTwoAgents is the multi-process flow, in-process: a server, two agents
// joined by hand with a node token, a deploy from a directory spread across zones, and a
// drain that moves the work.
func TestServerAndTwoAgents(t *testing.T) {
	if testing.Short() {
		t.Skip("a server and two agents as processes would run them, and a deploy: not in -short")
	}
	home := t.TempDir()
	t.Setenv("FERMION_HOME", home)
	srv := startVerb(t, append([]string{"server", "--data", t.TempDir(), "--lease-renew", "500ms", "--lease-lost", "3s"}, quietListen...)...)
	srv.waitLine(t, apiLine, time.Minute)
	natsURL := srv.waitLine(t, natsLine, time.Minute)
	c, out, errOut := run(t, "token", "create", "--role", "node")
	if c != 0 {
		t.Fatalf("token create: %d %s %s", c, out, errOut)
	}
	tok := tokenLine.FindStringSubmatch(out)
	if tok == nil {
		t.Fatalf("no token in %q", out)
	}
	gws := map[string]string{}
	for i, zone := range []string{"a", "b"} {
		name := fmt.Sprintf("edge-%d", i+1)
		a := startVerb(t, "agent", "--server", natsURL, "--token", tok[1], "--name", name, "--data", t.TempDir(),
			"--label", "region=eu-west", "--label", "zone="+zone, "--listen", "127.0.0.1:0", "--admin-listen", "")
		gws[name] = a.waitLine(t, gwLine, time.Minute)
	}
	c, out, errOut = run(t, "deploy", filepath.Join(fermiontest.Root(t), "examples", "hello"), "--nodes", "2", "--spread", "zone",
		"--selector", `region == "eu-west"`, "--timeout", "2m")
	if c != 0 || !strings.Contains(out, "converged: 2/2") {
		t.Fatalf("deploy: %d\n%s\n%s", c, out, errOut)
	}
	for name, gw := range gws {
		if code, _, err := httpGet(gw + "/hello"); err != nil || code != 200 {
			t.Fatalf("%s: %d %v", name, code, err)
		}
	}
	// A deploy that fits nowhere is explained.
	c, _, errOut = run(t, "deploy", filepath.Join(fermiontest.Root(t), "examples", "hello"), "--name", "hello-us", "--nodes", "1",
		"--selector", `region == "us-east"`, "--wait=false")
	if c == 0 || !strings.Contains(errOut, "2 selector mismatch") {
		t.Fatalf("unplaceable deploy: %d %s", c, errOut)
	}
	c, out, errOut = run(t, "node", "drain", "edge-1", "--timeout", "1m")
	if c != 0 || !strings.Contains(out, "drained") {
		t.Fatalf("drain: %d\n%s\n%s", c, out, errOut)
	}
	c, out, _ = run(t, "events", "--node", "edge-1")
	if c != 0 || !strings.Contains(out, "drain_started") || !strings.Contains(out, "drained") {
		t.Fatalf("events: %d\n%s", c, out)
	}
}

// TestTwoAgentsAsTheREADMEShows starts two agents on one machine with the README's
// flags: no --data and no --admin-listen. Each gets its own data directory under
// FERMION_HOME, named by --name, and the second's admin address moves to a free port
// instead of clashing with the first's.
func TestTwoAgentsAsTheREADMEShows(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and two agents")
	}
	home := t.TempDir()
	t.Setenv("FERMION_HOME", home)
	srv := startVerb(t, append([]string{"server", "--data", t.TempDir()}, quietListen...)...)
	srv.waitLine(t, apiLine, time.Minute)
	natsURL := srv.waitLine(t, natsLine, time.Minute)
	c, out, errOut := run(t, "token", "create", "--role", "node")
	tok := tokenLine.FindStringSubmatch(out)
	if c != 0 || tok == nil {
		t.Fatalf("token create: %d %s %s", c, out, errOut)
	}
	admins, agents := map[string]string{}, map[string]*background{}
	for i, zone := range []string{"a", "b"} {
		name := fmt.Sprintf("edge-%d", i+1)
		a := startVerb(t, "agent", "--server", natsURL, "--token", tok[1], "--name", name,
			"--label", "region=eu-west", "--label", "zone="+zone, "--listen", "127.0.0.1:0")
		a.waitLine(t, gwLine, time.Minute)
		admins[name], agents[name] = a.waitLine(t, metricsLine, time.Minute), a
	}
	if admins["edge-1"] == admins["edge-2"] {
		t.Fatalf("both agents report admin address %s", admins["edge-1"])
	}
	if admins["edge-2"] != "http://127.0.0.1:9090" && !strings.Contains(agents["edge-2"].out.String(), "admin address 127.0.0.1:9090 is taken") {
		t.Errorf("edge-2 moved its admin address without saying so:\n%s", agents["edge-2"].out)
	}
	for name, admin := range admins {
		if code, _, err := httpGet(admin + "/metrics"); err != nil || code != 200 {
			t.Fatalf("%s admin %s/metrics: %d %v", name, admin, code, err)
		}
	}
	// Both join and stay joined: neither overwrote the other's credentials.
	fermiontest.WaitFor(t, time.Minute, func() error {
		c, out, errOut := run(t, "nodes")
		if c != 0 {
			return fmt.Errorf("nodes: %d %s", c, errOut)
		}
		for _, name := range []string{"edge-1", "edge-2"} {
			if !regexp.MustCompile(`(?m)^` + name + `\s+ready`).MatchString(out) {
				return fmt.Errorf("%s not ready in\n%s", name, out)
			}
		}
		return nil
	})
	for _, name := range []string{"edge-1", "edge-2"} {
		if _, err := os.Stat(filepath.Join(home, "agents", name, "node.json")); err != nil {
			t.Errorf("%s's credentials: %v", name, err)
		}
	}
	c, out, errOut = run(t, "events", "--type", "node_joined")
	if lines := strings.Split(out, "\n"); c != 0 || !regexp.MustCompile(`^TIME\s+TYPE\s+DEPLOYMENT\s+NODE\s+MESSAGE$`).MatchString(lines[0]) ||
		!strings.Contains(out, "node_joined") || strings.Contains(out, "node_ready") {
		t.Fatalf("events --type node_joined: %d\n%s\n%s", c, out, errOut)
	}
	// version asks the control plane the saved context names.
	c, out, errOut = run(t, "version", "-o", "json")
	var ver struct {
		Server *struct{ Version, Error string }
	}
	if err := json.Unmarshal([]byte(out), &ver); c != 0 || err != nil || ver.Server == nil || ver.Server.Version != cli.Version {
		t.Fatalf("version -o json: %d %v\n%s\n%s", c, err, out, errOut)
	}
	c, out, _ = run(t, "version")
	if c != 0 || !strings.Contains(out, "server   http://127.0.0.1:") || !strings.Contains(out, ": fermion "+cli.Version+" (replica ") {
		t.Fatalf("version: %d\n%s", c, out)
	}
	// A --spread label no node has is a typo until shown otherwise: warned, not silent.
	c, out, errOut = run(t, "deploy", filepath.Join(fermiontest.Root(t), "examples", "hello"), "--nodes", "2", "--spread", "zome", "--wait=false")
	if c != 0 || !strings.Contains(errOut, "warning: --spread zome: none of the 2 nodes has label zome (did you mean zone?)") {
		t.Fatalf("deploy --spread zome: %d\n%s\n%s", c, out, errOut)
	}
	c, out, errOut = run(t, "deploy", filepath.Join(fermiontest.Root(t), "examples", "hello"), "--nodes", "2", "--spread", "zone", "--wait=false")
	if c != 0 || strings.Contains(errOut, "warning") {
		t.Fatalf("deploy --spread zone: %d\n%s\n%s", c, out, errOut)
	}
}

// TestUpKeepsServingWhenItsExampleIsDenied follows the README's policy walkthrough:
// require-signed in deny mode, then up again. Up says why its (unsigned) example was
// refused and keeps serving the control plane.
func TestUpKeepsServingWhenItsExampleIsDenied(t *testing.T) {
	if testing.Short() {
		t.Skip("starts up twice and builds the example")
	}
	t.Setenv("FERMION_HOME", t.TempDir())
	data := t.TempDir()
	root := fermiontest.Root(t)
	args := append([]string{"up", "--data", data, "--agent-listen", "127.0.0.1:0", "--agent-admin-listen", ""}, quietListen...)
	first := startVerb(t, append(args, "--example", "")...)
	first.waitLine(t, regexp.MustCompile(`(?m)^(ready): `), time.Minute)
	if c, out, errOut := run(t, "policy", "apply", filepath.Join(root, "examples", "policies", "require-signed.yaml"), "--mode", "deny"); c != 0 {
		t.Fatalf("policy apply: %d\n%s\n%s", c, out, errOut)
	}
	first.cancel()
	select {
	case code := <-first.done:
		first.done <- code
	case <-time.After(30 * time.Second):
		t.Fatal("up did not stop 30s after its context was canceled")
	}

	second := startVerb(t, append(args, "--example", filepath.Join(root, "examples", "hello"))...)
	why := second.waitLine(t, regexp.MustCompile(`(?m)^no example deployed: (.*)$`), 3*time.Minute)
	if !strings.Contains(why, "require-signed") {
		t.Errorf("the refusal does not name the policy: %q", why)
	}
	second.waitLine(t, regexp.MustCompile(`(?m)^an (admission policy) refused it`), time.Second)
	second.waitLine(t, regexp.MustCompile(`(?m)^(ready): `), time.Second)
	c, out, errOut := run(t, "nodes")
	if c != 0 || !strings.Contains(out, "local") {
		t.Fatalf("the control plane stopped serving: nodes: %d\n%s\n%s", c, out, errOut)
	}
}

// TestAgentExitsOnARefusedToken: an agent that has never joined and whose join token the
// control plane refuses exits with the reason instead of retrying for ever.
func TestAgentExitsOnARefusedToken(t *testing.T) {
	t.Setenv("FERMION_HOME", t.TempDir())
	srv := startVerb(t, append([]string{"server", "--data", t.TempDir()}, quietListen...)...)
	natsURL := srv.waitLine(t, natsLine, time.Minute)
	a := startVerb(t, "agent", "--server", natsURL, "--token", "fmn_notatoken_0000", "--name", "edge-1",
		"--listen", "127.0.0.1:0", "--admin-listen", "")
	var code int
	select {
	case code = <-a.done:
		a.done <- code // for the cleanup's wait
	case <-time.After(time.Minute):
		t.Fatalf("the agent still runs a minute after its token was refused\nstdout:\n%s\nstderr:\n%s", a.out, a.errs)
	}
	if code != 1 || !strings.Contains(a.errs.String(), "fermion: run node edge-1: join: ") ||
		!strings.Contains(a.errs.String(), "refused the join token") || !strings.Contains(a.errs.String(), "fermion token create --role node") {
		t.Fatalf("exited %d\nstdout:\n%s\nstderr:\n%s", code, a.out, a.errs)
	}
}

// TestAgentThatJoinedKeepsRunningOnARefusedToken is the other side of
// TestAgentExitsOnARefusedToken: a node that has joined before (credentials in its data
// directory) keeps running, to serve its last assignments, when the control plane refuses
// both its credentials and its join token, and retries.
func TestAgentThatJoinedKeepsRunningOnARefusedToken(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a node to be lost")
	}
	t.Setenv("FERMION_HOME", t.TempDir())
	srv := startVerb(t, append([]string{"server", "--data", t.TempDir(), "--lease-renew", "500ms", "--lease-lost", "2s"}, quietListen...)...)
	natsURL := srv.waitLine(t, natsLine, time.Minute)
	c, out, errOut := run(t, "token", "create", "--role", "node")
	tok := tokenLine.FindStringSubmatch(out)
	if c != 0 || tok == nil {
		t.Fatalf("token create: %d %s %s", c, out, errOut)
	}
	data := t.TempDir()
	args := []string{"agent", "--server", natsURL, "--name", "edge-1", "--data", data, "--listen", "127.0.0.1:0", "--admin-listen", ""}
	first := startVerb(t, append(args, "--token", tok[1])...)
	first.waitLine(t, gwLine, time.Minute)
	fermiontest.WaitFor(t, time.Minute, func() error {
		if _, err := os.Stat(filepath.Join(data, "node.json")); err != nil {
			return err
		}
		// node.json is written at join, before the node registers: wait for the
		// server to know it, or the removal below could never find it.
		if c, out, errOut := run(t, "nodes", "edge-1", "-o", "json"); c != 0 {
			return fmt.Errorf("nodes edge-1: %d %s %s", c, out, errOut)
		}
		return nil
	})
	first.cancel()
	<-first.done
	first.done <- 0
	// Forget the node, and with it its credentials.
	fermiontest.WaitFor(t, time.Minute, func() error {
		if c, out, errOut := run(t, "node", "remove", "edge-1"); c != 0 {
			return fmt.Errorf("node remove: %d %s %s", c, out, errOut)
		}
		return nil
	})
	second := startVerb(t, append(args, "--token", "fmn_notatoken_0000")...)
	fermiontest.WaitFor(t, time.Minute, func() error {
		select {
		case code := <-second.done:
			second.done <- code
			t.Fatalf("the agent that had joined exited %d\nstderr:\n%s", code, second.errs)
		default:
		}
		if s := second.errs.String(); !strings.Contains(s, "join failed; retrying") || !strings.Contains(s, "refused the join token") {
			return fmt.Errorf("no refusal logged yet: %s", second.errs)
		}
		return nil
	})
	select {
	case code := <-second.done:
		second.done <- code
		t.Fatalf("the agent that had joined exited %d after the refusal\nstderr:\n%s", code, second.errs)
	default:
	}
}
