package cli

import "testing"

// TestWarmupOf: inspect's warmup line, from the normalized manifest an artifact carries.
func TestWarmupOf(t *testing.T) {
	for _, tc := range []struct{ name, norm, want string }{
		{"none", `{"component":{"abi":"reactor"}}`, "none"},
		{"hook", `{"component":{"abi":"reactor","warmup":"/warmup?x=1","warmup_timeout":"250ms"}}`, "GET /warmup?x=1 on each new instance before it takes traffic (timeout 250ms)"},
		{"not a manifest", `[]`, "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := warmupOf([]byte(tc.norm)).String(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
