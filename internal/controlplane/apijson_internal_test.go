package controlplane

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
)

func TestWantsCompact(t *testing.T) {
	for _, tc := range []struct {
		accept string
		want   bool
	}{
		{"", false},
		{"*/*", false}, // curl
		{"application/*", false},
		{"text/html,application/xhtml+xml,*/*;q=0.8", false}, // a browser's address bar
		{"application/json", true},                           // the Go client, the console
		{"application/x-ndjson, application/json;q=0.5", true},
		{"application/json;q=0", false},
		{"Application/JSON", true},
		{"application/json;;", false}, // unparsable: indented, as for a person
	} {
		t.Run(tc.accept, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/nodes", nil)
			r.Header.Set("Accept", tc.accept)
			if got := wantsCompact(r); got != tc.want {
				t.Errorf("wantsCompact(%q) = %v, want %v", tc.accept, got, tc.want)
			}
		})
	}
}

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		enc  string
		want bool
	}{
		{"", false},
		{"gzip", true},
		{"gzip, deflate, br, zstd", true}, // Chromium
		{"br;q=1.0, GZIP;q=0.5", true},
		{"gzip;q=0", false},
		{"gzip; q=0.0", false},
		{"identity", false},
	} {
		t.Run(tc.enc, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/nodes", nil)
			r.Header.Set("Accept-Encoding", tc.enc)
			if got := acceptsGzip(r); got != tc.want {
				t.Errorf("acceptsGzip(%q) = %v, want %v", tc.enc, got, tc.want)
			}
		})
	}
}

// TestWriteJSON serves a small and a large body over real HTTP to each kind of client
// and checks that every one decodes the same value: indentation and gzip change the
// bytes, never the data.
func TestWriteJSON(t *testing.T) {
	type item struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	}
	small := []item{{Name: "n1", Labels: map[string]string{"region": "eu"}}}
	var large []item
	for i := range 2000 {
		large = append(large, item{Name: fmt.Sprintf("node-%04d", i), Labels: map[string]string{"region": "eu-west", "zone": "a"}})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("size") == "large" {
			writeJSON(w, r, http.StatusOK, large)
			return
		}
		writeJSON(w, r, http.StatusCreated, small)
	}))
	defer srv.Close()
	// DisableCompression: see the bytes as sent, not as Go's transport would undo them.
	raw := &http.Client{Transport: &http.Transport{DisableCompression: true}}

	for _, tc := range []struct {
		name, size, accept, encoding string
		wantStatus                   int
		wantIndent, wantGzip         bool
	}{
		{"curl, small", "small", "*/*", "", http.StatusCreated, true, false},
		{"curl, large", "large", "*/*", "", http.StatusOK, true, false},
		{"program, large, no gzip", "large", "application/json", "", http.StatusOK, false, false},
		{"program, large, gzip", "large", "application/json", "gzip", http.StatusOK, false, true},
		{"program, small, gzip", "small", "application/json", "gzip", http.StatusCreated, false, false},
		{"person, large, gzip", "large", "", "gzip", http.StatusOK, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+"?size="+tc.size, nil)
			req.Header.Set("Accept", tc.accept)
			if tc.encoding != "" {
				req.Header.Set("Accept-Encoding", tc.encoding)
			}
			resp, err := raw.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
				t.Errorf("Vary %q does not name Accept-Encoding: a cache would mix the forms", resp.Header.Get("Vary"))
			}
			var body io.Reader = resp.Body
			if got := resp.Header.Get("Content-Encoding") == "gzip"; got != tc.wantGzip {
				t.Fatalf("gzipped: %v, want %v", got, tc.wantGzip)
			}
			if tc.wantGzip {
				zr, err := gzip.NewReader(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				body = zr
			}
			b, err := io.ReadAll(body)
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Contains(b, []byte("\n  ")); got != tc.wantIndent {
				t.Errorf("indented: %v, want %v", got, tc.wantIndent)
			}
			want := small
			if tc.size == "large" {
				want = large
			}
			var got []item
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("decoded %d items, not the %d sent", len(got), len(want))
			}
		})
	}

	// Go's own transport asks for gzip and undoes it: the Go client needs nothing new.
	req, _ := http.NewRequest("GET", srv.URL+"?size=large", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []item
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || len(got) != len(large) || !resp.Uncompressed {
		t.Fatalf("Go's transport: %d items, uncompressed %v, %v", len(got), resp.Uncompressed, err)
	}
}

