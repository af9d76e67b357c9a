package agent_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/agent"
)

// TestDataPlaneNodeMemory: a data plane that offers functions the memory of one hello
// instance serves hello, refuses to prewarm a second function beside it, and answers a
// request that needs a second instance with 503, Retry-After and reason node_memory,
// all of it visible in its metrics.
func TestDataPlaneNodeMemory(t *testing.T) {
	helloM, helloWasm := example(t, "hello")
	echoM, echoWasm := example(t, "echo")
	dp, err := agent.NewDataPlane(agent.DataPlaneConfig{CacheDir: t.TempDir(), Telemetry: true, Version: "test",
		DrainTimeout: 10 * time.Second, MemoryBytes: int64(helloM.Limits.MemoryBytes)})
	if err != nil {
		t.Fatal(err)
	}
	gw, admin := listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- dp.Serve(ctx, gw, admin) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-served:
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return 30s after its context was canceled")
		}
	})
	url, adminURL := "http://"+gw.Addr().String(), "http://"+admin.Addr().String()

	if helloM.Scaling.MinWarm < 1 || echoM.Scaling.MinWarm < 1 || echoM.Limits.MemoryBytes != helloM.Limits.MemoryBytes {
		t.Fatal("the test assumes hello and echo prewarm instances of the same memory limit")
	}
	deploy(t, dp, helloM, helloWasm) // its warm instance holds all the node offers
	if status, body := mustGet(t, url+"/hello"); status != http.StatusOK {
		t.Fatalf("GET /hello = %d %q", status, body)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer dcancel()
	if _, err := dp.Deploy(dctx, echoM, echoWasm); err == nil || !strings.Contains(err.Error(), "node memory") {
		t.Fatalf("deploying echo with min_warm beside hello: %v, want a node memory error", err)
	}
	lazy := *echoM
	lazy.Scaling.MinWarm = 0
	deploy(t, dp, &lazy, echoWasm)
	resp, err := client.Get(url + "/echo/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("GET /echo/x = %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	_, metrics := mustGet(t, adminURL+"/metrics")
	for _, want := range []string{
		"fermion_node_memory_offered_bytes 6.7108864e+07",
		"fermion_node_memory_held_bytes 6.7108864e+07",
		`fermion_limit_rejections_total{function="echo",limit="node_memory",version="0.1.0"} 1`,
		`fermion_request_errors_total{function="echo",reason="node_memory",version="0.1.0"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
