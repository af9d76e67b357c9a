package sandbox_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

func TestOutbound(t *testing.T) {
	wasm := reactor(t, guestDial)
	var hitsB atomic.Int32
	srvB := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hitsB.Add(1)
		w.Write([]byte("B"))
	}))
	t.Cleanup(srvB.Close)
	release := make(chan struct{})
	srvA := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect-out":
			http.Redirect(w, r, srvB.URL+"/target", http.StatusFound)
		case "/redirect-in":
			http.Redirect(w, r, "/headers", http.StatusFound)
		case "/big":
			w.Write([]byte(strings.Repeat("x", 2048)))
		case "/hang":
			select {
			case <-r.Context().Done():
			case <-release:
			}
		case "/headers":
			w.Header().Set("Content-Type", "application/x-test")
			w.WriteHeader(http.StatusTeapot)
			w.Write([]byte(r.Header.Get("User-Agent")))
		}
	}))
	t.Cleanup(srvA.Close)
	t.Cleanup(func() { close(release) }) // runs before srvA.Close
	// A server whose certificate no one trusts, and srvA's plain port asked for TLS.
	srvTLS := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srvTLS.Close)
	plainAsTLS := strings.Replace(srvA.URL, "http://", "https://", 1)
	var allowed []manifest.HostPattern
	for _, u := range []string{srvA.URL, srvTLS.URL, plainAsTLS} {
		p, err := manifest.ParseHostPattern(u)
		if err != nil {
			t.Fatal(err)
		}
		allowed = append(allowed, p)
	}

	tests := []struct {
		name        string
		path        string
		target      string // instead of srvA.URL + path
		wantStatus  int
		wantBody    string
		wantResults map[string]float64 // outbound metric by result
	}{
		{name: "upstream status and header", path: "/headers", wantStatus: http.StatusTeapot,
			wantResults: map[string]float64{telemetry.OutboundOK: 1}},
		// The host never follows redirects: the guest's client asks for each hop, and the
		// allow-list is checked again for it.
		{name: "redirect to an allowed host", path: "/redirect-in", wantStatus: http.StatusTeapot,
			wantResults: map[string]float64{telemetry.OutboundOK: 2}},
		{name: "redirect to another host", path: "/redirect-out", wantStatus: http.StatusBadGateway, wantBody: "is not in allowed_outbound_hosts",
			wantResults: map[string]float64{telemetry.OutboundOK: 1, telemetry.OutboundDenied: 1}},
		{name: "response too large", path: "/big", wantStatus: http.StatusBadGateway, wantBody: "outbound response body exceeds 1024 bytes",
			wantResults: map[string]float64{telemetry.OutboundError: 1}},
		{name: "timeout", path: "/hang", wantStatus: http.StatusBadGateway, wantBody: "timed out",
			wantResults: map[string]float64{telemetry.OutboundTimeout: 1}},
		{name: "relative url", target: "/relative", wantStatus: http.StatusBadGateway, wantBody: "must be absolute",
			wantResults: map[string]float64{telemetry.OutboundError: 1}},
		{name: "untrusted certificate", target: srvTLS.URL + "/", wantStatus: http.StatusBadGateway, wantBody: "certificate",
			wantResults: map[string]float64{telemetry.OutboundTLS: 1}},
		{name: "tls to a plain http port", target: plainAsTLS + "/headers", wantStatus: http.StatusBadGateway, wantBody: "server gave HTTP response",
			wantResults: map[string]float64{telemetry.OutboundTLS: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, m := newEngine(t)
			s := spec("dial", wasm)
			s.Capabilities.AllowedOutboundHosts = allowed
			// Only the hang waits out its timeout; every other case gets one a busy machine
			// cannot reach, so a slow TLS handshake is never reported as a timeout.
			s.Capabilities.OutboundTimeout = 30 * time.Second
			if tt.wantResults[telemetry.OutboundTimeout] > 0 {
				s.Capabilities.OutboundTimeout = 200 * time.Millisecond
			}
			s.Limits.MaxResponseBody = 1024
			f := load(t, e, s)
			target := srvA.URL + tt.path
			if tt.target != "" {
				target = tt.target
			}
			resp, err := invoke(t, f, get("/dial?url="+url.QueryEscape(target)))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tt.wantStatus || !strings.Contains(string(resp.Body), tt.wantBody) {
				t.Fatalf("got %d %q, want %d containing %q", resp.Status, resp.Body, tt.wantStatus, tt.wantBody)
			}
			for _, result := range []string{telemetry.OutboundOK, telemetry.OutboundDenied, telemetry.OutboundError, telemetry.OutboundTimeout, telemetry.OutboundTLS} {
				wantMetric(t, "outbound "+result, outbound(m, "dial", result), tt.wantResults[result])
			}
			if tt.wantStatus == http.StatusTeapot {
				if ct := resp.Header.Get("Content-Type"); ct != "application/x-test" {
					t.Fatalf("upstream content-type %q", ct)
				}
				if string(resp.Body) != "Go-http-client/1.1" {
					t.Fatalf("user agent %q", resp.Body)
				}
			}
			// An outbound failure is the guest's to handle, never a fault of the instance.
			wantStats(t, f, sandbox.Stats{Warm: 1, Total: 1})
		})
	}
	if n := hitsB.Load(); n != 0 {
		t.Fatalf("the redirect target received %d requests", n)
	}
}
