package manifest

import (
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/rollout"
)

// TestStrategyTable: [strategy] decodes through rollout.DecodeTable; its mistakes are
// positioned at their lines with did-you-mean, and a manifest without it has none.
func TestStrategyTable(t *testing.T) {
	m, err := Parse("", []byte(sloBase+"[strategy]\nkind = \"canary\"\nsteps = [\"1node\", \"10%\", \"manual\", \"100%\"]\ninterval = \"30s\"\n[strategy.analysis]\nmax_error_ratio = 2.0\nmin_requests = 50\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	s := m.Strategy
	if s == nil || s.Kind != rollout.Canary || len(s.Steps) != 3 || s.Steps[1].Gate != rollout.GateManual || s.Interval != 30*time.Second ||
		s.Checks.MaxErrorRatio != 0.02 || s.Checks.MinRequests != 50 {
		t.Fatalf("strategy %+v", s)
	}
	if plain, _ := Parse("", []byte(sloBase), ""); plain.Strategy != nil {
		t.Errorf("a manifest without [strategy] has %+v", plain.Strategy)
	}
	for _, tc := range []struct {
		name, add string
		want      []string
	}{
		{"misspelt kind", "[strategy]\nkind = \"canery\"\nsteps = [\"10%\"]\n", []string{":10:", "strategy.kind", `did you mean "canary"`}},
		{"unknown key", "[strategy]\nkind = \"canary\"\nstepz = [\"10%\"]\n", []string{"strategy.stepz", "steps"}},
		{"bad step", "[strategy]\nkind = \"canary\"\nsteps = [\"10%\", \"1nod\"]\n", []string{"strategy.steps", "is not a step"}},
		{"misspelt check", "[strategy]\nkind = \"canary\"\nsteps = [\"10%\"]\n[strategy.analysis]\nmax_eror_ratio = 1.0\n", []string{"strategy.analysis.max_eror_ratio", "max_error_ratio"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("", []byte(sloBase+tc.add), "")
			if err == nil {
				t.Fatal("parsed")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
