package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fermion.dev/fermion/internal/fermiontest"
)

// functionDir writes a copy of examples/hello named name, routed at /name, with wasm as
// its module, and returns its directory.
func functionDir(t *testing.T, name string, wasm []byte) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(fermiontest.Root(t), "examples", "hello", "fermion.toml"))
	if err != nil {
		t.Fatal(err)
	}
	toml := strings.Replace(string(src), `name = "hello"`, `name = "`+name+`"`, 1)
	toml = strings.Replace(toml, `path = "/hello"`, `path = "/`+name+`"`, 1)
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for file, data := range map[string][]byte{"fermion.toml": []byte(toml), "hello.wasm": wasm} {
		if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestRunServesWhatLoads: one truncated module (or a missing one) among several does not
// keep run from serving the others; each bad one is reported with its reason and
// counted; run fails only when nothing can be served.
func TestRunServesWhatLoads(t *testing.T) {
	wasm := fermiontest.Guest(t, "examples/hello", true)
	good := functionDir(t, "good", wasm)
	truncated := functionDir(t, "truncated", wasm[:len(wasm)/2])
	missing := functionDir(t, "missing", wasm)
	if err := os.Remove(filepath.Join(missing, "hello.wasm")); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()

	t.Run("the good one serves", func(t *testing.T) {
		s := startRun(t, true, good, truncated, missing, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--cache-dir", cache, "--no-build")
		if r := get(t, s.gateway+"/good"); r.status != 200 {
			t.Fatalf("GET /good = %d %q", r.status, r.body)
		}
		for _, path := range []string{"/truncated", "/missing"} {
			if r := get(t, s.gateway+path); r.status != 404 {
				t.Fatalf("GET %s = %d, want 404: it failed to load", path, r.status)
			}
		}
		stderr := s.stderr.String()
		for _, w := range []string{"not serving " + filepath.Join(truncated, "fermion.toml") + ": module: load truncated@0.1.0",
			"not serving " + filepath.Join(missing, "fermion.toml") + ": ", "does not exist"} {
			if !strings.Contains(stderr, w) {
				t.Fatalf("stderr does not say %q:\n%s", w, stderr)
			}
		}
		if out := s.stdout.String(); !strings.Contains(out, "serving good@0.1.0") || strings.Contains(out, "serving truncated") {
			t.Fatalf("stdout announces the wrong functions:\n%s", out)
		}
		waitMetrics(t, s.admin, `fermion_load_failures_total{reason="module"} 1`, `fermion_load_failures_total{reason="build"} 1`,
			`fermion_load_failures_total{reason="routes"} 0`)
		if code := s.stop(t); code != 0 {
			t.Fatalf("run exited %d after serving, want 0", code)
		}
	})

	t.Run("none loads", func(t *testing.T) {
		code, stdout, stderr := run(t, "run", truncated, missing, "--listen", "127.0.0.1:0", "--admin-listen", "", "--cache-dir", cache, "--no-build")
		if code != 1 {
			t.Fatalf("run exited %d with no function to serve, want 1", code)
		}
		for _, w := range []string{"none of the 2 functions can be served", "fermion.toml: module: load truncated@0.1.0", "fermion.toml: build: "} {
			if !strings.Contains(stderr, w) {
				t.Fatalf("stderr does not say %q:\n%s", w, stderr)
			}
		}
		if strings.Contains(stdout, "listening") {
			t.Fatalf("run started serving: %s", stdout)
		}
	})
}

// TestGatewayLimitFlags: a client limit flag that cannot work is a usage error naming
// the flag, before anything listens.
func TestGatewayLimitFlags(t *testing.T) {
	checkRefusals(t, []refusal{
		{name: "negative cap", args: []string{"run", "--max-connections", "-1"}, want: []string{"--max-connections -1", "0 for no cap"}},
		{name: "negative timeout", args: []string{"run", "--body-timeout", "-1s"}, want: []string{"--body-timeout -1s", "use 0"}},
		{name: "rate not a size", args: []string{"run", "--min-body-rate", "fast"}, want: []string{"--min-body-rate", `"fast" is not a size`}},
		{name: "rate without its grace", args: []string{"run", "--body-timeout", "0"}, want: []string{"--min-body-rate needs --body-timeout"}},
		{name: "tiny header cap", args: []string{"run", "--max-header-size", "100B"}, want: []string{"--max-header-size", "below 1 KiB"}},
		{name: "agent", args: []string{"agent", "--server", "nats://127.0.0.1:1", "--write-timeout", "-5s"}, want: []string{"--write-timeout -5s"}},
	})
}
