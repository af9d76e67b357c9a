package cli_test

import (
	"strings"
	"testing"
)

// TestRequestLogFlags: a request log flag that cannot work is refused before anything
// starts, with the flag, what is wrong and what to write instead.
func TestRequestLogFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{name: "zero rate", args: []string{"run", "--request-log-rate", "0"}, want: []string{"--request-log-rate 0", "at least 1", "--request-log-all"}},
		{name: "huge rate", args: []string{"run", "--request-log-rate", "5000000"}, want: []string{"--request-log-rate 5000000", "at most 1000000", "--request-log-all"}},
		{name: "negative slow", args: []string{"run", "--request-log-slow", "-1s"}, want: []string{"--request-log-slow -1s", "use 0"}},
		{name: "agent", args: []string{"agent", "--server", "nats://127.0.0.1:1", "--request-log-rate", "-3"}, want: []string{"--request-log-rate -3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.args...)
			if code != 2 {
				t.Fatalf("%v exited %d, want 2; stderr: %s", tt.args, code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Fatalf("%v stderr does not contain %q: %s", tt.args, w, stderr)
				}
			}
			if strings.Contains(stdout, "listening") {
				t.Fatalf("%v started serving: %s", tt.args, stdout)
			}
		})
	}
}
