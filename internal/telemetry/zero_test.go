package telemetry_test

import (
	"strings"
	"testing"

	"fermion.dev/fermion/internal/telemetry"
)

// nodeMetrics returns the metrics of a node serving function f version 1, with a span
// spool's collectors registered: every series a node exports from its start.
func nodeMetrics(t *testing.T) *telemetry.Metrics {
	t.Helper()
	m := telemetry.NewMetrics("test")
	m.Function("f", "1")
	spool, err := telemetry.NewSpool(telemetry.SpoolConfig{Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(spool.Close)
	for _, c := range spool.Collectors() {
		m.Registry.MustRegister(c)
	}
	return m
}

// TestLabelledCountersStartAtZero lists, value by value, every labelled error, rejection
// and result counter of a node and checks that each series exists at 0 as soon as a
// function version loads (or the process starts, for the node-wide ones): healthy
// panels show 0, not "no data", and rate() works from the first scrape. The values are
// written out rather than taken from the package's lists, so a reason dropped from a
// list fails here; docs/telemetry.md documents the same values.
func TestLabelledCountersStartAtZero(t *testing.T) {
	m := nodeMetrics(t)
	tests := []struct {
		metric string
		label  string
		values string
		fv     bool // labelled by function and version too
	}{
		{metric: "fermion_requests_total", label: "code", values: "1xx 2xx 3xx 4xx 5xx", fv: true},
		{metric: "fermion_instance_starts_total", label: "reason", values: "prewarm scale request replace", fv: true},
		{metric: "fermion_request_errors_total", label: "reason", fv: true,
			values: "bad_request request_body canceled trap panic oom internal bad_response response_body concurrency node_memory closed timeout body_timeout write_timeout"},
		{metric: "fermion_instance_discards_total", label: "reason", values: "trap panic oom timeout canceled recycled idle closed", fv: true},
		{metric: "fermion_outbound_requests_total", label: "result", values: "ok denied error timeout tls", fv: true},
		{metric: "fermion_limit_rejections_total", label: "limit", values: "concurrency request_body response_body timeout memory node_memory", fv: true},
		{metric: "fermion_bad_responses_total", label: "reason", values: "empty no_header_end header_too_large header_syntax status no_content_type encoding", fv: true},
		{metric: "fermion_gateway_rejections_total", label: "reason", values: "connections header_timeout body_timeout write_timeout"},
		{metric: "fermion_load_failures_total", label: "reason", values: "build manifest unavailable rejected pull policy module routes"},
		{metric: "fermion_telemetry_exports_total", label: "result", values: "sent spooled replayed rejected"},
		{metric: "fermion_telemetry_spool_dropped_total", label: "reason", values: "full rejected unreadable"},
		{metric: "fermion_instance_snapshots_total", label: "result",
			values: "taken disabled not_rewritten start_function table_writes global_type init_failed init_opened_files node_memory"},
	}
	for _, tt := range tests {
		t.Run(tt.metric, func(t *testing.T) {
			for _, v := range strings.Fields(tt.values) {
				l := map[string]string{tt.label: v}
				if tt.fv {
					l["function"], l["version"] = "f", "1"
				}
				if got, ok := counter(t, m, tt.metric, l); !ok || got != 0 {
					t.Errorf("%s{%s=%q} = %v (exists %v), want 0 from the start", tt.metric, tt.label, v, got, ok)
				}
			}
		})
	}
	fv := map[string]string{"function": "f", "version": "1"}
	if got, ok := counter(t, m, "fermion_guest_cpu_seconds_total", fv); !ok || got != 0 {
		t.Errorf("fermion_guest_cpu_seconds_total = %v (exists %v), want 0 from the start", got, ok)
	}
	// And a version's series go with it.
	m.Forget("f", "1")
	if _, ok := counter(t, m, "fermion_guest_cpu_seconds_total", fv); ok {
		t.Error("fermion_guest_cpu_seconds_total outlived its function version")
	}
	for _, tt := range tests[:7] {
		v, _, _ := strings.Cut(tt.values, " ")
		if _, ok := counter(t, m, tt.metric, map[string]string{"function": "f", "version": "1", tt.label: v}); ok {
			t.Errorf("%s{%s=%q} outlived its function version", tt.metric, tt.label, v)
		}
	}
}
