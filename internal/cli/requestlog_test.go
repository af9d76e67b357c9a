package cli_test

import "testing"

// TestRequestLogFlags: a request log flag that cannot work is refused before anything
// starts, with the flag, what is wrong and what to write instead.
func TestRequestLogFlags(t *testing.T) {
	checkRefusals(t, []refusal{
		{name: "zero rate", args: []string{"run", "--request-log-rate", "0"}, want: []string{"--request-log-rate 0", "at least 1", "--request-log-all"}},
		{name: "huge rate", args: []string{"run", "--request-log-rate", "5000000"}, want: []string{"--request-log-rate 5000000", "at most 1000000", "--request-log-all"}},
		{name: "negative slow", args: []string{"run", "--request-log-slow", "-1s"}, want: []string{"--request-log-slow -1s", "use 0"}},
		{name: "agent", args: []string{"agent", "--server", "nats://127.0.0.1:1", "--request-log-rate", "-3"}, want: []string{"--request-log-rate -3"}},
	})
}
