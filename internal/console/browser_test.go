package console_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/console"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/oci"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/slo"
)

// The browser tests drive Debian's Chromium (or FERMION_CHROMIUM) through chromedp
// against an in-process control plane with simulated agents and simulated traffic
// (SLI intervals fed to the SLO engine). They skip without a browser and in -short.

const traceTemplate = "http://jaeger.test:16686/trace/{trace_id}"

// slowestTrace is the trace id of the fleet's slowest request (startFleet).
var slowestTrace = [16]byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}

// The fleet the test runs against: 100 nodes and 20 deployments by default, so that the
// suite stays quick on a busy machine. The budgets (DESIGN.md: 1,000 nodes, 200
// deployments) are measured with FERMION_CONSOLE_FLEET=1000,200 (bench/RESULTS.md).
var simNodes, simDeployments = fleetSize()

func fleetSize() (int, int) {
	var n, d int
	if _, err := fmt.Sscanf(os.Getenv("FERMION_CONSOLE_FLEET"), "%d,%d", &n, &d); err == nil && n > 0 && d > 0 {
		return n, d
	}
	return 100, 20
}

func chromiumPath(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test: skipped in -short")
	}
	if p := os.Getenv("FERMION_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("browser test: no Chromium (apt-get install chromium, or set FERMION_CHROMIUM)")
	return ""
}

// traffic is the SLI store the SLO engine reads: slo.Intervals behind a lock, fed
// by a simulated fleet serving app-000 in three regions, us-east failing 5 %.
type traffic struct {
	mu sync.Mutex
	iv *slo.Intervals
}

func (s *traffic) Series(sp *slo.Spec, from, to time.Time) []slo.Series {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.iv.Series(sp, from, to)
}

func (s *traffic) Counts(se slo.Series, sli slo.SLI, from, to time.Time) slo.Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.iv.Counts(se, sli, from, to)
}

// record adds one 10 s interval ending at end for every region and the global scope.
func (s *traffic) record(end time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	avail := slo.SLI{Kind: slo.Availability}
	var g slo.Counts
	for _, r := range []struct {
		region string
		good   int64
	}{{"eu-west", 1000}, {"us-east", 950}, {"ap-south", 999}} {
		c := slo.Counts{Good: r.good, Total: 1000}
		g.Good, g.Total = g.Good+c.Good, g.Total+c.Total
		if err := s.iv.Add(slo.Series{App: "app-000", Version: "0.1.0", Scope: r.region}, slo.ScopeRegion, avail, end, c); err != nil {
			return err
		}
	}
	return s.iv.Add(slo.Series{App: "app-000", Version: "0.1.0", Scope: "global"}, slo.ScopeGlobal, avail, end, g)
}

type fixture struct {
	p    *cptest.Plane
	cl   *client.Client
	push func(name string, meta artifact.Meta) (string, error) // packages and pushes app name, returns its image

	// slowApp served the one request made slow in the fleet's SLIs (slowestTrace).
	slowApp string
}

