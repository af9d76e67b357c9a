package registry

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestFailureCountersStartAtZero: every failure reason is exported at 0 before the first
// failure, so panels show 0 rather than no data. The values are written out, not taken
// from uploadFailReasons, so a reason dropped from that list fails here.
func TestFailureCountersStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := newMetrics(reg); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]map[string]float64{} // metric -> reason -> value
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					if have[f.GetName()] == nil {
						have[f.GetName()] = map[string]float64{}
					}
					have[f.GetName()][l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	tests := []struct {
		metric  string
		reasons string
	}{
		{"fermion_registry_upload_failures_total", "digest_mismatch range size body unknown_session conflict storage expired scan"},
		{"fermion_registry_read_failures_total", "corrupt"},
	}
	for _, tt := range tests {
		t.Run(tt.metric, func(t *testing.T) {
			for _, r := range strings.Fields(tt.reasons) {
				if v, ok := have[tt.metric][r]; !ok || v != 0 {
					t.Errorf("%s{reason=%q} = %v (exists %v), want 0 from the start", tt.metric, r, v, ok)
				}
			}
		})
	}
}
