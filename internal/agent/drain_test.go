package agent_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	v1 "fermion.dev/fermion/api/v1"
)

// TestNodeRemovalDrains: a deployment taken off a node (drained, moved or deleted: the
// node sees its assignment go) answers requests still sent to it 503 with Retry-After,
// never 404, and /readyz?route= reports the route not ready, so a load balancer moves
// away; the node's other routes stay ready.
func TestNodeRemovalDrains(t *testing.T) {
	reg := startRegistry(t)
	cp := startControlPlane(t, false)
	helloM, helloWasm := example(t, "hello")
	echoM, echoWasm := example(t, "echo")
	_, vHello := reg.pushApp(t, reg.host, "acme/hello", helloM, helloWasm)
	_, vEcho := reg.pushApp(t, reg.host, "acme/echo", echoM, echoWasm)
	n := startNode(t, cp, "d1", t.TempDir(), joinToken)
	both := v1.AssignmentSet{Revision: 1, Assignments: []v1.Assignment{assignment("web", "d1", 1, vHello), assignment("api", "d1", 1, vEcho)}}
	cp.assign("d1", both)
	waitFor(t, func() error { return serves(n.url+"/hello", hello1) })
	waitFor(t, n.Ready)

	routeReady := func(query string) (int, string) {
		t.Helper()
		return mustGet(t, n.admin+"/readyz?"+query)
	}
	for _, q := range []string{"route=/hello", "route=/hello/below", "route=/echo", "route=/hello&host=api.example.com"} {
		if status, body := routeReady(q); status != http.StatusOK || !strings.HasPrefix(body, "ready: route ") {
			t.Fatalf("GET /readyz?%s = %d %q while serving, want 200", q, status, body)
		}
	}
	if status, body := routeReady("route=/nothing"); status != http.StatusServiceUnavailable || !strings.Contains(body, "no route") {
		t.Fatalf("GET /readyz?route=/nothing = %d %q, want 503 no route", status, body)
	}
	if status, body := routeReady("route=hello"); status != http.StatusBadRequest || !strings.Contains(body, "starting with /") {
		t.Fatalf("GET /readyz?route=hello = %d %q, want 400", status, body)
	}

	// Requests in a loop while web goes away.
	var (
		mu     sync.Mutex
		counts = map[int]int{}
		bad    []string
	)
	halt := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-halt:
					return
				default:
				}
				resp, err := client.Get(n.url + "/hello")
				mu.Lock()
				if err != nil {
					bad = append(bad, err.Error())
				} else {
					counts[resp.StatusCode]++
					if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
						bad = append(bad, "503 without Retry-After")
					}
					resp.Body.Close()
				}
				mu.Unlock()
			}
		})
	}
	seen := func(code, n int) func() error {
		return func() error {
			mu.Lock()
			defer mu.Unlock()
			if counts[code] < n {
				return fmt.Errorf("%d responses %d so far, want %d", counts[code], code, n)
			}
			return nil
		}
	}
	waitFor(t, seen(http.StatusOK, 20))
	cp.assign("d1", v1.AssignmentSet{Revision: 2, Assignments: []v1.Assignment{assignment("api", "d1", 1, vEcho)}})
	waitFor(t, seen(http.StatusServiceUnavailable, 50))
	close(halt)
	wg.Wait()
	mu.Lock()
	if counts[http.StatusNotFound] != 0 || len(bad) > 0 || len(counts) != 2 {
		t.Fatalf("statuses while web was removed: %v, failures %q; want 200 then 503 with Retry-After, no 404", counts, bad)
	}
	mu.Unlock()

	if status, body := routeReady("route=/hello"); status != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Fatalf("GET /readyz?route=/hello = %d %q after web was removed, want 503 draining", status, body)
	}
	if status, _ := routeReady("route=/echo"); status != http.StatusOK {
		t.Fatalf("GET /readyz?route=/echo = %d, want 200: api still runs", status)
	}
	if status, _ := mustGet(t, n.admin+"/readyz"); status != http.StatusOK {
		t.Fatalf("GET /readyz = %d, want 200: the node still serves its assignments", status)
	}
	// Assigned again, it serves again at once.
	cp.assign("d1", v1.AssignmentSet{Revision: 3, Assignments: both.Assignments})
	waitFor(t, func() error { return serves(n.url+"/hello", hello1) })
	if status, _ := routeReady("route=/hello"); status != http.StatusOK {
		t.Fatalf("GET /readyz?route=/hello = %d once web is back, want 200", status)
	}
}
