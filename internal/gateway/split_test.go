package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/telemetry"
)

// canaryGuests loads hello twice: the stable 0.1.0 answering "Hello from Fermion!" and
// a canary 0.2.0 answering "Canary from Fermion!", so a response tells its side.
func canaryGuests(t *testing.T) (stable, canary *sandbox.Function) {
	t.Helper()
	e := sharedEngine(t)
	stable = loadGuest(t, e, "examples/hello", func(s *sandbox.Spec) { s.Version = "0.1.0" })
	canary = loadGuest(t, e, "examples/hello", func(s *sandbox.Spec) {
		s.Version = "0.2.0"
		s.Capabilities.Env = map[string]string{"GREETING": "Canary"}
	})
	return stable, canary
}

func isCanary(t *testing.T, status int, body string) bool {
	t.Helper()
	switch {
	case status != http.StatusOK:
		t.Fatalf("status %d: %s", status, body)
	case strings.HasPrefix(body, "Canary"):
		return true
	case !strings.HasPrefix(body, "Hello"):
		t.Fatalf("body %q is from neither side", body)
	}
	return false
}

// TestSplitAccuracy: at 1 %, 5 % and 50 % the canary serves its weight of 10,000
// requests within ±2 percentage points (the counter makes it exact), and each side's
// requests are recorded under its own version, in Prometheus and in the SLIs.
func TestSplitAccuracy(t *testing.T) {
	stable, canary := canaryGuests(t)
	metrics := telemetry.NewMetrics("test")
	agg := sli.NewAggregator(sli.Config{Node: "n1", Start: time.Now()})
	g := gateway.New(gateway.Config{Metrics: metrics, SLIs: agg, Telemetry: true})
	const n = 10000
	total := 0
	for _, w := range []int{100, 500, 5000} {
		t.Run(fmt.Sprintf("%d%%", w/100), func(t *testing.T) {
			setRoutes(t, g, gateway.Route{Prefix: "/hello", Target: stable, Deployment: "web",
				Split: &gateway.Split{Target: canary, Weight: w}})
			got := 0
			for range n {
				rec := httptest.NewRecorder()
				g.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/hello", nil))
				if isCanary(t, rec.Code, rec.Body.String()) {
					got++
				}
			}
			total += got
			pct, want := float64(got)*100/n, float64(w)/100
			if pct < want-2 || pct > want+2 {
				t.Fatalf("canary served %.2f %%, want %.2f %% ± 2", pct, want)
			}
			t.Logf("canary served %d of %d (%.2f %%)", got, n, pct)
		})
	}
	canaryReqs := metricValue(t, metrics, "fermion_requests_total", map[string]string{"function": "hello", "version": "0.2.0", "code": "2xx"})
	stableReqs := metricValue(t, metrics, "fermion_requests_total", map[string]string{"function": "hello", "version": "0.1.0", "code": "2xx"})
	if int(canaryReqs) != total || int(stableReqs) != 3*n-total {
		t.Fatalf("fermion_requests_total: canary %v stable %v, want %d and %d", canaryReqs, stableReqs, total, 3*n-total)
	}
	sums := waitSummaries(t, agg, 3*n)
	ck := sli.Key{Deployment: "web", Version: "0.2.0", Route: "/hello"}
	sk := sli.Key{Deployment: "web", Version: "0.1.0", Route: "/hello"}
	cs, ss := sums[ck], sums[sk]
	if c, s := cs.Requests(), ss.Requests(); int(c) != total || int(s) != 3*n-total {
		t.Fatalf("SLIs: canary %d stable %d, want %d and %d (keys %v)", c, s, total, 3*n-total, keys(sums))
	}
}

// TestSplitStickyHeader: over a real connection, each client (by header) stays on one
// side for all its requests, and the sides' shares of clients follow the weight.
func TestSplitStickyHeader(t *testing.T) {
	stable, canary := canaryGuests(t)
	g := gateway.New(gateway.Config{})
	setRoutes(t, g, gateway.Route{Prefix: "/hello", Target: stable,
		Split: &gateway.Split{Target: canary, Weight: 5000, Sticky: "header:X-User"}})
	url := serve(t, g)
	users := 200
	if testing.Short() {
		users = 50
	}
	onCanary := 0
	for u := range users {
		h := http.Header{"X-User": {fmt.Sprintf("user-%d", u)}}
		first := false
		for i := range 3 {
			r := get(t, url+"/hello", h)
			c := isCanary(t, r.status, r.body)
			if i == 0 {
				first = c
			} else if c != first {
				t.Fatalf("user-%d moved from canary=%v to canary=%v", u, first, c)
			}
		}
		if first {
			onCanary++
		}
	}
	if onCanary == 0 || onCanary == users {
		t.Fatalf("%d of %d users on the canary at 50 %%", onCanary, users)
	}
}

