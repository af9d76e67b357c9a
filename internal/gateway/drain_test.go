package gateway_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/gateway"
)

// TestRouteDrainUnderLoad: requests running in a loop while their route is taken away
// get 200 before and 503 with Retry-After after, never 404, and the route reports
// draining.
func TestRouteDrainUnderLoad(t *testing.T) {
	hello, _ := sharedFunctions(t)
	// Longer than any busy machine takes for the load: the drain never ends in the test.
	const period = 10 * time.Minute
	g := gateway.New(gateway.Config{Telemetry: true, RouteDrain: period})
	setRoutes(t, g, gateway.Route{Prefix: "/hello", Target: hello}, gateway.Route{Prefix: "/stays", Target: hello})
	url := serve(t, g)

	var (
		mu       sync.Mutex
		counts   = map[int]int{}
		retryBad int
		errs     []error
		after    atomic.Int64 // requests sent after the route was removed
		removed  atomic.Bool
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				wasRemoved := removed.Load()
				resp, err := client.Get(url + "/hello")
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					counts[resp.StatusCode]++
					if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
						retryBad++
					}
					resp.Body.Close()
				}
				mu.Unlock()
				if wasRemoved {
					after.Add(1)
				}
			}
		})
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if counts[http.StatusOK] < 20 {
			return fmt.Errorf("%d requests served so far", counts[http.StatusOK])
		}
		return nil
	})
	setRoutes(t, g, gateway.Route{Prefix: "/stays", Target: hello})
	removed.Store(true)
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		if n := after.Load(); n < 50 {
			return fmt.Errorf("%d requests after the removal so far", n)
		}
		return nil
	})
	state, route, until := g.RouteState("localhost", "/hello/x")
	close(stop)
	wg.Wait()
	if state != gateway.RouteDraining || route.Prefix != "/hello" {
		t.Fatalf("RouteState during the drain = %s %q (until %s)", state, route.Prefix, until)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("%d requests failed, first: %v", len(errs), errs[0])
	}
	if counts[http.StatusNotFound] != 0 || counts[http.StatusServiceUnavailable] == 0 || retryBad != 0 {
		t.Fatalf("statuses under load %v (503 without Retry-After: %d); want no 404 and 503s with Retry-After", counts, retryBad)
	}
	for code := range counts {
		if code != http.StatusOK && code != http.StatusServiceUnavailable {
			t.Fatalf("statuses under load %v", counts)
		}
	}
	r := get(t, url+"/hello", nil)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "1" || !strings.Contains(r.body, "no longer runs on this node") {
		t.Fatalf("draining route answered %d %q (Retry-After %q)", r.status, r.body, r.header.Get("Retry-After"))
	}
	if st, _, _ := g.RouteState("localhost", "/stays"); st != gateway.RouteServing {
		t.Fatalf("RouteState of a live route = %s", st)
	}
}

// TestRouteDrainEnds: after the drain period a removed route is forgotten: 404.
func TestRouteDrainEnds(t *testing.T) {
	hello, _ := sharedFunctions(t)
	g := gateway.New(gateway.Config{RouteDrain: 100 * time.Millisecond})
	setRoutes(t, g, gateway.Route{Prefix: "/hello", Target: hello})
	url := serve(t, g)
	setRoutes(t, g)
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		if r := get(t, url+"/hello", nil); r.status != http.StatusNotFound {
			return fmt.Errorf("status %d after the drain period", r.status)
		}
		return nil
	})
	if st, _, _ := g.RouteState("localhost", "/hello"); st != gateway.RouteUnknown {
		t.Fatalf("RouteState after the drain = %s", st)
	}
}

// TestRouteDrainOff: a negative drain period answers a removed route 404 at once.
func TestRouteDrainOff(t *testing.T) {
	hello, _ := sharedFunctions(t)
	g := gateway.New(gateway.Config{RouteDrain: -1})
	setRoutes(t, g, gateway.Route{Prefix: "/hello", Target: hello})
	url := serve(t, g)
	if r := get(t, url+"/hello", nil); r.status != http.StatusOK {
		t.Fatalf("GET /hello = %d", r.status)
	}
	setRoutes(t, g)
	if r := get(t, url+"/hello", nil); r.status != http.StatusNotFound {
		t.Fatalf("GET /hello after removal without a drain period = %d, want 404", r.status)
	}
	if st, _, _ := g.RouteState("", "/hello"); st != gateway.RouteUnknown {
		t.Fatal(errors.New("RouteState = " + st))
	}
}
