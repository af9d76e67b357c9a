package agent_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"fermion.dev/fermion/internal/agent"
	"fermion.dev/fermion/internal/fermiontest"
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
	dctx, dcancel := context.WithTimeout(context.Background(), 3*time.Minute)
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
	// The gateway records a request just after writing its response: flush until both
	// have arrived.
	want := sli.Key{Deployment: "hello-canary", Version: m.App.Version, Route: "/hello"}
	var got []sli.Summary
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		got = append(got, agg.Flush(time.Now())...)
		var n uint64
		for _, s := range got {
			if s.Key.Route == "" && s.Requests() == 0 {
				continue // the version's instance events (sli.go), recorded without a route
			}
			if s.Key != want {
				t.Fatalf("summary under %+v, want only %+v", s.Key, want)
			}
			n += s.Requests()
		}
		if n != 2 {
			return fmt.Errorf("%d requests recorded, want 2", n)
		}
		return nil
	})
}
