package telemetry_test

import (
	"testing"

	"fermion.dev/fermion/internal/telemetry"
)

// TestReasonSeriesStartAtZero: every known reason is exported at 0 before anything
// happens (panels show 0, not no data), and a function version's go with it.
func TestReasonSeriesStartAtZero(t *testing.T) {
	m := telemetry.NewMetrics("test")
	fm := m.Function("f", "1")
	type reasonCase struct {
		name    string
		metric  string
		label   string
		reasons []string
		fv      bool // labelled by function and version too
	}
	tests := []reasonCase{
		{name: "gateway rejections", metric: "fermion_gateway_rejections_total", label: "reason", reasons: telemetry.GatewayRejectReasons},
		{name: "load failures", metric: "fermion_load_failures_total", label: "reason", reasons: telemetry.LoadFailureReasons},
		{name: "bad responses", metric: "fermion_bad_responses_total", label: "reason", reasons: telemetry.BadResponseReasons, fv: true},
		{name: "limit rejections", metric: "fermion_limit_rejections_total", label: "limit", reasons: telemetry.LimitNames, fv: true},
	}
	labels := func(tt reasonCase, r string) map[string]string {
		l := map[string]string{tt.label: r}
		if tt.fv {
			l["function"], l["version"] = "f", "1"
		}
		return l
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range tt.reasons {
				if v, ok := counter(t, m, tt.metric, labels(tt, r)); !ok || v != 0 {
					t.Fatalf("%s{%s=%q} = %v (exists %v), want 0", tt.metric, tt.label, r, v, ok)
				}
			}
		})
	}
	fm.BadResponse(telemetry.BadResponseNoHeaderEnd)
	m.LoadFailure(telemetry.LoadModule)
	m.GatewayRejection(telemetry.RejectBodyTimeout)
	for _, c := range []struct {
		metric string
		labels map[string]string
	}{
		{"fermion_bad_responses_total", map[string]string{"function": "f", "version": "1", "reason": telemetry.BadResponseNoHeaderEnd}},
		{"fermion_load_failures_total", map[string]string{"reason": telemetry.LoadModule}},
		{"fermion_gateway_rejections_total", map[string]string{"reason": telemetry.RejectBodyTimeout}},
	} {
		if v, _ := counter(t, m, c.metric, c.labels); v != 1 {
			t.Fatalf("%s%v = %v, want 1", c.metric, c.labels, v)
		}
	}
	m.Forget("f", "1")
	if _, ok := counter(t, m, "fermion_bad_responses_total", map[string]string{"function": "f", "version": "1", "reason": telemetry.BadResponseEmpty}); ok {
		t.Fatal("bad response series outlived their function version")
	}
	// Nil metrics record nothing and do not panic.
	var none *telemetry.Metrics
	none.LoadFailure(telemetry.LoadBuild)
	none.GatewayRejection(telemetry.RejectConnections)
	none.GatewayConnectionsAdd(1)
	none.Function("f", "1").BadResponse(telemetry.BadResponseEmpty)
}
