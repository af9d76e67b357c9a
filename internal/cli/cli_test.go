package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/cli"
	"fermion.dev/fermion/internal/fermiontest"
)

// run runs a short command to completion.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code = cli.RunContext(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// refusal is a command line that must be refused as a usage error: exit 2, one
// "fermion: " error on stderr holding every want, and nothing on stdout (so nothing
// started listening).
type refusal struct {
	name string
	args []string
	want []string // in stderr
}

// checkRefusals runs each refusal as a named subtest.
func checkRefusals(t *testing.T, tests []refusal) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.args...)
			if code != 2 {
				t.Fatalf("%v exited %d, want 2; stderr: %s", tt.args, code, stderr)
			}
			if !strings.HasPrefix(stderr, "fermion: ") {
				t.Fatalf("stderr %q does not start with fermion:", stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Fatalf("%v stderr does not contain %q: %s", tt.args, w, stderr)
				}
			}
			if stdout != "" {
				t.Fatalf("%v wrote to stdout: %q", tt.args, stdout)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Setenv("FERMION_HOME", t.TempDir())
	t.Setenv("FERMION_SERVER", "")
	first := regexp.MustCompile(`^fermion \S+.* go1\.\S+ ` + runtime.GOOS + "/" + runtime.GOARCH + "\n")
	for _, args := range [][]string{{"version"}, {"--version"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := run(t, args...)
			if code != 0 {
				t.Fatalf("%v exited %d: %s", args, code, errOut)
			}
			if !strings.HasPrefix(out, "fermion "+cli.Version) || !first.MatchString(out) ||
				!regexp.MustCompile(`(?m)^commit   \S+`).MatchString(out) || !regexp.MustCompile(`(?m)^built    \S+`).MatchString(out) {
				t.Fatalf("%v printed %q", args, out)
			}
			if strings.Contains(out, "server") {
				t.Fatalf("%v asked a server none configured: %q", args, out)
			}
		})
	}
	t.Run("json with an unreachable server", func(t *testing.T) {
		t.Setenv("FERMION_SERVER", "http://127.0.0.1:1")
		code, out, errOut := run(t, "version", "-o", "json")
		if code != 0 {
			t.Fatalf("exited %d: %s", code, errOut)
		}
		var v struct {
			Version, Go, Platform string
			Server                *struct{ URL, Version, Error string }
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if v.Version != cli.Version || v.Go != runtime.Version() || v.Platform != runtime.GOOS+"/"+runtime.GOARCH ||
			v.Server == nil || v.Server.URL != "http://127.0.0.1:1" || v.Server.Version != "" || !strings.Contains(v.Server.Error, "refused") {
			t.Fatalf("version -o json: %+v (server %+v)", v, v.Server)
		}
	})
}

