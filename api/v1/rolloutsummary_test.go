package v1

import "testing"

// TestRolloutSummaryDescribe: two builds of one app version are told apart by their
// revision numbers; revisions without a version are named by number once.
func TestRolloutSummaryDescribe(t *testing.T) {
	base := RolloutSummary{Kind: "canary", Phase: "analysing", Step: 1, Steps: 4, StepText: "10%"}
	for _, tt := range []struct {
		name     string
		from, to RolloutRevision
		want     string
	}{
		{"two versions", RolloutRevision{Number: 1, Version: "1.0.0"}, RolloutRevision{Number: 2, Version: "2.0.0"}, "rolling out: step 2/4 (10%) canary 2.0.0"},
		{"one version, two builds", RolloutRevision{Number: 1, Version: "1.0.0"}, RolloutRevision{Number: 3, Version: "1.0.0"}, "rolling out: step 2/4 (10%) canary 1.0.0 (revision 3)"},
		{"no versions", RolloutRevision{Number: 1}, RolloutRevision{Number: 2}, "rolling out: step 2/4 (10%) canary revision 2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			r.From, r.To = tt.from, tt.to
			if got := r.Describe(); got != tt.want {
				t.Errorf("Describe() = %q, want %q", got, tt.want)
			}
		})
	}
}