// TestSplitStickyCookie: a client without the cookie gets one (HttpOnly, path /) and
// keeps its side from then on; a client that brings the cookie gets none set.
func TestSplitStickyCookie(t *testing.T) {
	stable, canary := canaryGuests(t)
	g := gateway.New(gateway.Config{})
	setRoutes(t, g, gateway.Route{Prefix: "/hello", Target: stable,
		Split: &gateway.Split{Target: canary, Weight: 5000, Sticky: "cookie:fermion-side"}})
	url := serve(t, g)
	sides := map[bool]int{}
	for c := range 40 {
		jar, err := cookiejar.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		cl := &http.Client{Jar: jar, Timeout: 30 * time.Second}
		var first bool
		for i := range 3 {
			resp, err := cl.Get(url + "/hello")
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			_, err = fmt.Fprint(&b, readAll(t, resp))
			if err != nil {
				t.Fatal(err)
			}
			set := resp.Header.Values("Set-Cookie")
			side := isCanary(t, resp.StatusCode, b.String())
			if i == 0 {
				first = side
				if len(set) != 1 || !strings.HasPrefix(set[0], "fermion-side=") || !strings.Contains(set[0], "HttpOnly") || !strings.Contains(set[0], "Path=/") {
					t.Fatalf("first response sets %q, want the fermion-side cookie", set)
				}
				continue
			}
			if len(set) != 0 {
				t.Fatalf("client %d request %d: cookie set again: %q", c, i, set)
			}
			if side != first {
				t.Fatalf("client %d moved sides despite its cookie", c)
			}
		}
		sides[first]++
	}
	if sides[true] == 0 || sides[false] == 0 {
		t.Fatalf("sides of 40 new clients at 50 %%: %v", sides)
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

// TestSplitWeightChangesUnderLoad: a bounded loopback load runs while the weight moves
// 0 → 100 % and back many times and the split is removed: no request fails, and both
// sides served.
func TestSplitWeightChangesUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds of load")
	}
	stable, canary := canaryGuests(t)
	g := gateway.New(gateway.Config{})
	route := func(w int) gateway.Route {
		return gateway.Route{Prefix: "/hello", Target: stable, Split: &gateway.Split{Target: canary, Weight: w}}
	}
	setRoutes(t, g, route(0))
	url := serve(t, g)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var failed, served, onCanary atomic.Int64
	progress := make(chan struct{}, 1) // a tick every 25 requests paces the weight changes
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := 0; i < 1500 && ctx.Err() == nil; i++ { // bounded
				resp, err := client.Get(url + "/hello")
				if err != nil {
					failed.Add(1)
					continue
				}
				body := readAll(t, resp)
				if served.Add(1)%25 == 0 {
					select {
					case progress <- struct{}{}:
					default:
					}
				}
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				} else if strings.HasPrefix(body, "Canary") {
					onCanary.Add(1)
				}
			}
		})
	}
	loadDone := make(chan struct{})
	go func() { wg.Wait(); close(loadDone) }()
	weights := []int{100, 1000, 5000, 10000, 0, -1} // -1: split removed
	changes := 0
	for i := 0; ; i++ {
		select {
		case <-loadDone:
		case <-progress:
			if w := weights[i%len(weights)]; w < 0 {
				setRoutes(t, g, gateway.Route{Prefix: "/hello", Target: stable})
			} else {
				setRoutes(t, g, route(w))
			}
			changes++
			continue
		}
		break
	}
	t.Logf("%d weight changes during %d requests", changes, served.Load())
	if f := failed.Load(); f != 0 {
		t.Fatalf("%d of %d requests failed across weight changes", f, served.Load())
	}
	if onCanary.Load() == 0 || onCanary.Load() == served.Load() {
		t.Fatalf("canary served %d of %d", onCanary.Load(), served.Load())
	}
}