func startFleet(t *testing.T) *fixture {
	t.Helper()
	src := &traffic{iv: slo.NewIntervals()}
	now := time.Now()
	for at := now.Add(-time.Hour); !at.After(now); at = at.Add(10 * time.Second) {
		if err := src.record(at); err != nil {
			t.Fatal(err)
		}
	}
	p := cptest.Start(t, controlplane.Config{SLISource: src, SLOInterval: time.Second,
		LeaseRenew: 5 * time.Second, LeaseLost: 60 * time.Second, TraceUIURL: traceTemplate})
	cl, err := client.New(p.API, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	// Live traffic: a new interval every 2 s (agents send every 10 s; faster here so
	// the numbers move while the test watches).
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case at := <-tick.C:
				src.record(at)
			}
		}
	}()

	// The fleet: simNodes simulated agents in three regions.
	join := p.NodeToken(t)
	regions := []string{"eu-west", "us-east", "ap-south"}
	agents := make([]*cptest.SimAgent, simNodes)
	t.Cleanup(func() {
		for _, a := range agents {
			if a != nil {
				a.Close()
			}
		}
	})
	if err := parallel(simNodes, 16, func(i int) error {
		a, err := cptest.JoinSimAgent(ctx, p.NATSURL(), join, fmt.Sprintf("edge-%04d", i), v1.Register{
			Labels:   map[string]string{"region": regions[i%3], "zone": fmt.Sprintf("%s-%d", regions[i%3], i%2)},
			Capacity: v1.Resources{MemoryBytes: 8 << 30, MilliCPU: 4000, Instances: 64}})
		agents[i] = a
		if err == nil {
			a.SetTelemetry(simTelemetry(i))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}

	// simDeployments deployments of the hello guest, each its own app and route.
	m, err := manifest.Load(filepath.Join(fermiontest.Root(t), "examples", "hello"))
	if err != nil {
		t.Fatal(err)
	}
	wasm := fermiontest.Guest(t, "examples/hello", true)
	oc := &oci.Client{Token: p.Token, HTTPClient: &http.Client{Timeout: 30 * time.Second}}
	push := func(name string, meta artifact.Meta) (string, error) {
		mi := *m
		mi.App.Name, mi.SLOs = name, nil
		mi.Routes = []manifest.Route{{Path: "/" + name}}
		a, err := artifact.Package(&mi, wasm, meta)
		if err != nil {
			return "", fmt.Errorf("package %s: %w", name, err)
		}
		tag := "v1"
		if meta.Revision != "" {
			tag = meta.Revision
		}
		image := p.Registry + "/" + name + ":" + tag
		ref, err := oci.ParseRef(image)
		if err != nil {
			return "", err
		}
		if _, err := oc.Push(ctx, ref, a); err != nil {
			return "", fmt.Errorf("push %s: %w", name, err)
		}
		return image, nil
	}
	if err := parallel(simDeployments, 8, func(i int) error {
		name := fmt.Sprintf("app-%03d", i)
		image, err := push(name, artifact.Meta{})
		if err != nil {
			return err
		}
		if _, _, err := cl.PutDeployment(ctx, name, v1.DeploymentSpec{Image: image, Nodes: 1 + i%3}, client.Unconditional()); err != nil {
			return fmt.Errorf("deploy %s: %w", name, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("fleet seeded: %d nodes, %d deployments", simNodes, simDeployments)
	fermiontest.WaitFor(t, 60*time.Second, func() error {
		l, err := cl.ListDeployments(ctx)
		if err != nil {
			return err
		}
		placed := 0
		for _, d := range l.Deployments {
			if len(d.Placement.Nodes) == d.Spec.Nodes {
				placed++
			}
		}
		if placed != simDeployments {
			return fmt.Errorf("%d of %d deployments placed", placed, simDeployments)
		}
		return nil
	})
	// Requests served on the nodes running app-001…: one 10 s interval of SLI
	// summaries from each, slower and failing more in us-east, into the fleet store.
	end := sli.Boundary(time.Now(), 10*time.Second)
	sent := 0
	slowApp := ""
	for _, a := range agents {
		names := a.Assignments()
		if len(names) == 0 || sent == 60 {
			continue
		}
		var n int
		fmt.Sscanf(a.Name, "edge-%d", &n)
		region := regions[n%3]
		agg := sli.NewAggregator(sli.Config{Node: a.Name, Start: end.Add(-10 * time.Second), FirstSeq: 1})
		for _, dep := range names {
			k := sli.Key{Deployment: dep, Version: m.App.Version, Route: "/" + dep}
			for i := range 200 {
				status, lat := 200, time.Duration(2+i%5)*time.Millisecond
				if region == "us-east" {
					lat *= 8
					if i%20 == 0 {
						status = 503
					}
				}
				agg.Record(k, status, lat, i == 0)
			}
			if slowApp == "" {
				// One request far slower than the rest: the Debug view's first slow request.
				slowApp = dep
				h := agg.Series(k)
				h.RecordRequest(&sli.Exemplar{Duration: 3 * time.Second, Status: 200, Start: end.Add(-5 * time.Second).UnixMilli(),
					TraceID: slowestTrace, Sampled: true, Instance: 2, Method: "GET", Path: "/" + dep + "/report"}, false)
				h.Release()
			}
		}
		sums := agg.Flush(end)
		reply, err := a.SendSLIs(ctx, sums)
		if err != nil || reply.Accepted != len(sums) {
			t.Fatalf("SLIs from %s: %+v, %v", a.Name, reply, err)
		}
		sent++
	}
	for _, src := range []string{
		"name: app-000-regions\napp: app-000\nsli: availability\nobjective: 99.9\nscope: region\nrunbook: https://runbooks.test/app-000\n",
		"name: app-000-global\napp: app-000\nsli: availability\nobjective: 99\nscope: global\n",
	} {
		if _, _, err := cl.ApplySLOs(ctx, v1.SLOApply{Source: src}); err != nil {
			t.Fatal(err)
		}
	}
	return &fixture{p: p, cl: cl, push: push, slowApp: slowApp}
}

// simTelemetry is node i's span export health: every tenth node spooling through a
// collector outage, node 1 failing, the rest ok.
func simTelemetry(i int) *v1.TelemetryHealth {
	now := time.Now().UTC()
	switch {
	case i == 1:
		return &v1.TelemetryHealth{Exporter: v1.ExporterFailing, LastError: "a 9000000-byte export is larger than the whole spool",
			LastErrorAt: now, LastExportAt: now.Add(-5 * time.Minute), Dropped: map[string]uint64{"full": 3}}
	case i%10 == 0:
		return &v1.TelemetryHealth{Exporter: v1.ExporterSpooling, LastError: "collector answered 503 Service Unavailable",
			LastErrorAt: now, LastExportAt: now.Add(-time.Minute), BacklogBytes: int64(i+1) << 20, BacklogPayloads: 10 * (i + 1)}
	}
	return &v1.TelemetryHealth{Exporter: v1.ExporterOK, LastExportAt: now}
}

// page wraps a browser tab with the few reads the tests need.
type page struct {
	t   *testing.T
	ctx context.Context
}

func (pg *page) run(steps ...chromedp.Action[chromedp.Void]) {
	pg.t.Helper()
	if err := chromedp.Do(pg.ctx, steps...); err != nil {
		pg.t.Fatal(err)
	}
}

// eval evaluates js in the page (awaiting a promise) and decodes its value.
func eval[T any](pg *page, js string) T {
	pg.t.Helper()
	v, err := chromedp.Run(pg.ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		pg.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// js runs a statement for its effect.
func js(src string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool]("(() => { "+src+"; return true })()")(ctx, t)
		return err
	})
}

func (pg *page) text(sel string) string {
	s, err := chromedp.Run(pg.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, sel)))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(s)
}

func (pg *page) count(sel string) int {
	return eval[int](pg, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

// show opens a view and waits until it has rendered data.
func (pg *page) show(view string) {
	pg.t.Helper()
	pg.run(js(fmt.Sprintf(`location.hash = "#/%s"`, view)))
	fermiontest.WaitFor(pg.t, 90*time.Second, func() error {
		if pg.text("nav a.on") == "" || pg.count("#view h1") == 0 {
			return fmt.Errorf("view %s not rendered; the page says %q", view, pg.text("body"))
		}
		return nil
	})
}

// equal polls until the page shows want(), both read afresh each time: the page
// polls every 2 s, so for a while it may show the value before.
func (pg *page) equal(what, sel string, want func() (string, error)) {
	pg.t.Helper()
	fermiontest.WaitFor(pg.t, 90*time.Second, func() error {
		w, err := want()
		if err != nil {
			return err
		}
		if got := pg.text(sel); got != w {
			return fmt.Errorf("%s: page shows %q, API says %q", what, got, w)
		}
		return nil
	})
}

func (pg *page) screenshot(name string) {
	dir := os.Getenv("FERMION_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	pg.t.Helper()
	b, err := chromedp.Run(pg.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		pg.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), b, 0o644); err != nil {
		pg.t.Fatal(err)
	}
}

// click clicks the element sel with the mouse. The page redraws a view when its data
// changes, so the element found may be replaced before the click lands: try again.
func (pg *page) click(sel string) {
	pg.t.Helper()
	fermiontest.WaitFor(pg.t, 90*time.Second, func() error {
		return chromedp.Do(pg.ctx, chromedp.Click(chromedp.CSS(sel)))
	})
}

// live waits until the page has polled the API since it was loaded or signed in.
func (pg *page) live() {
	pg.t.Helper()
	fermiontest.WaitFor(pg.t, 90*time.Second, func() error {
		if s := pg.text("#status"); !strings.HasPrefix(s, "live") {
			return fmt.Errorf("the page is not live; its status says %q", s)
		}
		return nil
	})
}

// clickUntil clicks sel until done holds. The page redraws a view when its data changes
// (with 200 deployments, every poll: each row says how long ago it changed), and a
// click whose target was replaced or moved between finding it and pressing the mouse
// lands elsewhere without an error: only the effect says it went through. sel must
// name the element in the state before the click (delete, then delete-confirm), so
// that a click that did go through is not repeated.
func (pg *page) clickUntil(sel string, done func() error) {
	pg.t.Helper()
	fermiontest.WaitFor(pg.t, 90*time.Second, func() error {
		if err := done(); err == nil {
			return nil
		}
		if pg.count(sel) > 0 {
			chromedp.Do(pg.ctx, chromedp.Click(chromedp.CSS(sel)))
		}
		return done()
	})
}

func (pg *page) signIn(token string) {
	pg.t.Helper()
	pg.run(chromedp.WaitVisible(chromedp.CSS("#signin")), chromedp.SetValue(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS("#nav")))
}

// TestConsoleInBrowser signs in, reads every view against the API while simulated
// traffic moves the numbers, acts as an admin, and checks a viewer cannot act. It
// logs the console's budgets (first render, bytes transferred, event latency).
func TestConsoleInBrowser(t *testing.T) {
	exe := chromiumPath(t)
	start := time.Now()
	f := startFleet(t)
	t.Logf("fleet of %d nodes and %d deployments up in %s", simNodes, simDeployments, time.Since(start).Round(time.Millisecond))
	ctx := context.Background()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.WindowSize(1440, 1000), chromedp.Flag("disable-gpu", true))
	actx, cancel := chromedp.NewExecAllocator(ctx, opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	bctx, cancel = context.WithTimeout(bctx, 10*time.Minute) // a hang guard, not a timing check
	defer cancel()
	pg := &page{t: t, ctx: bctx}

	var assetBytes int64
	t.Run("sign-in required", func(t *testing.T) {
		pg.t = t
		pg.run(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true})
			return err
		}), chromedp.Navigate(f.p.API+"/"), chromedp.WaitVisible(chromedp.CSS("#signin")))
		if !eval[bool](pg, `document.getElementById("nav").hidden && document.getElementById("view").textContent.trim() === ""`) {
			t.Fatal("the console shows data before sign-in")
		}
		// What a first visit downloads: every /ui/ file, as transferred (gzip).
		assetBytes = eval[int64](pg, `performance.getEntriesByType("navigation").concat(performance.getEntriesByType("resource"))
			.filter(e => new URL(e.name).pathname.startsWith("/ui/")).reduce((a, e) => a + e.transferSize, 0)`)
		if assetBytes == 0 || assetBytes > 300<<10 {
			t.Fatalf("assets transferred: %d bytes, want 1 to 300 KB", assetBytes)
		}
		pg.screenshot("signin")
		pg.run(chromedp.SetValue(chromedp.CSS("#token"), "fmn_not_a_token"), chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)))
		fermiontest.WaitFor(t, 90*time.Second, func() error {
			if !strings.Contains(pg.text("#signin-error"), "unknown, revoked or expired") {
				return fmt.Errorf("sign-in error %q", pg.text("#signin-error"))
			}
			return nil
		})
		if pg.count("#nav:not([hidden])") != 0 {
			t.Fatal("a refused token signed in")
		}
	})

	// First render, in rounds: a cold reload (cache off) with the token in the tab, from
	// navigation to the executive view drawn with the API's data; the baseline is the
	// same page fetching the same API reads and parsing them, without drawing.
	var firstRender, apiBaseline []float64
	t.Run("first render", func(t *testing.T) {
		pg.t = t
		pg.signIn(f.p.Token)
		// Chromium commits a sessionStorage write to its browser process asynchronously:
		// a reload issued within milliseconds of sign-in may load a page that does not see
		// the token yet and rightly shows the sign-in form (4 reloads in 30 did, measured;
		// 0 in 30 once the page had polled). That was this test's "reload hang" (see
		// docs/console.md, "Tests"). Reload once the page is live, as a person would.
		pg.live()
		for range 3 {
			pg.run(chromedp.Reload())
			var ms float64
			fermiontest.WaitFor(t, 90*time.Second, func() error {
				ms = eval[float64](pg, `window.fermionConsole ? window.fermionConsole.firstRender : 0`)
				if ms == 0 {
					if eval[bool](pg, `!document.getElementById("signin").hidden && !sessionStorage.getItem("fermion.token")`) {
						t.Fatalf("the reloaded page has no token in sessionStorage and shows the sign-in form (%q)", pg.text("#signin-error"))
					}
					return fmt.Errorf("not rendered yet; the page's status says %q", pg.text("#status"))
				}
				return nil
			})
			if ms > 60000 { // the budget is 1 s (bench/RESULTS.md); this only catches a hang
				t.Fatalf("first render after %.0f ms", ms)
			}
			firstRender = append(firstRender, ms)
			apiBaseline = append(apiBaseline, eval[float64](pg, `(async () => {
				const h = {Authorization: "Bearer " + sessionStorage.getItem("fermion.token"), Accept: "application/json"}, t0 = performance.now();
				await Promise.all(["/v1/nodes", "/v1/deployments", "/v1/alerts", "/v1/slos"].map(u => fetch(u, {headers: h}).then(r => r.json())));
				return performance.now() - t0; })()`))
			pg.live()
		}
		// Each reload ended the previous page's event stream on the server: the page
		// aborts it on pagehide, and the server ends a follow when its client goes.
		fermiontest.WaitFor(t, 90*time.Second, func() error {
			if n := followStreams(); n != 1 {
				return fmt.Errorf("the server follows %d event streams after 3 reloads, want 1", n)
			}
			return nil
		})
	})

	t.Run("executive", func(t *testing.T) {
		pg.t = t
		pg.show("executive")
		pg.equal("deployments", `[data-k="deployments-total"]`, func() (string, error) {
			l, err := f.cl.ListDeployments(ctx)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%d", len(l.Deployments)), nil
		})
		pg.equal("nodes ready", `[data-k="nodes-ready"]`, func() (string, error) {
			l, err := f.cl.ListNodes(ctx)
			if err != nil {
				return "", err
			}
			ready := 0
			for _, n := range l.Nodes {
				if n.State == v1.NodeReady {
					ready++
				}
			}
			return fmt.Sprintf("%s / %s", thousands(ready), thousands(len(l.Nodes))), nil
		})
		pg.equal("global success rate", `[data-k="success-rate"]`, func() (string, error) {
			st, err := f.cl.SLOStatus(ctx, "app-000-global")
			if err != nil {
				return "", err
			}
			var good, total int64
			for _, se := range st.Series {
				good, total = good+se.Good, total+se.Total
			}
			if total == 0 {
				return "", errors.New("no traffic in the SLO status yet")
			}
			return fmt.Sprintf("%.3f%%", float64(good)/float64(total)*100), nil
		})
		pg.equal("fleet success rate", `[data-k="fleet-success"]`, func() (string, error) {
			l, err := f.cl.SLIs(ctx, client.SLIQuery{By: []string{"region"}, Window: 5 * time.Minute})
			if err != nil {
				return "", err
			}
			var req, errs uint64
			for _, g := range l.Groups {
				req, errs = req+g.Requests, errs+g.Errors
			}
			if req == 0 {
				return "", errors.New("no requests in the fleet SLIs yet")
			}
			return fmt.Sprintf("%.3f%%", (1-float64(errs)/float64(req))*100), nil
		})
		pg.equal("us-east p99", `[data-k="region-rows"] tr[data-region="us-east"] .p99`, func() (string, error) {
			l, err := f.cl.SLIs(ctx, client.SLIQuery{By: []string{"region"}, Window: 5 * time.Minute, Region: "us-east"})
			if err != nil || len(l.Groups) != 1 {
				return "", fmt.Errorf("us-east SLIs: %+v, %v", l, err)
			}
			return fmt.Sprintf("%.1f ms", l.Groups[0].P99Ms), nil
		})
		pg.equal("SLO compliance", `[data-k="slo-compliance"]`, func() (string, error) {
			within, series := 0, 0
			for _, name := range []string{"app-000-regions", "app-000-global"} {
				st, err := f.cl.SLOStatus(ctx, name)
				if err != nil {
					return "", err
				}
				var obj float64
				fmt.Sscan(st.SLO.Objective, &obj)
				for _, se := range st.Series {
					if se.Total == 0 {
						continue
					}
					series++
					if float64(se.Good)/float64(se.Total) >= obj/100-1e-9 { // as the page: at the objective meets it
						within++
					}
				}
			}
			return fmt.Sprintf("%d / %d", within, series), nil
		})
		pg.screenshot("executive")
	})

	t.Run("on-call", func(t *testing.T) {
		pg.t = t
		pg.show("oncall")
		// us-east fails 5 % against a 99.9 % objective: the engine pages.
		pg.equal("alerts firing", `[data-k="oncall-firing"]`, func() (string, error) {
			al, err := f.cl.Alerts(ctx, false)
			if err != nil {
				return "", err
			}
			n := 0
			for _, inc := range al.Incidents {
				for _, a := range inc.Alerts {
					if a.Phase == "firing" {
						n++
					}
				}
			}
			if n == 0 {
				return "", errors.New("no alert firing yet")
			}
			return fmt.Sprint(n), nil
		})
		if pg.count(`[data-k="alert-rows"] a[href="https://runbooks.test/app-000"]`) == 0 {
			t.Error("no runbook link beside the firing alert")
		}
		pg.screenshot("oncall")
	})

	t.Run("debug", func(t *testing.T) {
		pg.t = t
		pg.show("debug")
		var dep string
		fermiontest.WaitFor(t, 90*time.Second, func() error {
			dep = eval[string](pg, `(document.getElementById("dep-select")||{}).value||""`)
			if dep == "" {
				return errors.New("no deployment selected")
			}
			return nil
		})
		pg.equal("instances ready", `[data-k="debug-ready"]`, func() (string, error) {
			st, err := f.cl.DeploymentStatus(ctx, dep)
			if err != nil {
				return "", err
			}
			s := fmt.Sprintf("%d of %d nodes ready ", st.Ready, st.Desired)
			if st.Converged {
				return s + "converged", nil
			}
			return s + "converging", nil
		})
		if n := pg.count(`[data-k="heatmap"] i`); n != simNodes {
			t.Errorf("heatmap has %d nodes, want %d", n, simNodes)
		}
		if n := pg.count(`[data-k="timeline"] li .chip`); n == 0 {
			t.Error("the instance timeline is empty")
		}
		// Exporter health per node, from the agents' heartbeats.
		for _, st := range []string{v1.ExporterSpooling, v1.ExporterFailing, v1.ExporterOK} {
			pg.equal(st+" exporters", `[data-k="telemetry-`+st+`"]`, func() (string, error) {
				l, err := f.cl.ListNodes(ctx)
				if err != nil {
					return "", err
				}
				n := 0
				for _, nd := range l.Nodes {
					if nd.Telemetry != nil && nd.Telemetry.Exporter == st {
						n++
					}
				}
				return thousands(n), nil
			})
		}
		pg.equal("the failing exporter's error", `[data-k="telemetry-rows"] tr[data-node="edge-0001"] td.err .msg`, func() (string, error) {
			n, err := f.cl.GetNode(ctx, "edge-0001")
			if err != nil || n.Telemetry == nil {
				return "", fmt.Errorf("edge-0001's telemetry: %v, %v", n, err)
			}
			return n.Telemetry.LastError, nil
		})
		// The slowest request first, its trace id linked through the template.
		fermiontest.WaitFor(t, 90*time.Second, func() error {
			got := eval[[]string](pg, `(() => { const tr = document.querySelector('[data-k="slow-requests"] tr');
				if (!tr) return [];
				const a = tr.querySelector("a[data-trace]");
				return [tr.dataset.traceId, a ? a.getAttribute("href") : "", tr.textContent]; })()`)
			id := hex.EncodeToString(slowestTrace[:])
			if len(got) != 3 || got[0] != id {
				return fmt.Errorf("first slow request %q, want trace %s", got, id)
			}
			if want := strings.Replace(traceTemplate, "{trace_id}", id, 1); got[1] != want {
				return fmt.Errorf("trace link %q, want %q", got[1], want)
			}
			for _, want := range []string{"3.00 s", f.slowApp, "GET /" + f.slowApp + "/report"} {
				if !strings.Contains(got[2], want) {
					return fmt.Errorf("first slow request %q lacks %q", got[2], want)
				}
			}
			return nil
		})
		pg.screenshot("debug")
		if os.Getenv("FERMION_CONSOLE_SCREENSHOTS") != "" {
			pg.run(js(`document.querySelector('[data-k="telemetry-counts"]').scrollIntoView()`))
			pg.screenshot("debug-telemetry")
			pg.run(js(`window.scrollTo(0, 0)`))
		}
	})

	// The Debug view's instance timelines against GET /v1/deployments/{name}/instances,
	// which the control plane answers by asking each node (the simulated agents answer
	// with cptest.SimInstances). A build whose API lacks the route (features.instances
	// false in /ui/config.json) skips this, saying so.
	t.Run("debug instance timeline", func(t *testing.T) {
		pg.t = t
		pg.show("debug")
		if !eval[bool](pg, `!!(window.fermionConsole.S.config.features || {}).instances`) {
			if pg.count(`[data-k="inst-panel"] .note`) == 0 || !strings.Contains(pg.text(`[data-k="inst-panel"]`), "does not report instance timelines") {
				t.Errorf("without the route the panel says %q, want that the server does not report them", pg.text(`[data-k="inst-panel"]`))
			}
			t.Skip("this build's API does not serve GET /v1/deployments/{name}/instances (features.instances is false): the instance timeline is checked where the agent side is merged")
		}
		dep := eval[string](pg, `document.getElementById("dep-select").value`)
		type row struct{ State, Requests, Errors, Reason string }
		fermiontest.WaitFor(t, 90*time.Second, func() error {
			var list v1.InstancesList
			if err := getJSON(ctx, f.p.API+"/v1/deployments/"+dep+"/instances", f.p.Token, &list); err != nil {
				return err
			}
			if len(list.Instances) == 0 {
				return fmt.Errorf("the API lists no instances of %s (unreachable: %+v)", dep, list.Unreachable)
			}
			want := map[string]row{}
			for _, in := range list.Instances {
				want[fmt.Sprintf("%s|%s#%d", in.Node, in.Version, in.ID)] = row{in.State, thousands(int(in.Requests)), fmt.Sprint(in.Errors), in.DiscardReason}
			}
			got := eval[map[string]row](pg, `(() => { const out = {};
				for (const tb of document.querySelectorAll('[data-k="inst-panel"] tbody[data-node]')) for (const tr of tb.querySelectorAll("tr[data-inst]")) {
					const r = tr.querySelector('[data-k="inst-reason"]');
					out[tb.dataset.node + "|" + tr.dataset.inst] = { State: tr.querySelector('[data-k="inst-state"]').textContent,
						Requests: tr.querySelector('[data-k="inst-requests"]').textContent, Errors: tr.querySelector('[data-k="inst-errors"]').textContent,
						Reason: r ? r.textContent : "" };
				}
				return out; })()`)
			if !reflect.DeepEqual(got, want) {
				return fmt.Errorf("the page shows %v, the API says %v", got, want)
			}
			var unreachable []string
			for _, u := range list.Unreachable {
				unreachable = append(unreachable, u.Node)
			}
			if shown := eval[[]string](pg, `[...document.querySelectorAll('[data-k="inst-unreachable"] [data-node]')].map((s) => s.dataset.node)`); len(shown)+len(unreachable) > 0 && !reflect.DeepEqual(shown, unreachable) {
				return fmt.Errorf("unreachable nodes: the page lists %q, the API %q", shown, unreachable)
			}
			return nil
		})
		if pg.count(`[data-k="inst-panel"] i[data-mark="disc"]`) == 0 {
			t.Error("no discard marks: every simulated version has a discarded instance")
		}
		if os.Getenv("FERMION_CONSOLE_SCREENSHOTS") != "" {
			pg.run(js(`document.querySelector('[data-k="inst-panel"]').scrollIntoView(); window.scrollBy(0, -120)`))
			pg.screenshot("debug-instances")
			pg.run(js(`window.scrollTo(0, 0)`))
		}
	})

	t.Run("nodes and deployments", func(t *testing.T) {
		pg.t = t
		pg.show("nodes")
		pg.equal("nodes", `[data-k="nodes-count"]`, func() (string, error) {
			l, err := f.cl.ListNodes(ctx)
			if err != nil {
				return "", err
			}
			return thousands(len(l.Nodes)), nil
		})
		pg.screenshot("nodes")
		pg.show("deployments")
		pg.equal("deployments", `[data-k="deployments-count"]`, func() (string, error) {
			l, err := f.cl.ListDeployments(ctx)
			if err != nil {
				return "", err
			}
			return fmt.Sprint(len(l.Deployments)), nil
		})
		pg.screenshot("deployments")
	})

	var eventLatency time.Duration
	t.Run("events", func(t *testing.T) {
		pg.t = t
		pg.show("events")
		src, err := os.ReadFile(filepath.Join(fermiontest.Root(t), "examples", "policies", "limits-ceiling.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.cl.ApplyPolicy(ctx, "limits-ceiling", v1.PolicyApply{Source: string(src), Mode: v1.PolicyModeAudit}); err != nil {
			t.Fatal(err)
		}
		applied := time.Now()
		evs, err := f.cl.Events(ctx, client.EventFilter{Type: v1.EventPolicyApplied})
		if err != nil || len(evs.Events) == 0 {
			t.Fatalf("events: %v, %v", evs, err)
		}
		sel := fmt.Sprintf(`[data-k="event-rows"] tr[data-seq="%d"]`, evs.Events[len(evs.Events)-1].Seq)
		fermiontest.WaitFor(t, 90*time.Second, func() error {
			if pg.count(sel) == 0 {
				return errors.New("the event is not on the page yet")
			}
			return nil
		})
		eventLatency = time.Since(applied)
		pg.screenshot("events")
	})

	t.Run("admin acts", func(t *testing.T) {
		pg.t = t
		pg.show("policies")
		fermiontest.WaitFor(t, 90*time.Second, func() error {
			if pg.count(`select[data-act="mode"][data-name="limits-ceiling"]`) == 0 {
				return errors.New("no mode control for the admin")
			}
			return nil
		})
		pg.screenshot("policies")
		pg.run(chromedp.SetValue(chromedp.CSS(`select[data-act="mode"][data-name="limits-ceiling"]`), "warn"),
			js(`document.querySelector('select[data-act="mode"][data-name="limits-ceiling"]').dispatchEvent(new Event("change", {bubbles: true}))`))
		fermiontest.WaitFor(t, 90*time.Second, func() error {
			p, err := f.cl.GetPolicy(ctx, "limits-ceiling")
			if err != nil {
				return err
			}
			if p.Mode != v1.PolicyModeWarn {
				return fmt.Errorf("policy mode %s, want warn", p.Mode)
			}
			return nil
		})

		pg.show("deployments")
		confirm := `button[data-act="delete-confirm"][data-name="app-000"]`
		pg.clickUntil(`button[data-act="delete"][data-name="app-000"]`, func() error {
			if pg.count(confirm) == 0 {
				return errors.New("no confirm button for app-000's delete")
			}
			return nil
		})
		pg.clickUntil(confirm, func() error {
			d, err := f.cl.GetDeployment(ctx, "app-000")
			if client.IsCode(err, v1.CodeNotFound) || (err == nil && d.Deleting) {
				return nil
			}
			return fmt.Errorf("app-000 still deployed (%v); the page's toast says %q, its status %q", err, pg.text(".toast"), pg.text("#status"))
		})
	})

	t.Run("rollback", func(t *testing.T) {
		pg.t = t
		first, err := f.cl.GetDeployment(ctx, "app-002")
		if err != nil {
			t.Fatal(err)
		}
		image, err := f.push("app-002", artifact.Meta{Revision: "v2"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.cl.PutDeployment(ctx, "app-002", v1.DeploymentSpec{Image: image, Nodes: first.Spec.Nodes}, client.Unconditional()); err != nil {
			t.Fatal(err)
		}
		pg.show("deployments")
		// The history button toggles, and with many deployments the view redraws on
		// every poll, so a click can land on a button a redraw just replaced: click
		// again while the button still offers to open the history, at most every 2 s
		// (its revisions load in between).
		historySel := `button[data-act="history"][data-name="app-002"]`
		var clicked time.Time
		fermiontest.WaitFor(t, 90*time.Second, func() error {
			if pg.count(`[data-k="revisions"] button[data-act="rollback"][data-name="app-002"][data-to="1"]`) > 0 {
				return nil
			}
			closed := eval[bool](pg, `(() => { const b = document.querySelector('button[data-act="history"][data-name="app-002"]'); return !!b && b.textContent.trim() === "history"; })()`)
			if closed && time.Since(clicked) > 2*time.Second {
				pg.click(historySel)
				clicked = time.Now()
			}
			return fmt.Errorf("no \"roll back to #1\" in app-002's history; the view says %q", pg.text("#view"))
		})
		before, err := f.cl.Revisions(ctx, "app-002")
		if err != nil {
			t.Fatal(err)
		}
		rbConfirm := `button[data-act="rollback-confirm"][data-name="app-002"][data-to="1"]`
		pg.clickUntil(`button[data-act="rollback"][data-name="app-002"][data-to="1"]`, func() error {
			if pg.count(rbConfirm) == 0 {
				return errors.New("no confirm button for app-002's rollback")
			}
			return nil
		})
		// The click made a new revision, a rollback to #1 with the console's message,
		// and the deployment runs #1's artifact again.
		pg.clickUntil(rbConfirm, func() error {
			h, err := f.cl.Revisions(ctx, "app-002")
			if err != nil {
				return err
			}
			if h.Current <= before.Current || len(h.Revisions) == 0 {
				return fmt.Errorf("app-002's current revision is #%d, want one after #%d", h.Current, before.Current)
			}
			c := h.Revisions[0].Change
			if c.Number != h.Current || c.Cause != v1.CauseRollback || c.RollbackOf != 1 || c.Message != "rolled back from the console" {
				return fmt.Errorf("app-002's newest revision: %+v, want a rollback to #1 from the console", c)
			}
			d, err := f.cl.GetDeployment(ctx, "app-002")
			if err != nil {
				return err
			}
			if d.Version.Digest != first.Version.Digest {
				return fmt.Errorf("app-002 runs %s, want the first revision's %s", d.Version.Digest, first.Version.Digest)
			}
			return nil
		})
		// And the page shows the new revision as current.
		fermiontest.WaitFor(t, 90*time.Second, func() error {
			if !strings.Contains(pg.text(`[data-k="revisions"] tr:first-child`), "current") {
				return fmt.Errorf("the history's first row is %q, want the rollback marked current", pg.text(`[data-k="revisions"] tr:first-child`))
			}
			return nil
		})
	})

	// A deployment's rollout in the line `fermion status` prints (v1.RolloutSummary's
	// Describe): in the deployments list and the Debug view while a canary waits at
	// its manual gate, and the outcome, with how long ago, once it was aborted.
	t.Run("rollout line", func(t *testing.T) {
		pg.t = t
		const dep = "app-004" // on two nodes: a one-node canary beside the stable one
		first, err := f.cl.GetDeployment(ctx, dep)
		if err != nil {
			t.Fatal(err)
		}
		image, err := f.push(dep, artifact.Meta{Revision: "v2"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.cl.PutDeployment(ctx, dep, v1.DeploymentSpec{Image: image, Nodes: first.Spec.Nodes,
			Rollout: &v1.RolloutStrategy{Kind: v1.RolloutCanary, Steps: []string{"1node", "manual", "100%nodes", "manual"}}}, client.Unconditional()); err != nil {
			t.Fatal(err)
		}
		// line is what `fermion status` says of dep's rollout now, once it says gated.
		line := func(terminal bool) func() (string, error) {
			return func() (string, error) {
				d, err := f.cl.GetDeployment(ctx, dep)
				if err != nil {
					return "", err
				}
				if r := d.RolloutStatus; r == nil || r.Terminal != terminal || (!terminal && !r.Gated) {
					return "", fmt.Errorf("%s's rollout status %+v: not yet at its gate or end", dep, r)
				}
				return d.RolloutStatus.Describe(), nil
			}
		}
		sel := `tr[data-dep="` + dep + `"] [data-k="rollout-line"]`
		pg.show("deployments")
		pg.equal("rollout line", sel, line(false))
		if got := pg.text(sel); !strings.Contains(got, "paused at a manual gate") {
			t.Errorf("the gated canary's line %q does not say it waits at a manual gate", got)
		}
		pg.screenshot("deployments-rollout")

		pg.show("debug")
		pg.run(js(`const s = document.getElementById("dep-select"); s.value = "` + dep + `"; s.dispatchEvent(new Event("change", {bubbles: true}))`))
		pg.equal("debug rollout line", `[data-k="debug-rollout"]`, line(false))

		if _, err := f.cl.RolloutAction(ctx, dep, v1.RolloutAbort, "wrong build"); err != nil {
			t.Fatal(err)
		}
		// An ended rollout's line adds how long ago it ended, by the page's clock and
		// the test's: the words before it must match, the age be seconds.
		pg.show("deployments")
		fermiontest.WaitFor(t, 90*time.Second, func() error {
			want, err := line(true)()
			if err != nil {
				return err
			}
			got := pg.text(sel)
			age, ok := strings.CutPrefix(got, want+" (")
			if !ok || !strings.HasSuffix(age, "s ago)") || !strings.Contains(want, "wrong build") {
				return fmt.Errorf("rollout line: page shows %q, API says %q and an age in seconds", got, want)
			}
			return nil
		})
	})

	t.Run("viewer cannot act", func(t *testing.T) {
		pg.t = t
		tok, err := f.cl.CreateToken(ctx, v1.TokenRequest{Role: v1.RoleViewer, Description: "console test"})
		if err != nil {
			t.Fatal(err)
		}
		pg.click("#signout")
		pg.signIn(tok.Secret)
		pg.show("deployments")
		pg.equal("deployments", `[data-k="deployments-count"]`, func() (string, error) {
			l, err := f.cl.ListDeployments(ctx)
			if err != nil {
				return "", err
			}
			return fmt.Sprint(len(l.Deployments)), nil
		})
		if n := pg.count(`#view button[data-act]:not([data-act="history"])`); n != 0 {
			t.Errorf("a viewer sees %d action buttons on deployments", n)
		}
		// History is for everyone to read; rollback buttons in it only for deployers.
		pg.click(`button[data-act="history"][data-name="app-001"]`)
		fermiontest.WaitFor(t, 90*time.Second, func() error {
			if pg.count(`[data-k="revisions"]`) > 0 || strings.Contains(pg.text("#view"), "keeps no deployment history") {
				return nil
			}
			return errors.New("no history shown for app-001")
		})
		if n := pg.count(`#view button[data-act^="rollback"]`); n != 0 {
			t.Errorf("a viewer sees %d rollback buttons", n)
		}
		pg.show("nodes")
		if n := pg.count(`#view button[data-act]`); n != 0 {
			t.Errorf("a viewer sees %d action buttons on nodes", n)
		}
		pg.show("policies")
		if n := pg.count(`#view select[data-act]`); n != 0 {
			t.Errorf("a viewer sees %d policy controls", n)
		}
		// And the API refuses what the page would not offer.
		status := eval[int](pg, `fetch("/v1/deployments/app-001", {method: "DELETE", headers: {Authorization: "Bearer " + sessionStorage.getItem("fermion.token")}}).then(r => r.status)`)
		if status != http.StatusForbidden {
			t.Errorf("a viewer's DELETE got %d, want 403", status)
		}
		if _, err := f.cl.GetDeployment(ctx, "app-001"); err != nil {
			t.Errorf("app-001 after the viewer's attempt: %v", err)
		}
	})

	t.Logf("console budgets: first render %.0f ms per round (%d nodes, %d deployments); API reads alone %.0f ms; assets transferred %d bytes; event shown after %s",
		firstRender, simNodes, simDeployments, apiBaseline, assetBytes, eventLatency.Round(time.Millisecond))
}

// parallel runs fn for 0..n-1 on at most workers goroutines and returns the first error.
func parallel(n, workers int, fn func(i int) error) error {
	sem := make(chan struct{}, workers)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// thousands formats n as the page does (en-US grouping).
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// followStreams counts the server's /v1/events follow handlers running now.
func followStreams() int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "controlplane.(*api).apiEvents(")
}

// newBrowser starts Chromium for one test and returns a tab's context, bounded.
func newBrowser(t *testing.T, exe string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.WindowSize(1440, 1000), chromedp.Flag("disable-gpu", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	bctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	bctx, cancel = context.WithTimeout(bctx, 3*time.Minute)
	t.Cleanup(cancel)
	return bctx
}

// TestRolloutPanelInBrowser feeds the rollout panel (assets/rollout.js) the API's
// v1.Rollout JSON in Chromium and reads what it drew: the phase, the steps with the
// current one marked, the weight, the canary nodes, every check's numbers, and the
// buttons a deployer gets (none for a viewer, none once the rollout ended).
func TestRolloutPanelInBrowser(t *testing.T) {
	pg := panelPage(t)

	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	running := v1.Rollout{
		Deployment: "shop",
		From:       v1.RolloutRevision{Number: 3, Version: "1.2.0", Digest: "sha256:" + strings.Repeat("a", 64)},
		To:         v1.RolloutRevision{Number: 4, Version: "1.3.0", Digest: "sha256:" + strings.Repeat("b", 64)},
		Strategy:   v1.RolloutStrategy{Kind: v1.RolloutCanary, Steps: []string{"1node", "10%", "50%"}, Interval: "1m"},
		Steps:      []string{"1node", "10%", "50%"}, Step: 1, Phase: "analysing", Weight: 10,
		CanaryNodes: []string{"edge-0001", "edge-0002"},
		Verdicts: []v1.RolloutVerdict{{Step: 0, At: at, Result: "pass", Checks: []v1.RolloutCheck{
			{Check: "error_ratio", Result: "pass", Canary: 0.0021, Stable: 0.0019, Threshold: 0.01, P: 0.4321, NCanary: 1200, NStable: 10800},
			{Check: "p99_ratio", Result: "inconclusive", Canary: 41.5, Stable: 40.25, Threshold: 1.5, P: -1, NCanary: 90, NStable: 10800, Reason: "too few requests"},
		}}},
		Started: at.Add(-3 * time.Minute), Updated: at,
	}
	paused := running
	paused.Phase = "paused"
	ended := running
	ended.Phase, ended.Terminal, ended.Step, ended.Reason = "rolled_back", true, 1, "error_ratio failed at step 2: 5.1% against 1%"
	ended.Verdicts = append(append([]v1.RolloutVerdict{}, running.Verdicts...), v1.RolloutVerdict{Step: 1, At: at, Result: "fail", Checks: []v1.RolloutCheck{
		{Check: "error_ratio", Result: "fail", Canary: 0.051, Stable: 0.002, Threshold: 0.01, P: 0.0001, NCanary: 5000, NStable: 45000}}})

	type drawn struct {
		Phase, Weight, Reason, Nodes, Current string
		Steps, Checks                         int
		Buttons                               []string
		ErrorRatio                            []string // canary, stable, threshold, p, n of the newest error_ratio row
		P99                                   []string
	}
	for _, tc := range []struct {
		name   string
		r      v1.Rollout
		canAct bool
		want   drawn
	}{
		{"analysing, deployer", running, true, drawn{Phase: "analysing", Weight: "10%", Nodes: "edge-0001edge-0002", Current: "10%", Steps: 3, Checks: 2,
			Buttons: []string{"promote", "pause", "abort"}, ErrorRatio: []string{"0.0021", "0.0019", "0.01", "0.4321", "1,200 / 10,800"},
			P99: []string{"41.5", "40.25", "1.5", "—", "90 / 10,800"}}},
		{"analysing, viewer", running, false, drawn{Phase: "analysing", Weight: "10%", Nodes: "edge-0001edge-0002", Current: "10%", Steps: 3, Checks: 2,
			ErrorRatio: []string{"0.0021", "0.0019", "0.01", "0.4321", "1,200 / 10,800"}, P99: []string{"41.5", "40.25", "1.5", "—", "90 / 10,800"}}},
		{"paused, deployer", paused, true, drawn{Phase: "paused", Weight: "10%", Nodes: "edge-0001edge-0002", Current: "10%", Steps: 3, Checks: 2,
			Buttons: []string{"promote", "resume", "abort"}, ErrorRatio: []string{"0.0021", "0.0019", "0.01", "0.4321", "1,200 / 10,800"},
			P99: []string{"41.5", "40.25", "1.5", "—", "90 / 10,800"}}},
		{"rolled back, deployer", ended, true, drawn{Phase: "rolled back", Reason: ended.Reason, Nodes: "edge-0001edge-0002", Steps: 3, Checks: 3,
			ErrorRatio: []string{"0.051", "0.002", "0.01", "0.0001", "5,000 / 45,000"}, P99: []string{"41.5", "40.25", "1.5", "—", "90 / 10,800"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pg.t = t
			b, err := json.Marshal(tc.r)
			if err != nil {
				t.Fatal(err)
			}
			got := eval[drawn](pg, fmt.Sprintf(`(async () => {
				const m = await import("/ui/rollout.js");
				let el = document.getElementById("panel-test");
				if (!el) { el = document.createElement("div"); el.id = "panel-test"; document.body.append(el); }
				el.innerHTML = m.rolloutPanel("shop", %s, {canAct: %t, now: %d});
				const q = (s) => (el.querySelector(s) || {}).textContent || "";
				const cells = (tr) => tr ? ["canary", "stable", "threshold", "p", "n"].map((c) => tr.querySelector("td." + c).textContent) : null;
				return {
					Phase: q('[data-k="rollout-phase"]'), Weight: q('[data-k="rollout-weight"]'), Reason: q('[data-k="rollout-reason"]'),
					Nodes: q('[data-k="rollout-canary-nodes"]'), Current: q('li[aria-current="step"]'),
					Steps: el.querySelectorAll('[data-k="rollout-steps"] li').length, Checks: el.querySelectorAll("tr[data-check]").length,
					Buttons: [...el.querySelectorAll('button[data-act="rollout"]')].map((b) => b.dataset.to),
					ErrorRatio: cells(el.querySelector('tr[data-check="error_ratio"]')), P99: cells(el.querySelector('tr[data-check="p99_ratio"]')),
				};
			})()`, b, tc.canAct, at.UnixMilli()))
			if len(got.Buttons) == 0 {
				got.Buttons = nil // JSON's [] for none
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("drew\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
	t.Run("no rollout", func(t *testing.T) {
		pg.t = t
		got := eval[string](pg, `import("/ui/rollout.js").then((m) => m.rolloutPanel("shop", null, {canAct: true}))`)
		if !strings.Contains(got, "no rollout") || strings.Contains(got, "<button") {
			t.Errorf("no rollout drew %q", got)
		}
	})
	t.Run("abort asks twice", func(t *testing.T) {
		pg.t = t
		b, _ := json.Marshal(running)
		got := eval[[]string](pg, fmt.Sprintf(`import("/ui/rollout.js").then((m) => m.rolloutActions(%s, "abort").map((a) => a.action))`, b))
		if !reflect.DeepEqual(got, []string{"promote", "pause", "abort-confirm"}) {
			t.Errorf("actions awaiting an abort's confirmation: %v", got)
		}
	})
}

// TestRolloutLineInBrowser feeds rolloutLine (assets/rollout.js) the API's
// v1.RolloutSummary JSON in Chromium: it must print the line `fermion status` prints,
// api/v1's Describe and, once the rollout ended, how long ago in the CLI's words.
func TestRolloutLineInBrowser(t *testing.T) {
	pg := panelPage(t)
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	v1r := v1.RolloutRevision{Number: 1, Version: "1.0.0", Digest: "sha256:" + strings.Repeat("a", 64)}
	v2r := v1.RolloutRevision{Number: 2, Version: "2.0.0", Digest: "sha256:" + strings.Repeat("b", 64)}
	rebuild := v1.RolloutRevision{Number: 3, Version: "1.0.0"}
	canary := v1.RolloutSummary{Kind: "canary", Phase: "analysing", Step: 1, Steps: 4, StepText: "10%", Weight: 10, From: v1r, To: v2r, Updated: now.Add(-time.Minute)}
	with := func(f func(r *v1.RolloutSummary)) v1.RolloutSummary {
		r := canary
		f(&r)
		return r
	}
	for _, tc := range []struct {
		name string
		r    v1.RolloutSummary
		want string // with the age an ended rollout adds
	}{
		{"analysing", canary, "rolling out: step 2/4 (10%) canary 2.0.0"},
		{"gated, one app version", with(func(r *v1.RolloutSummary) {
			r.Phase, r.Gated, r.Step, r.Steps, r.StepText, r.From, r.To = "paused", true, 0, 2, "1node, manual", v1r, rebuild
		}), "rolling out: step 1/2 (1node, manual) canary 1.0.0 (revision 3), paused at a manual gate"},
		{"paused rolling", with(func(r *v1.RolloutSummary) {
			r.Kind, r.Phase, r.Step, r.Steps, r.StepText = "rolling", "paused", 0, 3, "batch 1: 2 nodes"
		}), "rolling out: step 1/3 (batch 1: 2 nodes) rolling 2.0.0, paused"},
		{"no kind, no step text", with(func(r *v1.RolloutSummary) { r.Kind, r.StepText = "", "" }), "rolling out: step 2/4 rollout 2.0.0"},
		{"no versions", with(func(r *v1.RolloutSummary) {
			r.From, r.To = v1.RolloutRevision{Number: 1}, v1.RolloutRevision{Number: 2}
		}), "rolling out: step 2/4 (10%) canary revision 2"},
		{"promoting", with(func(r *v1.RolloutSummary) { r.Phase, r.Step = "promoting", 4 }), "rolling out: promoting 2.0.0 to every node"},
		{"succeeded", with(func(r *v1.RolloutSummary) {
			r.Phase, r.Terminal, r.Step, r.Reason, r.Updated = "succeeded", true, 4, "promoted", now.Add(-3*time.Minute-50*time.Second)
		}), "rolled out: 2.0.0 on every node (3m ago)"},
		{"rolled back", with(func(r *v1.RolloutSummary) {
			r.Phase, r.Terminal, r.Reason, r.Updated = "rolled_back", true, "error_ratio failed at step 2: 5.1% against 1%", now.Add(-59*time.Second)
		}), "rolled back at step 2/4 (10%) to 1.0.0: error_ratio failed at step 2: 5.1% against 1% (59s ago)"},
		{"aborted while promoting", with(func(r *v1.RolloutSummary) {
			r.Phase, r.Terminal, r.Step, r.Reason, r.Updated = "aborted", true, 4, "wrong build", now.Add(-47*time.Hour)
		}), "rollout aborted while promoting, back to 1.0.0: wrong build (47h ago)"},
		{"failed days ago", with(func(r *v1.RolloutSummary) {
			r.Phase, r.Terminal, r.Reason, r.Updated = "failed", true, "no node could run it", now.Add(-6*24*time.Hour)
		}), "rollout failed at step 2/4 (10%), back to 1.0.0: no node could run it (6d ago)"},
		{"ended long ago", with(func(r *v1.RolloutSummary) {
			r.Phase, r.Terminal, r.Reason, r.Updated = "aborted", true, "", now.Add(-10*24*time.Hour)
		}), "rollout aborted at step 2/4 (10%), back to 1.0.0 (2026-11-26)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pg.t = t
			// What `fermion status` prints: Describe, and the age of an ended rollout.
			if d := tc.r.Describe(); d != tc.want && !strings.HasPrefix(tc.want, d+" (") {
				t.Fatalf("Describe says %q: the case's want %q is not what fermion status prints", d, tc.want)
			}
			b, err := json.Marshal(tc.r)
			if err != nil {
				t.Fatal(err)
			}
			got := eval[string](pg, fmt.Sprintf(`import("/ui/rollout.js").then((m) => m.rolloutLine(%s, %d))`, b, now.UnixMilli()))
			if got != tc.want {
				t.Errorf("rolloutLine says\n%q\nfermion status says\n%q", got, tc.want)
			}
		})
	}
}

// TestCountInBrowser: the console counts things (fmt.js, count) as the CLI and the API
// do (api/v1's Count), so that neither says "1 nodes".
func TestCountInBrowser(t *testing.T) {
	pg := panelPage(t)
	type c struct {
		N    int    `json:"n"`
		Noun string `json:"noun"`
	}
	var cases []c
	for _, noun := range []string{"node", "instance", "policy", "key", "batch", "bus", "box", "mesh", "older discarded instance"} {
		for _, n := range []int{0, 1, 2, 1234} {
			cases = append(cases, c{n, noun})
		}
	}
	b, _ := json.Marshal(cases)
	got := eval[[]string](pg, fmt.Sprintf(`import("/ui/fmt.js").then((m) => %s.map((c) => m.count(c.n, c.noun)))`, b))
	for i, tc := range cases {
		// The console writes thousands with commas, as num does everywhere on the page.
		want := strings.Replace(v1.Count(tc.N, tc.Noun), "1234", "1,234", 1)
		if i >= len(got) {
			t.Fatalf("count answered %d cases of %d", len(got), len(cases))
		}
		if got[i] != want {
			t.Errorf("count(%d, %q) = %q, want %q", tc.N, tc.Noun, got[i], want)
		}
	}
}

// TestSlowestPanelInBrowser feeds the slowest-requests panel (assets/slowest.js) the
// API's v1.SlowestRequests JSON in Chromium: a hostile path and app name are text, not
// markup; a well-formed trace id links through the template and a malformed one does
// not; no template, no links; a link never takes a non-http(s) URL.
func TestSlowestPanelInBrowser(t *testing.T) {
	pg := panelPage(t)

	good := strings.Repeat("ab", 16)
	list, _ := json.Marshal(v1.SlowestRequests{Window: "15m", Requests: []v1.SlowRequest{
		{App: `<img src=x onerror="window.pwned=1">`, Version: "1", Node: "n1", Route: "/", Method: "GET", Path: `/"><script>window.pwned=1</script>`,
			Status: 504, DurationMs: 2500, Start: time.Now(), TraceID: good, Sampled: true, Instance: 3},
		{App: "b", Version: "1", Node: "n2", Route: "/", Method: "POST", Path: "/b", Status: 200, DurationMs: 12.5, Start: time.Now(), TraceID: `"><b>x</b>`},
	}})
	type drawn struct {
		Rows, Links, Scripts, Imgs int
		Hrefs                      []string
		Pwned                      bool
	}
	for _, tc := range []struct {
		name, template string
		want           drawn
	}{
		{"template", traceTemplate, drawn{Rows: 2, Links: 1, Hrefs: []string{strings.Replace(traceTemplate, "{trace_id}", good, 1)}}},
		{"no template", "", drawn{Rows: 2}},
		{"script template", "javascript:alert(1)//{trace_id}", drawn{Rows: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pg.t = t
			tmpl, _ := json.Marshal(tc.template)
			got := eval[drawn](pg, fmt.Sprintf(`(async () => {
				const m = await import("/ui/slowest.js");
				let el = document.getElementById("panel-test");
				if (!el) { el = document.createElement("div"); el.id = "panel-test"; document.body.append(el); }
				el.innerHTML = m.slowestPanel(%s, %s);
				return { Rows: el.querySelectorAll('[data-k="slow-requests"] tr').length, Links: el.querySelectorAll("a").length,
					Scripts: el.querySelectorAll("script").length, Imgs: el.querySelectorAll("img").length,
					Hrefs: [...el.querySelectorAll("a")].map((a) => a.getAttribute("href")), Pwned: !!window.pwned };
			})()`, list, tmpl))
			if len(got.Hrefs) == 0 {
				got.Hrefs = nil
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("drew %+v, want %+v", got, tc.want)
			}
		})
	}
	t.Run("none and not served", func(t *testing.T) {
		pg.t = t
		got := eval[[]string](pg, `import("/ui/slowest.js").then((m) => [m.slowestPanel({window: "5m", requests: []}, ""), m.slowestPanel(null, "")])`)
		if !strings.Contains(got[0], "No slow requests reported in the last 5m") || !strings.Contains(got[1], "does not report slow requests") {
			t.Errorf("drew %q", got)
		}
	})
}

// TestInstancesPanelInBrowser feeds the instance timeline panel (assets/instances.js)
// the API's v1.InstancesList JSON, made of the simulated agents' timelines
// (cptest.SimInstances), in Chromium and reads what it drew: a row per instance under
// its node with the state, counts and discard reason the API gave, one mark per
// readiness, first request, failed request and discard, bars within the axis; hostile
// names as text; unreachable nodes listed; the row bound; no route and a failed read.
func TestInstancesPanelInBrowser(t *testing.T) {
	pg := panelPage(t)

	since := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	stable := v1.Version{Version: "1.4.0", Digest: "sha256:" + strings.Repeat("a", 64)}
	canary := v1.Version{Version: "1.5.0", Digest: "sha256:" + strings.Repeat("b", 64)}
	var list v1.InstancesList
	for _, node := range []string{"edge-0002", "edge-0001", `<img src=x onerror="window.pwned=1">`} {
		list.Instances = append(list.Instances, cptest.SimInstances(node, "shop", stable, false, since)...)
	}
	list.Instances = append(list.Instances, cptest.SimInstances("edge-0001", "shop", canary, true, since.Add(-time.Minute))...)
	list.Instances[0].DiscardDetail = `<script>window.pwned=1</script>` // on a live instance: never shown
	list.Unreachable = []v1.NodeError{{Node: "edge-0009", Error: "no answer within 2s"}}
	list.Dropped = 7

	type row struct {
		State, Requests, Errors, Reason, ReasonTitle string
		Marks                                        map[string]int
		Left, Width                                  float64
	}
	type drawn struct {
		Rows, Scripts, Imgs int
		Nodes, Unreachable  []string
		Summary             string
		ByKey               map[string]row
		Pwned               bool
	}
	draw := func(t *testing.T, l any, now time.Time) drawn {
		t.Helper()
		b, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		pg.t = t
		return eval[drawn](pg, fmt.Sprintf(`(async () => {
			const m = await import("/ui/instances.js");
			document.getElementById("signin").hidden = true;
			const el = document.getElementById("view");
			el.innerHTML = "<h2>Instance timeline of shop, per node</h2>" + m.instancesPanel("shop", %s, %d);
			const byKey = {};
			for (const tb of el.querySelectorAll("tbody[data-node]")) for (const tr of tb.querySelectorAll("tr[data-inst]")) {
				const marks = {};
				for (const i of tr.querySelectorAll("i[data-mark]")) marks[i.dataset.mark] = (marks[i.dataset.mark] || 0) + 1;
				const r = tr.querySelector('[data-k="inst-reason"]'), bar = tr.querySelector(".tlbar > b");
				byKey[tb.dataset.node + "|" + tr.dataset.inst] = { State: tr.querySelector('[data-k="inst-state"]').textContent,
					Requests: tr.querySelector('[data-k="inst-requests"]').textContent, Errors: tr.querySelector('[data-k="inst-errors"]').textContent,
					Reason: r ? r.textContent : "", ReasonTitle: r ? r.title : "", Marks: marks,
					Left: parseFloat(bar.style.left), Width: parseFloat(bar.style.width) };
			}
			return { Rows: el.querySelectorAll("tr[data-inst]").length, Scripts: el.querySelectorAll("script").length, Imgs: el.querySelectorAll("img").length,
				Nodes: [...el.querySelectorAll("tbody[data-node]")].map((tb) => tb.dataset.node),
				Unreachable: [...el.querySelectorAll('[data-k="inst-unreachable"] [data-node]')].map((s) => s.dataset.node),
				Summary: (el.querySelector('[data-k="inst-summary"]') || {}).textContent || "", ByKey: byKey, Pwned: !!window.pwned };
		})()`, b, now.UnixMilli()))
	}

	t.Run("timelines", func(t *testing.T) {
		got := draw(t, list, since.Add(time.Minute))
		if got.Rows != len(list.Instances) || got.Scripts != 0 || got.Imgs != 0 || got.Pwned {
			t.Fatalf("drew %d rows (want %d), %d scripts, %d images, pwned %v", got.Rows, len(list.Instances), got.Scripts, got.Imgs, got.Pwned)
		}
		if want := []string{`<img src=x onerror="window.pwned=1">`, "edge-0001", "edge-0002"}; !reflect.DeepEqual(got.Nodes, want) {
			t.Errorf("nodes %q, want %q (sorted, names as text)", got.Nodes, want)
		}
		if !reflect.DeepEqual(got.Unreachable, []string{"edge-0009"}) {
			t.Errorf("unreachable %q, want edge-0009", got.Unreachable)
		}
		live := 0
		for _, in := range list.Instances {
			if in.State != "discarded" {
				live++
			}
		}
		if want := fmt.Sprintf("%d instances on 3 nodes · %d live · %d discarded · 7 older discarded instances no longer held by their nodes", len(list.Instances), live, len(list.Instances)-live); got.Summary != want {
			t.Errorf("summary %q, want %q", got.Summary, want)
		}
		for _, in := range list.Instances {
			key := fmt.Sprintf("%s|%s#%d", in.Node, in.Version, in.ID)
			r, ok := got.ByKey[key]
			if !ok {
				t.Errorf("no row for %s", key)
				continue
			}
			want := row{State: in.State, Requests: thousands(int(in.Requests)), Errors: fmt.Sprint(in.Errors), Marks: map[string]int{}, Left: r.Left, Width: r.Width}
			if in.Errors > 0 {
				want.Marks["fail"] = int(in.Errors)
			}
			if in.Requests > 0 {
				want.Marks["first"] = 1
			}
			if in.State == "discarded" {
				want.Reason, want.ReasonTitle = in.DiscardReason, in.DiscardDetail
				want.Marks["disc"] = 1
			}
			if in.DiscardReason != "warmup" { // a warmup failure never became ready
				want.Marks["init"] = 1
			}
			if !reflect.DeepEqual(r, want) {
				t.Errorf("%s drawn\n%+v\nwant\n%+v", key, r, want)
			}
			if r.Left < 0 || r.Width <= 0 || r.Left+r.Width > 100.01 {
				t.Errorf("%s: bar at %.2f%% width %.2f%%, outside the axis", key, r.Left, r.Width)
			}
		}
		pg.screenshot("debug-instances")
	})
	t.Run("one instance on one node", func(t *testing.T) {
		one := v1.InstancesList{Instances: cptest.SimInstances("edge-0001", "shop", stable, false, since)[:1], Dropped: 1}
		one.Instances[0].State, one.Instances[0].DiscardReason = "idle", ""
		got := draw(t, one, since.Add(time.Minute))
		if want := "1 instance on 1 node · 1 live · 0 discarded · 1 older discarded instance no longer held by their nodes"; got.Summary != want {
			t.Errorf("summary %q, want %q", got.Summary, want)
		}
		if head := pg.text(`tbody[data-node="edge-0001"] tr.node`); !strings.Contains(head, "1 instance, 1 live") {
			t.Errorf("node heading %q, want it to count 1 instance", head)
		}
	})
	t.Run("row bound", func(t *testing.T) {
		var big v1.InstancesList
		for i := 0; len(big.Instances) < 450; i++ {
			big.Instances = append(big.Instances, cptest.SimInstances(fmt.Sprintf("edge-%04d", i), "shop", stable, false, since)...)
		}
		got := draw(t, big, since)
		if max := eval[int](pg, `import("/ui/instances.js").then((m) => m.MAX_ROWS)`); got.Rows != max {
			t.Errorf("drew %d rows of %d, want the bound %d", got.Rows, len(big.Instances), max)
		}
		if !strings.Contains(pg.text(`[data-k="inst-more"]`), fmt.Sprintf("of %d instances", len(big.Instances))) {
			t.Errorf("no note that rows were left out: %q", pg.text(`[data-k="inst-more"]`))
		}
	})
	t.Run("discard reasons", func(t *testing.T) {
		pg.t = t
		// A discard the instance's own failure caused is marked bad, in red; one the node
		// chose (idle, scale-in, recycling, a replaced version, a command run's end) is
		// not. Every reason the sandbox gives (internal/telemetry's Reason* and
		// LimitResponseBody, sandbox.ReasonStart and ReasonExited; the console may not
		// import those packages).
		bad := map[string]bool{"trap": true, "panic": true, "timeout": true, "oom": true, "warmup": true,
			"bad_response": true, "response_body": true, "start": true,
			"idle": false, "closed": false, "recycled": false, "canceled": false, "exited": false}
		for reason, want := range bad {
			in := fmt.Sprintf(`{node: "edge-1", version: "1.0.0", id: 1, state: "discarded", created: "2026-12-06T12:00:00Z", initMillis: 1,
				requests: 1, discarded: "2026-12-06T12:00:01Z", discardReason: %q}`, reason)
			got := eval[string](pg, `import("/ui/instances.js").then((m) => { const el = document.createElement("div");
				el.innerHTML = m.instancesPanel("shop", {instances: [`+in+`]}, Date.parse("2026-12-06T12:01:00Z"));
				return el.querySelector('[data-k="inst-reason"]').className; })`)
			if (got == "bad") != want {
				t.Errorf("discard reason %q drawn with class %q, want bad %v", reason, got, want)
			}
		}
	})
	t.Run("marks", func(t *testing.T) {
		pg.t = t
		// Kinds matched loosely: a real agent's spelling still marks readiness, the first
		// request and failures; a discarded instance that never became ready has no
		// readiness mark; a starting one neither.
		for _, tc := range []struct {
			name string
			in   string
			want []string
		}{
			{"agent kinds", `{state: "idle", created: "2026-12-06T12:00:00Z", initMillis: 4, requests: 2, errors: 1, events: [{kind: "created", time: "2026-12-06T12:00:00Z"},
				{kind: "initialised", time: "2026-12-06T12:00:00.004Z"}, {kind: "first request", time: "2026-12-06T12:00:01Z"}, {kind: "trap", time: "2026-12-06T12:00:02Z", detail: "unreachable"}]}`,
				[]string{"init", "first", "fail"}},
			{"warmup failed", `{state: "discarded", created: "2026-12-06T12:00:00Z", initMillis: 9, requests: 0, discarded: "2026-12-06T12:00:00.009Z", discardReason: "warmup",
				events: [{kind: "created", time: "2026-12-06T12:00:00Z"}, {kind: "warmup_failed", time: "2026-12-06T12:00:00.009Z"}, {kind: "discarded", time: "2026-12-06T12:00:00.009Z"}]}`,
				[]string{"fail", "disc"}},
			{"starting", `{state: "starting", created: "2026-12-06T12:00:00Z", initMillis: 0, requests: 0}`, nil},
			{"no events, served", `{state: "busy", created: "2026-12-06T12:00:00Z", initMillis: 1.5, requests: 9}`, []string{"init"}},
		} {
			got := eval[[]string](pg, `import("/ui/instances.js").then((m) => m.marks(`+tc.in+`).map((k) => k.kind))`)
			if len(got) == 0 {
				got = nil
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s: marks %q, want %q", tc.name, got, tc.want)
			}
		}
	})
	t.Run("none, not served, failed", func(t *testing.T) {
		pg.t = t
		got := eval[[]string](pg, `import("/ui/instances.js").then((m) => [m.instancesPanel("shop", {instances: []}),
			m.instancesPanel("shop", {instances: [], unreachable: [{node: "edge-1", error: "agent too old"}]}),
			m.instancesPanel("shop", null), m.instancesPanel("<b>x</b>", {error: "no such deployment <b>x</b>"})])`)
		for i, want := range []string{"No instances of shop reported.", "edge-1", "does not report instance timelines", "no such deployment &lt;b&gt;x&lt;/b&gt;"} {
			if !strings.Contains(got[i], want) {
				t.Errorf("case %d drew %q, want %q in it", i, got[i], want)
			}
		}
		if strings.Contains(got[3], "<b>") {
			t.Errorf("a failed read's message was drawn as markup: %q", got[3])
		}
	})
}

// getJSON GETs url with token and decodes its JSON answer into v.
func getJSON(ctx context.Context, url, token string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s", url, res.Status)
	}
	return json.NewDecoder(res.Body).Decode(v)
}

// panelPage opens the console's sign-in page, served by the console alone (no API
// behind it), in Chromium: where the panel tests import a module and feed it JSON.
func panelPage(t *testing.T) *page {
	t.Helper()
	exe := chromiumPath(t)
	h, err := console.New(console.Config{Identify: func(string) (string, string, bool) { return "", "", false }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	pg := &page{t: t, ctx: newBrowser(t, exe)}
	pg.run(chromedp.Navigate(srv.URL+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#signin")))
	return pg
}
