package sandbox_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

func spec(name string, wasm []byte) sandbox.Spec {
	return sandbox.Spec{
		Name: name, Version: "1.0.0", Wasm: wasm,
		Limits: manifest.Limits{MemoryBytes: 64 << 20, Timeout: 5 * time.Second, MaxRequestBody: 1 << 20,
			MaxResponseBody: 1 << 20, MaxConcurrency: 4, QueueTimeout: 100 * time.Millisecond},
		Scaling: manifest.Scaling{MinWarm: 1, MaxInstances: 4, IdleTimeout: time.Minute},
	}
}

func newEngine(t *testing.T) (*sandbox.Engine, *telemetry.Metrics) {
	t.Helper()
	m := telemetry.NewMetrics("test")
	e, err := sandbox.NewEngine(sandbox.EngineConfig{CacheDir: t.TempDir(), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e, m
}

func load(t *testing.T, e *sandbox.Engine, s sandbox.Spec) *sandbox.Function {
	t.Helper()
	f, err := e.Load(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close(context.Background()) })
	return f
}

func get(uri string) *sandbox.Request {
	return &sandbox.Request{ID: "t", Method: "GET", URI: uri, Host: "localhost", Header: http.Header{}}
}

func TestHelloReactor(t *testing.T) {
	e, _ := newEngine(t)
	f := load(t, e, spec("hello", fermiontest.Guest(t, "examples/hello", true)))
	if f.ABI() != sandbox.ABIReactor {
		t.Fatalf("abi = %s", f.ABI())
	}
	for i := 0; i < 3; i++ {
		resp, err := f.Invoke(context.Background(), get("/hello"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != 200 || !strings.Contains(string(resp.Body), "Hello") {
			t.Fatalf("got %d %q", resp.Status, resp.Body)
		}
		if resp.Cold {
			t.Fatal("prewarmed instance reported cold")
		}
	}
	if s := f.Stats(); s.Total != 1 {
		t.Fatalf("stats %+v", s)
	}
	var se *sandbox.Error
	_ = errors.As(nil, &se)
}
