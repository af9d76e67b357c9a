package sandbox_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// snapEngine returns an engine with snapshots on or off.
func snapEngine(t *testing.T, on bool) (*sandbox.Engine, *telemetry.Metrics, *syncBuffer) {
	t.Helper()
	m := telemetry.NewMetrics("test")
	logs := &syncBuffer{}
	e, err := sandbox.NewEngine(sandbox.EngineConfig{CacheDir: cacheDir, CompileWorkers: 2, Metrics: m, NoSnapshots: !on,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e, m, logs
}

// answer is a response with what differs between two runs of the same request removed.
type answer struct {
	Status int
	Header sandbox.Header
	Body   string
}

// TestSnapshotSameResponses serves the examples' requests from restored instances and
// from instances that ran _initialize, each request on a new instance, and compares.
func TestSnapshotSameResponses(t *testing.T) {
	type call struct {
		method, uri, body string
		header            http.Header
	}
	examples := []struct {
		dir   string
		env   map[string]string
		calls []call
		clean func(t *testing.T, body string) string // drops what changes from run to run
	}{
		{dir: guestHello, env: map[string]string{"GREETING": "Hej"}, calls: []call{{method: "GET", uri: "/hello"}, {method: "POST", uri: "/x?y=1", body: "abc"}}},
		{dir: guestEcho, calls: []call{
			{method: "GET", uri: "/echo/a%20b?x=1&x=2", header: http.Header{"X-Demo": {"yes"}, "Cookie": {"s=1"}}},
			{method: "PUT", uri: "/echo", body: strings.Repeat("body ", 5000), header: http.Header{"Content-Type": {"text/plain"}}},
		}},
		{dir: guestEnrich, env: map[string]string{"FERMION_REGION": "eu-test", "FERMION_NODE": "n1"}, calls: []call{
			{method: "POST", uri: "/enrich", body: `{"customer_id":"c-42","msg":"login"}`},
			{method: "POST", uri: "/enrich", body: `not json`},
			{method: "GET", uri: "/enrich"},
		}, clean: func(t *testing.T, body string) string {
			var m map[string]any
			if json.Unmarshal([]byte(body), &m) != nil {
				return body
			}
			if _, ok := m["received_at"].(string); !ok && m["error"] == nil {
				t.Errorf("no received_at in %s", body)
			}
			delete(m, "received_at")
			b, _ := json.Marshal(m)
			return string(b)
		}},
	}
	for _, ex := range examples {
		t.Run(ex.dir, func(t *testing.T) {
			wasm := reactor(t, ex.dir)
			var got [2][]answer
			for i, on := range []bool{false, true} {
				e, _, _ := snapEngine(t, on)
				s := spec("ex", wasm)
				s.Capabilities.Env = ex.env
				s.Scaling.MaxRequestsPerInstance = 1 // every request on a new instance
				f := load(t, e, s)
				if info := f.Snapshot(); info.Used != on {
					t.Fatalf("snapshots %v: Snapshot() = %+v", on, info)
				}
				for _, c := range ex.calls {
					h := c.header
					if h == nil {
						h = http.Header{}
					}
					resp, err := f.Invoke(context.Background(), &sandbox.Request{ID: "t", Method: c.method, URI: c.uri,
						Host: "fn.example", RemoteAddr: "192.0.2.1:1", Header: h, Body: []byte(c.body)})
					if err != nil {
						t.Fatalf("snapshots %v: %s %s: %v", on, c.method, c.uri, err)
					}
					if !resp.Cold {
						t.Fatalf("snapshots %v: request served by a warm instance", on)
					}
					body := string(resp.Body)
					if ex.clean != nil {
						body = ex.clean(t, body)
					}
					got[i] = append(got[i], answer{resp.Status, resp.Header, body})
				}
			}
			if !reflect.DeepEqual(got[0], got[1]) {
				t.Fatalf("responses differ:\nwithout snapshot %+v\nwith snapshot    %+v", got[0], got[1])
			}
		})
	}
}
