package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRolloutMetricsFlags: a bad Prometheus URL or metrics config is a usage error
// before fermion server or fermion up starts anything, positioned in the file.
func TestRolloutMetricsFlags(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "metrics.toml")
	if err := os.WriteFile(bad, []byte("timeout = \"2s\"\nrequets = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"not a URL", []string{"--rollout-prometheus", "127.0.0.1:9090"}, []string{"--rollout-prometheus", "http://127.0.0.1:9090"}},
		{"config without server", []string{"--rollout-metrics-config", bad}, []string{"--rollout-metrics-config needs --rollout-prometheus"}},
		{"missing config", []string{"--rollout-prometheus", "http://127.0.0.1:9090", "--rollout-metrics-config", filepath.Join(dir, "nope.toml")}, []string{"--rollout-metrics-config", "nope.toml"}},
		{"bad config", []string{"--rollout-prometheus", "http://127.0.0.1:9090", "--rollout-metrics-config", bad}, []string{bad + ":2:1: requets: unknown key; did you mean \"requests\"?"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, verb := range []string{"server", "up"} { // both take the server's flags
				args := append([]string{verb, "--data", t.TempDir(), "--save-context=false"}, tc.args...)
				code, _, stderr := run(t, args...)
				if code != 2 {
					t.Fatalf("%s exited %d: %s; want 2 (usage)", verb, code, stderr)
				}
				for _, w := range tc.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("%s: stderr %q does not say %q", verb, stderr, w)
					}
				}
			}
		})
	}
}
