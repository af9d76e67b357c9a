package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	fclient "fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/agent"
	"fermion.dev/fermion/internal/agent/agenttest"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/oci"
)

// The end-to-end proof of issue 14: three real agents in regions eu, us and ap serve a
// real guest; a per-region availability SLO with short page windows watches it; one
// node's requests fail and a page for its region, and only its region, reaches
// Alertmanager (or, without one installed, a webhook receiver), shows in `fermion
// alerts` and `fermion slo status`, and resolves once the errors stop.

const e2eSLO = `name: status-availability
app: status
sli: availability
objective: 99.9
window: 1h
scope: region
alerting:
  tiers:
    - {severity: page, factor: 14.4, long: 1m, short: 5s}
runbook: https://runbooks.example/status-availability
`

// hookMsgs records what webhook receivers get (Alertmanager's and Fermion's bodies
// share this shape).
type hookMsgs struct {
	mu   sync.Mutex
	msgs []hookMsg
}

type hookMsg struct {
	Status string `json:"status"`
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

func (h *hookMsgs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var m hookMsg
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.msgs = append(h.msgs, m)
	h.mu.Unlock()
}

// pages counts the page alerts of app in status ("firing" or "resolved") by scope.
func (h *hookMsgs) pages(app, status string) map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for _, m := range h.msgs {
		for _, a := range m.Alerts {
			if a.Labels["severity"] == "page" && a.Labels["function"] == app && a.Status == status {
				out[a.Labels["scope"]]++
			}
		}
	}
	return out
}

