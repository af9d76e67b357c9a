package manifest

import (
	"strings"
	"testing"
	"time"
)

const warmupBase = `manifest_version = 1
[app]
name = "hello"
version = "0.1.0"
[component]
source = "hello.wasm"
`

const warmupRoutes = `[[routes]]
path = "/hello"
`

// TestComponentWarmup: the hook and its timeout decode, default, normalise (only when
// set) and round-trip; mistakes are positioned and say how to fix them.
func TestComponentWarmup(t *testing.T) {
	for _, tc := range []struct {
		name, add   string
		path        string
		timeout     time.Duration
		normContain string
	}{
		{"none", "", "", 0, ""},
		{"default timeout", "warmup = \"/warmup\"\n", "/warmup", DefaultWarmupTimeout, `"warmup":"/warmup","warmup_timeout":"5s"`},
		{"a URL in the query", "warmup = \"/warm?backend=http://127.0.0.1:9000/x\"\n", "/warm?backend=http://127.0.0.1:9000/x", DefaultWarmupTimeout, `"warmup":"/warm?backend=http://127.0.0.1:9000/x"`},
		{"with query and timeout", "warmup = \"/hello/warm?cache=all\"\nwarmup_timeout = \"250ms\"\n", "/hello/warm?cache=all", 250 * time.Millisecond, `"warmup":"/hello/warm?cache=all","warmup_timeout":"250ms"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustParse(t, warmupBase+tc.add+warmupRoutes, "")
			if m.Component.Warmup != tc.path || m.Component.WarmupTimeout != tc.timeout {
				t.Fatalf("warmup %q %s, want %q %s", m.Component.Warmup, m.Component.WarmupTimeout, tc.path, tc.timeout)
			}
			norm, err := m.Normalize()
			if err != nil {
				t.Fatal(err)
			}
			if tc.normContain == "" {
				if strings.Contains(string(norm), "warmup") {
					t.Errorf("a manifest without a hook normalises with one: %s", norm)
				}
				return
			}
			if !strings.Contains(string(norm), tc.normContain) {
				t.Errorf("normalised %s lacks %s", norm, tc.normContain)
			}
			n, err := ParseNormalized(norm)
			if err != nil || n.Component.Warmup != tc.path {
				t.Errorf("ParseNormalized: %+v, %v", n.Component, err)
			}
		})
	}
}

func TestComponentWarmupErrors(t *testing.T) {
	for _, tc := range []struct {
		name, add string
		want      []string
	}{
		{"not a path", "warmup = \"warmup\"\n", []string{"fermion.toml:7", "component.warmup", `must start with "/", like "/warmup"`}},
		{"a URL", "warmup = \"http://example.com/warm\"\n", []string{"component.warmup", "is a URL; give only the path"}},
		{"scheme-relative", "warmup = \"//host/warm\"\n", []string{"is a URL"}},
		{"empty", "warmup = \"\"\n", []string{"component.warmup", "must not be empty"}},
		{"space", "warmup = \"/warm up\"\n", []string{"spaces or control characters"}},
		{"fragment", "warmup = \"/warm#x\"\n", []string{"no fragment"}},
		{"not a string", "warmup = true\n", []string{"component.warmup", "must be a string"}},
		{"timeout too short", "warmup = \"/w\"\nwarmup_timeout = \"1ms\"\n", []string{"fermion.toml:8", "component.warmup_timeout", "out of range; give 10ms to 1m0s"}},
		{"timeout too long", "warmup = \"/w\"\nwarmup_timeout = \"2m\"\n", []string{"component.warmup_timeout", "out of range"}},
		{"timeout not a duration", "warmup = \"/w\"\nwarmup_timeout = \"soon\"\n", []string{"component.warmup_timeout", "not a duration"}},
		{"timeout a number", "warmup = \"/w\"\nwarmup_timeout = 5\n", []string{"component.warmup_timeout", `add a unit and quotes: warmup_timeout = "5s"`}},
		{"timeout zero", "warmup = \"/w\"\nwarmup_timeout = \"0s\"\n", []string{"component.warmup_timeout", "greater than 0"}},
		{"timeout without hook", "warmup_timeout = \"1s\"\n", []string{"component.warmup_timeout", "component.warmup is not"}},
		{"misspelt", "warmpu = \"/w\"\n", []string{"component.warmpu", `did you mean`, "warmup"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("", []byte(warmupBase+tc.add+warmupRoutes), "")
			if err == nil {
				t.Fatal("parsed")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