// TestWriteJSONEncodeError: a value that does not encode is a 500 with the API's error
// body, not a 200 with half a body.
func TestWriteJSONEncodeError(t *testing.T) {
	rec := httptest.NewRecorder()
	writeJSON(rec, httptest.NewRequest("GET", "/v1/x", nil), http.StatusOK, map[string]any{"bad": func() {}})
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), `"code":"internal"`) {
		t.Fatalf("got %d %s", rec.Code, rec.Body.String())
	}
}

// fleetNodeList is a GET /v1/nodes body shaped like the console test's fleet: n nodes
// with labels, capacity, a few assignments and export health each.
func fleetNodeList(n int) v1.NodeList {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	var l v1.NodeList
	for i := range n {
		l.Nodes = append(l.Nodes, v1.Node{
			Name:     fmt.Sprintf("edge-%04d", i),
			Labels:   map[string]string{"region": []string{"eu-west", "us-east", "ap-south"}[i%3], "zone": fmt.Sprintf("z%d", i%4), "tier": "edge"},
			Capacity: v1.Resources{MemoryBytes: 8 << 30, MilliCPU: 4000, Instances: 200}, State: v1.NodeReady, Schedulable: true,
			RuntimeVersion: "wazero v1.9.0", AgentVersion: "fermion dev", GatewayURL: fmt.Sprintf("http://10.0.%d.%d:8080", i/250, i%250),
			Joined: now.Add(-time.Hour), LeaseRenewed: now.Add(-time.Duration(i%10) * time.Second), LeaseAge: float64(i % 10),
			Allocated:   v1.Resources{MemoryBytes: 256 << 20, MilliCPU: 300, Instances: 3},
			Assignments: []string{fmt.Sprintf("app-%03d", i%200), fmt.Sprintf("app-%03d", (i+7)%200)},
			Revision:    uint64(1000 + i),
			Telemetry:   &v1.TelemetryHealth{Exporter: v1.ExporterOK, LastExportAt: now, BacklogBytes: int64(i % 7 * 1024)},
		})
	}
	return l
}

// BenchmarkNodeListResponse is GET /v1/nodes at 1,000 nodes as each kind of client gets
// it: encoded by writeJSON and decoded again (the reader's share). bytes/op is what
// crosses the wire. The "indented" case is every response before the API told programs
// from people; compare the others against it in the same run (bench/RESULTS.md):
//
//	go test ./internal/controlplane -run '^$' -bench BenchmarkNodeListResponse -count 5
func BenchmarkNodeListResponse(b *testing.B) {
	list := fleetNodeList(1000)
	for _, tc := range []struct{ name, accept, encoding string }{
		{"indented", "*/*", ""},
		{"compact", "application/json", ""},
		{"compact+gzip", "application/json", "gzip"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/v1/nodes", nil)
			req.Header.Set("Accept", tc.accept)
			req.Header.Set("Accept-Encoding", tc.encoding)
			var wire int
			cpu0 := processCPU(b)
			for b.Loop() {
				rec := httptest.NewRecorder()
				writeJSON(rec, req, http.StatusOK, list)
				wire = rec.Body.Len()
				var body io.Reader = rec.Body
				if rec.Header().Get("Content-Encoding") == "gzip" {
					zr, err := gzip.NewReader(rec.Body)
					if err != nil {
						b.Fatal(err)
					}
					body = zr
				}
				var got v1.NodeList
				if err := json.NewDecoder(body).Decode(&got); err != nil || len(got.Nodes) != len(list.Nodes) {
					b.Fatalf("decode: %d nodes, %v", len(got.Nodes), err)
				}
			}
			// CPU time, not ns/op, is the figure to compare on a shared machine: at load 20
			// on 2 cores a benchmark's wall time is mostly waiting for a core.
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(wire), "wire-bytes/op")
		})
	}
}
