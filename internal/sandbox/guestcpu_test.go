package sandbox_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/telemetry"
)

// TestGuestCPU: fermion_guest_cpu_seconds_total grows by about a busy guest's busy
// time, and hardly at all for a guest that sleeps or waits on an outbound call as long.
// The bounds are generous (a loaded machine stretches every call's wall time); what
// cannot pass by luck is a spinning call counting less than it spun, or a waiting call
// counting most of its wait.
func TestGuestCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("short: two guests to build and about a second of guest time")
	}
	slow, dial := reactor(t, guestSlow), reactor(t, guestDial)
	const busy = 300 * time.Millisecond
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A slow upstream: the guest waits for it in the host's http_send.
		select {
		case <-time.After(busy):
		case <-r.Context().Done():
		}
		w.Write([]byte("late"))
	}))
	t.Cleanup(upstream.Close)
	allowed, err := manifest.ParseHostPattern(upstream.URL)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		fn       string
		wasm     []byte
		uri      string
		min, max time.Duration
	}{
		{name: "spinning", fn: "slow", wasm: slow, uri: "/slow?spin=" + busy.String(), min: busy - 10*time.Millisecond, max: 10 * busy},
		{name: "sleeping", fn: "slow", wasm: slow, uri: "/slow?d=" + busy.String(), max: busy / 2},
		{name: "waiting on outbound", fn: "dial", wasm: dial, uri: "/dial?url=" + url.QueryEscape(upstream.URL+"/"), max: busy / 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, m := newEngine(t)
			s := spec(tt.fn, tt.wasm)
			s.Scaling.MinWarm = 1
			s.Capabilities.AllowedOutboundHosts = []manifest.HostPattern{allowed}
			s.Capabilities.OutboundTimeout = 10 * busy
			s.Limits.Timeout = 30 * busy
			f := load(t, e, s)
			before, ok := m.GuestCPU(tt.fn, version)
			if !ok {
				t.Fatal("no guest CPU counter for a loaded function")
			}
			t0 := time.Now()
			resp := wantOK(t, f, get(tt.uri), "")
			wall := time.Since(t0)
			after, _ := m.GuestCPU(tt.fn, version)
			used := after - before
			t.Logf("%s: guest CPU %v over %v of wall time (%d)", tt.uri, used, wall, resp.Status)
			if wall < busy {
				t.Fatalf("the call took %v, less than the %v it should spend", wall, busy)
			}
			if used < tt.min || used > tt.max {
				t.Fatalf("guest CPU %v, want %v to %v", used, tt.min, tt.max)
			}
			if got := scrapeCounter(m, "fermion_guest_cpu_seconds_total", map[string]string{"function": tt.fn, "version": version}); got != after.Seconds() {
				t.Fatalf("fermion_guest_cpu_seconds_total = %v, want %v", got, after.Seconds())
			}
		})
	}
}

// TestStartReasons: each instance start is counted under the situation that caused it
// (fermion_instance_starts_total{reason}). Scale starts are checked in TestPoolAutoscale.
func TestStartReasons(t *testing.T) {
	hello, panicky := reactor(t, guestHello), reactor(t, guestPanic)
	tests := []struct {
		name    string
		fn      string
		wasm    []byte
		minWarm int
		uris    []string // requests sent after the load; a 5xx is expected from ?panic=1
		want    map[string]float64
	}{
		{name: "prewarm at load", fn: "hello", wasm: hello, minWarm: 2,
			want: map[string]float64{telemetry.StartPrewarm: 2}},
		{name: "request on an empty pool", fn: "hello", wasm: hello, uris: []string{"/hello", "/hello"},
			want: map[string]float64{telemetry.StartRequest: 1}},
		{name: "replace after a panic", fn: "panic", wasm: panicky, minWarm: 1, uris: []string{"/panic?panic=1", "/panic"},
			want: map[string]float64{telemetry.StartPrewarm: 1, telemetry.StartReplace: 1}},
		{name: "request after a panic on an empty pool", fn: "panic", wasm: panicky, uris: []string{"/panic?panic=1", "/panic"},
			want: map[string]float64{telemetry.StartRequest: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, m := newEngine(t)
			s := spec(tt.fn, tt.wasm)
			s.Scaling.MinWarm = tt.minWarm
			f := load(t, e, s)
			for _, uri := range tt.uris {
				// Let a replacement finish first, so the next request finds it warm.
				fermiontest.WaitFor(t, 5*time.Second, func() error {
					if st := f.Stats(); st.Busy != 0 || st.Total < tt.minWarm {
						return fmt.Errorf("pool %+v, want at least %d idle", st, tt.minWarm)
					}
					return nil
				})
				if _, err := f.Invoke(t.Context(), get(uri)); err != nil && !strings.Contains(uri, "panic=1") {
					t.Fatalf("%s: %v", uri, err)
				}
			}
			fermiontest.WaitFor(t, 5*time.Second, func() error {
				for _, r := range telemetry.StartReasons {
					if got := startsOf(m, tt.fn, r); got != tt.want[r] {
						return fmt.Errorf("starts{reason=%q} = %v, want %v", r, got, tt.want[r])
					}
				}
				return nil
			})
		})
	}
}

func startsOf(m *telemetry.Metrics, name, reason string) float64 {
	return toFloat64(m.InstanceStarts.WithLabelValues(name, version, reason))
}

func scrapeCounter(m *telemetry.Metrics, metric string, want map[string]string) float64 {
	mfs, err := m.Registry.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
	series:
		for _, s := range mf.GetMetric() {
			for _, lp := range s.GetLabel() {
				if want[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			return s.GetCounter().GetValue()
		}
	}
	return -1
}
