package agent_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"fermion.dev/fermion/internal/agent"
	"fermion.dev/fermion/internal/sli"
)

// TestDataPlaneSLIs: with DataPlaneConfig.SLIs, the gateway records requests under the
// deployment's name (DeployAs), the app's version and the manifest's route pattern.
func TestDataPlaneSLIs(t *testing.T) {
	agg := sli.NewAggregator(sli.Config{Node: "n1", Start: time.Now()})
	dp, err := agent.NewDataPlane(agent.DataPlaneConfig{CacheDir: t.TempDir(), Telemetry: true, Version: "test", SLIs: agg})
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- dp.Serve(ctx, ln, nil) }()
	t.Cleanup(func() { cancel(); <-served })

	m, wasm := example(t, "hello")
	dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer dcancel()
	if _, err := dp.DeployAs(dctx, "hello-canary", m, wasm); err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	for _, path := range []string{"/hello", "/hello/x?y=1"} {
		if status, body := mustGet(t, url+path); status != http.StatusOK {
			t.Fatalf("GET %s = %d %q", path, status, body)
		}
	}
	sums := agg.Flush(time.Now().Add(time.Hour))
	want := sli.Key{Deployment: "hello-canary", Version: m.App.Version, Route: "/hello"}
	if len(sums) != 1 || sums[0].Key != want || sums[0].Requests() != 2 {
		t.Fatalf("summaries %+v, want 2 requests under %+v", sums, want)
	}
}
