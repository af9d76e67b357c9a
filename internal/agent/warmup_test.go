package agent_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
)

// withWarmup copies m as version with a warmup hook (path "" for none).
func withWarmup(m *manifest.Manifest, version, path string, timeout time.Duration) *manifest.Manifest {
	c := withVersion(m, version, nil)
	c.Component.Warmup, c.Component.WarmupTimeout = path, timeout
	return c
}

// TestNodeWarmupHook: a canary whose warmup hook answers non-2xx, or hangs past its
// timeout, is reported failed with LastError "warmup: …" while stable keeps serving; one
// whose hook succeeds takes traffic, its warmups counted. The hook travels in the
// artifact's config, as the node reads every manifest field.
func TestNodeWarmupHook(t *testing.T) {
	if testing.Short() {
		t.Skip("a node through several canaries")
	}
	reg := startRegistry(t)
	cp := startControlPlane(t, false)
	m, _ := example(t, "hello") // its routes; the module is the slow fault guest
	wasm := fermiontest.Guest(t, "examples/testdata/faults/slow", true)
	_, vStable := reg.pushApp(t, reg.host, "acme/hello", withWarmup(m, "0.1.0", "", 0), wasm)
	_, vBad := reg.pushApp(t, reg.host, "acme/hello", withWarmup(m, "0.2.0", "/warmup?d=nonsense", time.Second), wasm)
	_, vHang := reg.pushApp(t, reg.host, "acme/hello", withWarmup(m, "0.3.0", "/warmup?d=1m", 200*time.Millisecond), wasm)
	_, vGood := reg.pushApp(t, reg.host, "acme/hello", withWarmup(m, "0.4.0", "/warmup", time.Second), wasm)
	n := startNodeWith(t, cp, "w1", t.TempDir(), joinToken, true)
	rev := uint64(0)
	assign := func(c *v1.Canary) {
		rev++
		a := assignment("web", "w1", 1, vStable)
		a.Canary = c
		cp.assign("w1", v1.AssignmentSet{Revision: rev, Assignments: []v1.Assignment{a}})
	}
	canary := func(v v1.Version, state string, errHas ...string) func() error {
		return func() error {
			s, ok := n.status("web")
			if !ok || s.Canary == nil || s.Canary.Digest != v.Digest || s.Canary.State != state {
				return fmt.Errorf("status %+v, canary %+v: want %s %s", s, s.Canary, v.Version, state)
			}
			for _, w := range errHas {
				if !strings.Contains(s.Canary.LastError, w) {
					return fmt.Errorf("canary LastError %q lacks %q", s.Canary.LastError, w)
				}
			}
			if s.State != v1.InstanceReady {
				return fmt.Errorf("stable %s, want ready beside a failing canary", s.State)
			}
			return nil
		}
	}

	assign(nil)
	// The first start compiles the guest: minutes on a loaded machine.
	fermiontest.WaitFor(t, 3*time.Minute, func() error { return serves(n.url+"/hello", "ok") })

	assign(&v1.Canary{Version: vBad, Weight: 100})
	waitFor(t, canary(vBad, v1.InstanceFailed, "warmup: ", "GET /warmup?d=nonsense answered 400"))
	if s, _ := n.status("web"); !strings.HasPrefix(s.Canary.LastError, "warmup: ") {
		t.Fatalf("LastError %q does not start with the reason", s.Canary.LastError)
	}
	if err := serves(n.url+"/hello", "ok"); err != nil {
		t.Fatalf("stable stopped serving beside the failed canary: %v", err)
	}

	assign(&v1.Canary{Version: vHang, Weight: 100})
	waitFor(t, canary(vHang, v1.InstanceFailed, "warmup: ", "did not answer within warmup_timeout 200ms"))

	assign(&v1.Canary{Version: vGood, Weight: 100})
	waitFor(t, canary(vGood, v1.InstanceReady))
	fn, _ := n.dp.Canary("web")
	if fn == nil || fn.Spec().Warmup != "/warmup" {
		t.Fatalf("canary %v: want 0.4.0 with its hook from the artifact", fn)
	}
	waitFor(t, func() error { return serves(n.url+"/hello", "ok") })
	if got := n.metric(t, "fermion_instance_warmups_total", "version", "0.4.0"); got < 1 {
		t.Errorf("warmups of 0.4.0 = %v, want at least its prewarmed instance", got)
	}
	if got := n.metric(t, "fermion_load_failures_total", "reason", "warmup"); got < 2 {
		t.Errorf("load failures for warmup = %v, want the two bad canaries", got)
	}
	served := 0.0
	mfs, err := n.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "fermion_requests_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "version" && l.GetValue() == "0.4.0" {
					served += s.GetCounter().GetValue()
				}
			}
		}
	}
	if served < 1 {
		t.Errorf("requests served by 0.4.0 = %v, want some at weight 100", served)
	}
}

// TestNodeWarmupKeepsFailing: a version that started fine, whose new instances then
// fail their hook (the backend the hook reaches went away), is reported failed with
// LastError "warmup: …" while it serves what it can; when the backend returns, a
// success makes it ready again.
func TestNodeWarmupKeepsFailing(t *testing.T) {
	if testing.Short() {
		t.Skip("a node through a backend outage")
	}
	var down atomic.Bool
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "backend down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer backend.Close()
	m, err := manifest.Parse("", []byte(fmt.Sprintf(`manifest_version = 1
[app]
name = "hello"
version = "0.1.0"
[component]
source = "dial.wasm"
warmup = "/warmup?url=%s/warm"
warmup_timeout = "2s"
[[routes]]
path = "/hello"
[capabilities]
allowed_outbound_hosts = ["http://127.0.0.1:*"]
[scaling]
min_warm = 1
max_requests_per_instance = 1
`, backend.URL)), "")
	if err != nil {
		t.Fatal(err)
	}
	reg := startRegistry(t)
	cp := startControlPlane(t, false)
	_, v := reg.pushApp(t, reg.host, "acme/hello", m, fermiontest.Guest(t, "examples/testdata/faults/dial", true))
	n := startNodeWith(t, cp, "w2", t.TempDir(), joinToken, true)
	cp.assign("w2", v1.AssignmentSet{Revision: 1, Assignments: []v1.Assignment{assignment("web", "w2", 1, v)}})
	state := func(want, errHas string) func() error {
		return func() error {
			s, ok := n.status("web")
			if !ok || s.State != want || !strings.Contains(s.LastError, errHas) {
				return fmt.Errorf("status %s %q, want %s with %q", s.State, s.LastError, want, errHas)
			}
			return nil
		}
	}
	// The first start compiles the guest: minutes on a loaded machine.
	fermiontest.WaitFor(t, 3*time.Minute, state(v1.InstanceReady, ""))
	url := n.url + "/hello?url=" + backend.URL + "/req"
	waitFor(t, func() error { return serves(url, "ok") })

	down.Store(true)
	// Every request uses up its instance, so each needs a new one, warmed first.
	waitFor(t, func() error {
		get(url)
		return state(v1.InstanceFailed, "warmup: hello@0.1.0: new instances keep failing: GET /warmup?url=")()
	})
	if s, _ := n.status("web"); !strings.HasPrefix(s.LastError, "warmup: ") || !strings.Contains(s.LastError, "answered 503") {
		t.Fatalf("LastError %q: want it to start with warmup: and give the answer", s.LastError)
	}

	down.Store(false)
	waitFor(t, func() error {
		get(url)
		return state(v1.InstanceReady, "")()
	})
	waitFor(t, func() error { return serves(url, "ok") })
}
