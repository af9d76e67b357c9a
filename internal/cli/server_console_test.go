package cli_test

import (
	"strings"
	"testing"
)

// TestConsoleServerFlags: a bad --trace-ui-url is a usage error before anything
// starts, saying what a template looks like.
func TestConsoleServerFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  string
		want []string
	}{
		{"no placeholder", "http://jaeger:16686/trace/", []string{"--trace-ui-url", "has no {trace_id}", "http://jaeger:16686/trace/{trace_id}"}},
		{"not absolute", "jaeger:16686/trace/{trace_id}", []string{"--trace-ui-url", "not an absolute http(s) URL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, "server", "--data", t.TempDir(), "--save-context=false", "--trace-ui-url", tc.url)
			if code != 2 {
				t.Fatalf("exited %d: %s; want 2 (usage)", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not say %q", stderr, w)
				}
			}
		})
	}
}