// amAlert is one alert of Alertmanager's GET /api/v2/alerts.
type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	EndsAt      time.Time         `json:"endsAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

func amAlerts(base string) ([]amAlert, error) {
	resp, err := http.Get(base + "/api/v2/alerts")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("alertmanager alerts: %s", resp.Status)
	}
	var out []amAlert
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// startRegionNode runs a real agent (node and data plane, telemetry on) with region labels.
func startRegionNode(t *testing.T, natsURL, token, name, region string) string {
	t.Helper()
	return agenttest.Start(t, agenttest.Config{
		DataPlane: agent.DataPlaneConfig{CacheDir: t.TempDir(), DrainTimeout: 5 * time.Second, Telemetry: true,
			Labels: map[string]string{"node": name, "region": region}, SLIInterval: time.Second},
		Node: agent.NodeConfig{Name: name, Servers: []string{natsURL}, JoinToken: token,
			Labels: map[string]string{"region": region}, Capacity: v1.Resources{MemoryBytes: 4 << 30, Instances: 64},
			Registry: &oci.Client{HTTPClient: &http.Client{Timeout: 30 * time.Second}}},
	}).URL
}

// pushStatusGuest packages the status fault guest and pushes it to p's registry.
func pushStatusGuest(t *testing.T, p *cptest.Plane) string {
	t.Helper()
	return p.PushGuest(t, "examples/testdata/faults/status", "status", "0.1.0", artifact.Meta{})
}

// load sends requests to gw/status one after another until stop, asking for a 500
// while failing is set: at most one request in flight per node, so the load is
// bounded by the gateway's speed and the test's length.
func load(gw string, failing *atomic.Bool, stop <-chan struct{}, done *sync.WaitGroup, sent *atomic.Int64) {
	defer done.Done()
	hc := &http.Client{Timeout: 10 * time.Second}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		url := gw + "/status"
		if failing.Load() {
			url += "?status=500"
		}
		resp, err := hc.Get(url)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		sent.Add(1)
	}
}

// TestSLOPageEndToEnd is issue 14's "done when": errors on one node of three page for
// that node's region only, through the real agents, SLI stream, store, SLO engine and
// Alertmanager, and the page resolves after the errors stop.
func TestSLOPageEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a control plane, three agents and Alertmanager for about half a minute")
	}
	apiEnv(t)
	hook := &hookMsgs{}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)
	cfg := controlplane.Config{SLOInterval: time.Second}
	am := ""
	if bin := fermiontest.AlertmanagerBin(); bin != "" {
		am = fermiontest.StartAlertmanager(t, bin, hookSrv.URL)
		cfg.Alertmanagers = []string{am}
	} else {
		t.Log("Alertmanager not installed (apt-get install prometheus-alertmanager): the page goes to a webhook receiver")
		cfg.AlertWebhooks = []string{hookSrv.URL}
	}
	p := cptest.Start(t, cfg)
	ctx := context.Background()
	cl, err := fclient.New(p.API, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	fermion := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := run(t, append(args, "--server", p.API, "--token", p.Token)...)
		if code != 0 {
			t.Fatalf("fermion %s exited %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
		}
		return stdout
	}

	token := p.NodeToken(t)
	regions := []string{"eu", "us", "ap"}
	gws := map[string]string{}
	for _, r := range regions {
		gws[r] = startRegionNode(t, p.NATSURL(), token, "edge-"+r, r)
	}
	cptest.WaitNodes(t, p.Server, 3, v1.NodeReady, 30*time.Second)
	image := pushStatusGuest(t, p)
	if _, _, err := cl.PutDeployment(ctx, "status", v1.DeploymentSpec{Image: image, Daemon: true}, fclient.CreateOnly()); err != nil {
		t.Fatal(err)
	}
	for _, r := range regions {
		// Each node compiles the guest itself, all three at once: on a loaded 2-core
		// machine that once took more than a minute.
		fermiontest.WaitFor(t, 3*time.Minute, func() error {
			resp, err := http.Get(gws[r] + "/status")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", r, resp.Status)
			}
			return nil
		})
	}
	// The guest refuses a status it cannot send, so a typo in a test is not a 500.
	if resp, err := http.Get(gws["eu"] + "/status?status=abc"); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("GET /status?status=abc: %v %v, want 400", resp, err)
	} else {
		resp.Body.Close()
	}
	sloFile := writeFile(t, filepath.Join(t.TempDir(), "status.yaml"), e2eSLO)
	contains(t, "slo apply", fermion("slo", "apply", "-f", sloFile), "SLO status-availability version 1")

	failing := map[string]*atomic.Bool{}
	var sent atomic.Int64
	stop := make(chan struct{})
	var loads sync.WaitGroup
	for _, r := range regions {
		failing[r] = &atomic.Bool{}
		loads.Add(1)
		go load(gws[r], failing[r], stop, &loads, &sent)
	}
	stopLoad := sync.OnceFunc(func() { close(stop); loads.Wait() })
	t.Cleanup(stopLoad)

	// Every region's series has good requests before the errors start.
	fermiontest.WaitFor(t, 60*time.Second, func() error {
		st, err := cl.SLOStatus(ctx, "status-availability")
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, s := range st.Series {
			if s.Total > 0 {
				seen[s.Scope] = true
			}
		}
		if len(seen) < 3 {
			return fmt.Errorf("regions with SLIs: %v, want eu, us, ap", seen)
		}
		return nil
	})

	errorsFrom := time.Now()
	failing["eu"].Store(true)

	// The page for eu reaches the receiver (Alertmanager's webhook, or Fermion's).
	fermiontest.WaitFor(t, 90*time.Second, func() error {
		if n := hook.pages("status", "firing")["eu"]; n == 0 {
			return fmt.Errorf("no firing page for eu yet (%d requests sent)", sent.Load())
		}
		return nil
	})
	t.Logf("page for eu reached the receiver %s after the first 500", time.Since(errorsFrom).Round(100*time.Millisecond))
	if am != "" {
		// And Alertmanager holds it as active, scoped to eu.
		fermiontest.WaitFor(t, 30*time.Second, func() error {
			as, err := amAlerts(am)
			if err != nil {
				return err
			}
			for _, a := range as {
				if a.Labels["alertname"] == "FermionSLOBurnPage" && a.Labels["scope"] == "eu" && a.Labels["function"] == "status" &&
					a.Labels["slo"] == "status-availability" && a.Status.State == "active" &&
					a.Annotations["runbook_url"] == "https://runbooks.example/status-availability" {
					return nil
				}
			}
			return fmt.Errorf("alertmanager has no active page for eu: %+v", as)
		})
	}

	// The CLI shows it: an incident for status with eu's page firing, and the budget
	// of eu spent while us and ap keep theirs.
	out := fermion("alerts", "-o", "json")
	var al v1.AlertList
	if err := json.Unmarshal([]byte(out), &al); err != nil {
		t.Fatalf("alerts -o json: %v\n%s", err, out)
	}
	var firing []string
	for _, inc := range al.Incidents {
		for _, a := range inc.Alerts {
			if a.App == "status" && a.Phase == "firing" {
				firing = append(firing, a.Severity+"/"+a.Scope)
			}
		}
	}
	if len(firing) != 1 || firing[0] != "page/eu" {
		t.Errorf("fermion alerts: firing %v, want [page/eu]\n%s", firing, out)
	}
	contains(t, "fermion alerts", fermion("alerts"), "status", "eu", "page", "https://runbooks.example/status-availability")
	contains(t, "fermion slo status", fermion("slo", "status", "status-availability"), "status-availability", "eu", "us", "ap")
	st, err := cl.SLOStatus(ctx, "status-availability")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Series {
		spent := s.BudgetRemaining < 1
		if (s.Scope == "eu") != spent {
			t.Errorf("slo status: %s has budget remaining %.3f (good %d of %d)", s.Scope, s.BudgetRemaining, s.Good, s.Total)
		}
	}

	// The errors stop: the short window clears and the page resolves, at the receiver
	// and in Alertmanager (its endsAt passed, so it is no longer active).
	failing["eu"].Store(false)
	fermiontest.WaitFor(t, 90*time.Second, func() error {
		if n := hook.pages("status", "resolved")["eu"]; n == 0 {
			return fmt.Errorf("no resolved page for eu yet")
		}
		return nil
	})
	if am != "" {
		fermiontest.WaitFor(t, 30*time.Second, func() error {
			as, err := amAlerts(am)
			if err != nil {
				return err
			}
			for _, a := range as {
				if a.Labels["scope"] == "eu" && a.Status.State == "active" && (a.EndsAt.IsZero() || a.EndsAt.After(time.Now())) {
					return fmt.Errorf("alertmanager still has eu's page active, ends %s", a.EndsAt)
				}
			}
			return nil
		})
	}
	stopLoad()
	if al, err := cl.Alerts(ctx, true); err != nil {
		t.Fatal(err)
	} else {
		for _, inc := range al.Incidents {
			for _, a := range inc.Alerts {
				if a.App == "status" && a.Phase == "firing" {
					t.Errorf("after the errors stopped: %s/%s still firing", a.Severity, a.Scope)
				}
			}
		}
	}
	// Only eu ever paged.
	for _, status := range []string{"firing", "resolved"} {
		for scope, n := range hook.pages("status", status) {
			if scope != "eu" {
				t.Errorf("%d %s page notifications for %s, want none outside eu", n, status, scope)
			}
		}
	}
	t.Logf("%d requests sent in all", sent.Load())
}