func TestHelp(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{name: "root", args: []string{"--help"}, want: []string{"Usage:", "fermion [command]", "new", "run", "version"}},
		{name: "root short", args: []string{"-h"}, want: []string{"Usage:"}},
		{name: "no arguments", args: nil, want: []string{"Usage:", "Available Commands:"}},
		{name: "help verb", args: []string{"help", "run"}, want: []string{"Usage:", "fermion run"}},
		{name: "run", args: []string{"run", "--help"}, want: []string{"Usage:", "fermion run [DIR|fermion.toml ...]", "--listen", "--admin-listen", "--cache-dir", "--no-build", "--no-telemetry", "--profiling", "--log-level", "--drain-timeout"}},
		{name: "new", args: []string{"new", "--help"}, want: []string{"Usage:", "fermion new NAME", "--lang", "--http-api", "--dir", "--force"}},
		{name: "version", args: []string{"version", "--help"}, want: []string{"Usage:", "fermion version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.args...)
			if code != 0 {
				t.Fatalf("%v exited %d: %s", tt.args, code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Fatalf("%v output does not mention %q:\n%s", tt.args, w, stdout)
				}
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	checkRefusals(t, []refusal{
		{name: "unknown flag", args: []string{"run", "--bogus"}, want: []string{"unknown flag: --bogus", "fermion run --help"}},
		{name: "unknown root flag", args: []string{"--bogus"}, want: []string{"unknown flag: --bogus", "fermion --help"}},
		{name: "unknown shorthand flag", args: []string{"new", "-z", "x"}, want: []string{"unknown shorthand flag", "fermion new --help"}},
		{name: "bad flag value", args: []string{"run", "--drain-timeout", "soon"}, want: []string{"invalid argument", "--help"}},
		{name: "unknown command", args: []string{"bogus"}, want: []string{`unknown command "bogus"`, "fermion --help"}},
		{name: "new without a name", args: []string{"new"}, want: []string{"accepts 1 arg(s), received 0", "fermion new NAME"}},
		{name: "new with two names", args: []string{"new", "a", "b"}, want: []string{"accepts 1 arg(s), received 2"}},
		{name: "version with an argument", args: []string{"version", "x"}, want: []string{"accepts 0 arg(s)"}},
		{name: "new with an unsupported language", args: []string{"new", "x", "--lang", "cobol"}, want: []string{`language "cobol" is not supported`, "go, rust"}},
		{name: "new with an unknown HTTP API", args: []string{"new", "x", "--http-api", "gin"}, want: []string{`--http-api "gin" is not supported`, "fhttp, net/http"}},
		{name: "run with a bad log level", args: []string{"run", "--log-level", "loud"}, want: []string{`log level "loud"`, "debug, info, warn or error"}},
		{name: "server with a leader lease too short to renew", args: []string{"server", "--leader-ttl", "100ms"}, want: []string{"--leader-ttl (100ms) is too short", "at least 400ms"}},
	})
}

func TestNewBadName(t *testing.T) {
	tests := []struct {
		name string
		want string
	}{
		{name: "Bad_Name", want: `"Bad_Name" is not a valid name; use 1-63 lowercase letters, digits and '-'`},
		{name: "UPPER", want: `"UPPER" is not a valid name`},
		{name: "dash-", want: `"dash-" is not a valid name`},
		{name: "../evil", want: `"../evil" is not a valid name`},
		{name: "a/b", want: `"a/b" is not a valid name`},
		{name: `x"y`, want: `is not a valid name`},
		{name: "a\nb = 1", want: `is not a valid name`},
		{name: "nul\x00", want: `is not a valid name`},
		{name: strings.Repeat("a", 64), want: `is not a valid name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "fn")
			code, _, stderr := run(t, "new", tt.name, "--dir", dir)
			if code != 2 {
				t.Fatalf("new %q exited %d, want 2: %s", tt.name, code, stderr)
			}
			if !strings.Contains(stderr, "function name") || !strings.Contains(stderr, tt.want) {
				t.Fatalf("new %q: stderr %q, want a message about the name containing %q", tt.name, stderr, tt.want)
			}
			if strings.Contains(stderr, "TOML") || strings.Contains(stderr, "fermion.toml:") {
				t.Fatalf("new %q: stderr %q talks about the manifest file, not the name", tt.name, stderr)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("new %q created %s", tt.name, dir)
			}
		})
	}
}

// TestRunBadManifests: run refuses to start, with exit code 1 and an error naming the
// file, when a manifest is missing or wrong.
func TestRunBadManifests(t *testing.T) {
	dir := t.TempDir()
	invalid := filepath.Join(t.TempDir(), "fermion.toml")
	if err := os.WriteFile(invalid, []byte("manifest_version = 1\n[app]\nname = \"Bad_Name\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hello := filepath.Join(fermiontest.Root(t), "examples", "hello")
	tests := []struct {
		name  string
		paths []string
		want  []string
	}{
		{name: "directory without manifest", paths: []string{dir}, want: []string{"directory " + dir + " has no fermion.toml", "fermion new NAME"}},
		{name: "missing path", paths: []string{filepath.Join(dir, "nope")}, want: []string{filepath.Join(dir, "nope")}},
		{name: "invalid manifest", paths: []string{invalid}, want: []string{invalid + ":3", "app.name"}},
		{name: "one function twice", paths: []string{hello, filepath.Join(hello, "fermion.toml")}, want: []string{`function "hello" is defined by both`, filepath.Join("examples", "hello", "fermion.toml")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"run"}, tt.paths...), "--listen", "127.0.0.1:0", "--admin-listen", "", "--cache-dir", "", "--no-build")
			code, stdout, stderr := run(t, args...)
			if code != 1 {
				t.Fatalf("run exited %d, want 1: %s", code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Fatalf("stderr %q does not contain %q", stderr, w)
				}
			}
			if strings.Contains(stdout, "listening") {
				t.Fatalf("run started serving: %s", stdout)
			}
		})
	}
}

// server is a `fermion run` running in the background.
type server struct {
	stdout, stderr *fermiontest.SyncBuffer
	cancel         context.CancelFunc
	done           chan int
	gateway, admin string
}

var (
	gatewayLine = regexp.MustCompile(`(?m)^gateway listening on (https?://127\.0\.0\.1:\d+)$`)
	metricsLine = regexp.MustCompile(`(?m)^metrics on (http://127\.0\.0\.1:\d+)/metrics$`)
)

// startRun starts `fermion run args...` and waits until it serves.
func startRun(t *testing.T, wantAdmin bool, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{stdout: &fermiontest.SyncBuffer{}, stderr: &fermiontest.SyncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() { s.done <- cli.RunContext(ctx, append([]string{"run"}, args...), s.stdout, s.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			t.Error("fermion run did not stop 30s after its context was canceled")
		}
	})
	// Building a guest takes a few seconds, more on a cold build cache.
	fermiontest.WaitFor(t, 3*time.Minute, func() error {
		select {
		case code := <-s.done:
			s.done <- code
			t.Fatalf("fermion run exited %d before serving\nstdout:\n%s\nstderr:\n%s", code, s.stdout, s.stderr)
		default:
		}
		out := s.stdout.String()
		m := gatewayLine.FindStringSubmatch(out)
		if m == nil {
			return fmt.Errorf("no gateway line yet in %q", out)
		}
		s.gateway = m[1]
		if wantAdmin {
			a := metricsLine.FindStringSubmatch(out)
			if a == nil {
				return fmt.Errorf("no metrics line yet in %q", out)
			}
			s.admin = a[1]
		}
		return nil
	})
	return s
}

// stop cancels the run and returns its exit code.
func (s *server) stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code
		return code
	case <-time.After(30 * time.Second):
		t.Fatal("fermion run did not stop 30s after its context was canceled")
		return -1
	}
}

var client = &http.Client{Timeout: 30 * time.Second}

type response struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, url string) response {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// waitMetrics waits for the admin endpoint's /metrics to contain every one of want.
func waitMetrics(t *testing.T, admin string, want ...string) {
	t.Helper()
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		m := get(t, admin+"/metrics")
		if m.status != 200 {
			return fmt.Errorf("GET /metrics = %d", m.status)
		}
		for _, w := range want {
			if !strings.Contains(m.body, w) {
				return fmt.Errorf("/metrics lacks %s:\n%s", w, m.body)
			}
		}
		return nil
	})
}

var traceparent = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`)

// requestLogs returns the JSON request log lines in a run's stderr.
func requestLogs(t *testing.T, stderr string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue // build output
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] == "request" {
			out = append(out, rec)
		}
	}
	return out
}

// goTest runs a scaffolded function's own tests, natively.
func goTest(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("go", "test", "./...")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go test in the scaffold: %v\n%s", err, out)
	}
}

// TestNewThenRun scaffolds a function, builds it and serves it end to end.
func TestNewThenRun(t *testing.T) {
	if testing.Short() {
		t.Skip("scaffolds, tests natively, builds and serves a new function: not in -short")
	}
	dir := filepath.Join(t.TempDir(), "hello")
	code, stdout, stderr := run(t, "new", "hello", "--dir", dir)
	if code != 0 {
		t.Fatalf("new exited %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "created hello in "+dir) || !strings.Contains(stdout, "fermion run .") {
		t.Fatalf("new printed %q", stdout)
	}
	for _, f := range []string{"main.go", "main_test.go", "fermion.toml", "go.mod", ".gitignore", ".fermion/sdk/go.mod", ".fermion/sdk/sdk/fhttp/fhttp.go",
		".fermion/sdk/sdk/fermion/fermion.go", ".fermion/sdk/sdk/internal/guest/guest_wasip1.go", ".fermion/sdk/api/abi/abi.go"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("new did not write %s: %v", f, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "main.go")); !strings.Contains(string(b), `"fermion.dev/fermion/sdk/fhttp"`) {
		t.Fatalf("default main.go does not use fhttp:\n%s", b)
	}
	goTest(t, dir)

	// The net/http flavour builds too (run below serves the default one).
	t.Run("net/http API builds", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "legacy")
		if code, _, stderr := run(t, "new", "legacy", "--dir", dir, "--http-api", "net/http"); code != 0 {
			t.Fatalf("new --http-api net/http exited %d: %s", code, stderr)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "main.go")); !strings.Contains(string(b), `"net/http"`) {
			t.Fatalf("main.go is not a net/http handler:\n%s", b)
		}
		build := exec.Command("go", "build", "-buildmode=c-shared", "-o", "legacy.wasm", ".")
		build.Dir = dir
		build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		goTest(t, dir)
	})

	t.Run("non-empty directory needs --force", func(t *testing.T) {
		code, _, stderr := run(t, "new", "hello", "--dir", dir)
		if code != 1 || !strings.Contains(stderr, "not empty") || !strings.Contains(stderr, "--force") {
			t.Fatalf("new into a non-empty dir exited %d: %s", code, stderr)
		}
		if code, _, stderr := run(t, "new", "hello", "--dir", dir, "--force"); code != 0 {
			t.Fatalf("new --force exited %d: %s", code, stderr)
		}
	})

	s := startRun(t, true, dir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--cache-dir", t.TempDir())
	if out := s.stdout.String(); !strings.Contains(out, "serving hello@0.1.0 at "+s.gateway+"/hello") {
		t.Fatalf("run did not announce the route:\n%s", out)
	}

	r := get(t, s.gateway+"/hello")
	if r.status != 200 || r.body != "Hello from hello! You asked for /hello\n" {
		t.Fatalf("GET /hello = %d %q", r.status, r.body)
	}
	requestID := r.header.Get("X-Request-Id")
	if requestID == "" || !traceparent.MatchString(r.header.Get("Traceparent")) {
		t.Fatalf("GET /hello headers lack x-request-id or traceparent: %v", r.header)
	}
	if r := get(t, s.gateway+"/nope"); r.status != 404 {
		t.Fatalf("GET /nope = %d", r.status)
	}

	// A request is counted just after its response is written.
	waitMetrics(t, s.admin,
		`fermion_requests_total{code="2xx",function="hello",version="0.1.0"} 1`,
		`fermion_request_duration_seconds_count{function="hello",version="0.1.0"} 1`,
		`fermion_cold_starts_total{function="hello",version="0.1.0"}`,
		`fermion_instances{function="hello",state="warm",version="0.1.0"}`,
	)
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
		if r := get(t, s.admin+path); r.status != 200 || !strings.Contains(r.body, want) {
			t.Fatalf("GET %s = %d %q", path, r.status, r.body)
		}
	}
	if r := get(t, s.admin+"/debug/pprof/heap?debug=1"); r.status != 404 {
		t.Fatalf("GET /debug/pprof/heap without --profiling = %d, want 404", r.status)
	}

	if code := s.stop(t); code != 0 {
		t.Fatalf("run exited %d after cancel\nstderr:\n%s", code, s.stderr)
	}
	if !strings.HasSuffix(s.stdout.String(), "stopped\n") {
		t.Fatalf("run did not say it stopped:\n%s", s.stdout)
	}
	if !strings.Contains(s.stderr.String(), "building hello@0.1.0: go build") {
		t.Fatalf("run did not report the build:\n%s", s.stderr)
	}
	var logged int
	for _, rec := range requestLogs(t, s.stderr.String()) {
		if rec["request_id"] == requestID {
			logged++
			if rec["status"] != 200.0 || rec["route"] != "/hello" || rec["function"] != "hello" {
				t.Fatalf("request log line %v", rec)
			}
		}
	}
	if logged != 1 {
		t.Fatalf("%d request log lines for %s, want 1\nstderr:\n%s", logged, requestID, s.stderr)
	}
}

// TestRunExamples serves two examples from the repository in one node.
func TestRunExamples(t *testing.T) {
	root := fermiontest.Root(t)
	hello, echo := filepath.Join(root, "examples", "hello"), filepath.Join(root, "examples", "echo")
	// The compilation cache the other packages' tests share: hello and echo are
	// compiled once for all of them.
	cache, err := fermiontest.CompileCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, s *server) {
		t.Helper()
		if r := get(t, s.gateway+"/hello"); r.status != 200 || r.body != "Hello from Fermion!\n" {
			t.Fatalf("GET /hello = %d %q", r.status, r.body)
		}
		r := get(t, s.gateway+"/echo/a?b=c")
		var e struct {
			Path, Query string
			Headers     map[string][]string
		}
		if err := json.Unmarshal([]byte(r.body), &e); r.status != 200 || err != nil {
			t.Fatalf("GET /echo/a = %d %q (%v)", r.status, r.body, err)
		}
		if e.Path != "/echo/a" || e.Query != "b=c" {
			t.Fatalf("echo saw path %q query %q", e.Path, e.Query)
		}
		if got := e.Headers["X-Request-Id"]; len(got) != 1 || got[0] != r.header.Get("X-Request-Id") {
			t.Fatalf("echo saw x-request-id %v, client got %q", got, r.header.Get("X-Request-Id"))
		}
		if got := e.Headers["Traceparent"]; len(got) != 1 || got[0] != r.header.Get("Traceparent") {
			t.Fatalf("echo saw traceparent %v, client got %q", got, r.header.Get("Traceparent"))
		}
	}

	t.Run("build and serve", func(t *testing.T) {
		s := startRun(t, true, hello, echo, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--cache-dir", cache, "--profiling")
		out := s.stdout.String()
		for _, w := range []string{"serving hello@0.1.0 at " + s.gateway + "/hello", "serving echo@0.1.0 at " + s.gateway + "/echo"} {
			if !strings.Contains(out, w) {
				t.Fatalf("run did not announce %q:\n%s", w, out)
			}
		}
		check(t, s)
		waitMetrics(t, s.admin,
			`fermion_requests_total{code="2xx",function="hello",version="0.1.0"} 1`,
			`fermion_requests_total{code="2xx",function="echo",version="0.1.0"} 1`,
		)
		if r := get(t, s.admin+"/debug/pprof/heap?debug=1"); r.status != 200 || !strings.Contains(r.body, "heap profile") {
			t.Fatalf("GET /debug/pprof/heap with --profiling = %d %.200q", r.status, r.body)
		}
		if code := s.stop(t); code != 0 {
			t.Fatalf("run exited %d\nstderr:\n%s", code, s.stderr)
		}
	})

	// The modules built above, served over HTTPS.
	t.Run("https", func(t *testing.T) { testRunTLS(t, hello, echo, cache) })

	t.Run("gateway address in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		code, stdout, stderr := run(t, "run", hello, "--listen", ln.Addr().String(), "--admin-listen", "", "--cache-dir", cache, "--no-build")
		if code != 1 || !strings.Contains(stderr, "gateway listen") || !strings.Contains(stderr, "--listen") {
			t.Fatalf("run on a busy address exited %d: %s", code, stderr)
		}
		if strings.Contains(stdout, "listening") {
			t.Fatalf("run claims to listen: %s", stdout)
		}
	})

	t.Run("admin address in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		code, _, stderr := run(t, "run", hello, "--listen", "127.0.0.1:0", "--admin-listen", ln.Addr().String(), "--cache-dir", cache, "--no-build")
		if code != 1 || !strings.Contains(stderr, "admin listen") || !strings.Contains(stderr, "--admin-listen") {
			t.Fatalf("run on a busy admin address exited %d: %s", code, stderr)
		}
	})

	// The modules built above are reused as they are, with telemetry off.
	t.Run("no build, no telemetry, no admin", func(t *testing.T) {
		s := startRun(t, false, hello, echo, "--listen", "127.0.0.1:0", "--admin-listen", "", "--cache-dir", cache,
			"--no-build", "--no-telemetry")
		if strings.Contains(s.stdout.String(), "metrics on") {
			t.Fatalf("run announced metrics with --admin-listen empty:\n%s", s.stdout)
		}
		check(t, s)
		if code := s.stop(t); code != 0 {
			t.Fatalf("run exited %d\nstderr:\n%s", code, s.stderr)
		}
		if strings.Contains(s.stderr.String(), "building") {
			t.Fatalf("run built with --no-build:\n%s", s.stderr)
		}
		if logs := requestLogs(t, s.stderr.String()); len(logs) != 0 {
			t.Fatalf("request logs with --no-telemetry: %v", logs)
		}
	})
}
