package controlplane_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	v1 "fermion.dev/fermion/api/v1"
)

// seriesValue reads the counter with exactly these labels, and whether it exists.
func seriesValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// TestErrorCountersStartAtZero: the control plane's labelled result counters (rollout
// outcomes too) exist at 0 from the start, and a policy's evaluation and violation counters from when it is in
// force, so that panels show 0 rather than no data until the first error or violation.
func TestErrorCountersStartAtZero(t *testing.T) {
	f, reg := policyFleet(t, nil)
	src := admissionPolicy("allow-all", `"true"`, "")
	if _, _, err := f.c.ApplyPolicy(context.Background(), "allow-all", v1.PolicyApply{Source: src, Mode: v1.PolicyModeDeny}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.GetPolicy(context.Background(), "allow-all"); err != nil { // puts it in force here
		t.Fatal(err)
	}
	tests := []struct {
		metric string
		labels string // fixed labels, k=v comma-separated
		label  string
		values string
		passes bool // counts the leader's passes since it started: exists, at any value
	}{
		{metric: "fermion_controlplane_reconciles_total", label: "result", values: "ok error", passes: true},
		{metric: "fermion_controlplane_placements_total", label: "result", values: "placed unplaceable"},
		{metric: "fermion_policy_evaluations_total", labels: "policy=allow-all,mode=deny", label: "result", values: "pass violation error ignored skipped"},
		{metric: "fermion_policy_violations_total", labels: "policy=allow-all", label: "mode", values: "deny"},
		{metric: "fermion_rollouts_total", label: "outcome", values: "succeeded rolled_back aborted failed"},
	}
	for _, tt := range tests {
		t.Run(tt.metric, func(t *testing.T) {
			for _, v := range strings.Fields(tt.values) {
				l := map[string]string{tt.label: v}
				for _, kv := range strings.Split(tt.labels, ",") {
					if k, val, ok := strings.Cut(kv, "="); ok {
						l[k] = val
					}
				}
				if got, ok := seriesValue(t, reg, tt.metric, l); !ok || (got != 0 && !tt.passes) {
					t.Errorf("%s%v = %v (exists %v), want it from the start, at 0", tt.metric, l, got, ok)
				}
			}
		})
	}
}
