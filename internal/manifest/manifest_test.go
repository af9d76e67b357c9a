package manifest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const fullManifest = `manifest_version = 1

[app]
name = "hello"
version = "0.1.0-rc.1+build.5"
description = "says hello"
labels = { tier = "edge", team = "web", "example.com/owner" = "alice" }

[component]
source = "./build/hello.wasm"
abi = "reactor"

[component.build]
command = "go build -buildmode=c-shared -o build/hello.wasm ."
workdir = "src"
env = { GOOS = "wasip1", GOARCH = "wasm" }

[[routes]]
path = "/hello"
host = "API.example.com"

[[routes]]
path = "/"
host = "*.example.com"

[limits]
memory = "100000KiB"   # not a page multiple: rounds up
timeout = "30s"
max_request_body = "0"
max_response_body = 2097152
max_concurrency = 8
queue_timeout = "250ms"

[capabilities]
env = { GREETING = "hello", _X1 = "" }
allowed_outbound_hosts = ["https://api.example.com", "http://127.0.0.1:*", "https://*.example.org:8443"]
outbound_timeout = "2s"
files = [ { source = "static", destination = "/static/" } ]

[scaling]
min_warm = 2
max_instances = 32
max_requests_per_instance = 1000
idle_timeout = "90s"
target_utilization_percentage = 70
`

const minimalManifest = `manifest_version = 1
[app]
name = "hello"
version = "1.0.0"
[component]
source = "hello.wasm"
[[routes]]
path = "/"
`

func mustParse(t *testing.T, src, dir string) *Manifest {
	t.Helper()
	m, err := Parse(FileName, []byte(src), dir)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func TestParseFull(t *testing.T) {
	m := mustParse(t, fullManifest, "/srv/hello")

	want := &Manifest{
		ManifestVersion: 1,
		App: App{
			Name: "hello", Version: "0.1.0-rc.1+build.5", Description: "says hello",
			Labels: map[string]string{"tier": "edge", "team": "web", "example.com/owner": "alice"},
		},
		Component: Component{
			Source: "/srv/hello/build/hello.wasm",
			ABI:    "reactor",
			Build: &Build{
				Command: "go build -buildmode=c-shared -o build/hello.wasm .",
				Workdir: "/srv/hello/src",
				Env:     map[string]string{"GOOS": "wasip1", "GOARCH": "wasm"},
			},
		},
		Routes: []Route{{Path: "/hello", Host: "api.example.com"}, {Path: "/", Host: "*.example.com"}},
		Limits: Limits{
			MemoryBytes:     roundUpToPage(100000 * kib),
			Timeout:         30 * time.Second,
			MaxRequestBody:  0,
			MaxResponseBody: 2 * mib,
			MaxConcurrency:  8,
			QueueTimeout:    250 * time.Millisecond,
		},
		Capabilities: Capabilities{
			Env:             map[string]string{"GREETING": "hello", "_X1": ""},
			OutboundTimeout: 2 * time.Second,
			Files:           []Mount{{Source: "/srv/hello/static", Destination: "/static"}},
		},
		Scaling: Scaling{MinWarm: 2, MaxInstances: 32, MaxRequestsPerInstance: 1000, IdleTimeout: 90 * time.Second, TargetUtilizationPercentage: 70},
		Dir:     "/srv/hello",
		Path:    FileName,
	}
	for _, s := range []string{"https://api.example.com", "http://127.0.0.1:*", "https://*.example.org:8443"} {
		p, err := ParseHostPattern(s)
		if err != nil {
			t.Fatal(err)
		}
		want.Capabilities.AllowedOutboundHosts = append(want.Capabilities.AllowedOutboundHosts, p)
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("Parse mismatch\n got: %+v\nwant: %+v", m, want)
	}

	if got := m.Limits.MemoryBytes % wasmPageSize; got != 0 {
		t.Errorf("MemoryBytes %d not page aligned", m.Limits.MemoryBytes)
	}
	if got, want := m.Limits.MemoryPages(), uint32(1563); got != want { // ceil(100000/64)
		t.Errorf("MemoryPages = %d, want %d", got, want)
	}
	if got, want := m.SourcePath(), "/srv/hello/build/hello.wasm"; got != want {
		t.Errorf("SourcePath = %q, want %q", got, want)
	}
	if got, want := m.ID(), "hello@0.1.0-rc.1+build.5"; got != want {
		t.Errorf("ID = %q, want %q", got, want)
	}

	// Round trip through the normalized form: it must carry everything
	// except Dir/Path, with paths relative again and patterns as written.
	norm, err := m.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	var back normManifest
	if err := json.Unmarshal(norm, &back); err != nil {
		t.Fatalf("normalized form is not JSON: %v\n%s", err, norm)
	}
	if back.Component.Source != "build/hello.wasm" || back.Component.Build.Workdir != "src" || back.Capabilities.Files[0].Source != "static" {
		t.Errorf("paths not relative in normalized form: %s", norm)
	}
	if back.Limits.Timeout != "30s" || back.Limits.Memory != m.Limits.MemoryBytes || back.Scaling.IdleTimeout != "1m30s" {
		t.Errorf("limits not normalized: %s", norm)
	}
	if !reflect.DeepEqual(back.Capabilities.AllowedOutboundHosts, m.Capabilities.AllowedOutboundHosts) {
		t.Errorf("host patterns did not round trip: %s", norm)
	}
	if strings.Contains(string(norm), "/srv/hello") {
		t.Errorf("normalized form leaks the checkout directory: %s", norm)
	}
	if !strings.Contains(string(norm), `"allowed_outbound_hosts":["https://api.example.com","http://127.0.0.1:*","https://*.example.org:8443"]`) {
		t.Errorf("host patterns must marshal as their original strings: %s", norm)
	}
}

func TestParseDefaults(t *testing.T) {
	m := mustParse(t, minimalManifest, "")
	if m.Dir != "" || m.Component.Source != "hello.wasm" || m.SourcePath() != "hello.wasm" {
		t.Errorf("paths without dir: Dir=%q Source=%q SourcePath=%q", m.Dir, m.Component.Source, m.SourcePath())
	}
	if m.Component.Build != nil || m.Component.ABI != "" {
		t.Errorf("component defaults: %+v", m.Component)
	}
	wantLimits := Limits{
		MemoryBytes: 64 * mib, Timeout: 10 * time.Second, MaxRequestBody: mib,
		MaxResponseBody: 8 * mib, MaxConcurrency: 16, QueueTimeout: time.Second,
	}
	if m.Limits != wantLimits {
		t.Errorf("Limits = %+v, want %+v", m.Limits, wantLimits)
	}
	wantScaling := Scaling{MinWarm: 1, MaxInstances: 16, MaxRequestsPerInstance: 0, IdleTimeout: 5 * time.Minute, TargetUtilizationPercentage: 100}
	if m.Scaling != wantScaling {
		t.Errorf("Scaling = %+v, want %+v", m.Scaling, wantScaling)
	}
	if m.Capabilities.OutboundTimeout != 5*time.Second || len(m.Capabilities.AllowedOutboundHosts) != 0 ||
		len(m.Capabilities.Env) != 0 || len(m.Capabilities.Files) != 0 {
		t.Errorf("Capabilities = %+v, want deny-by-default with 5s timeout", m.Capabilities)
	}
	if m.Capabilities.OutboundAllowed(mustURL(t, "https://example.com")) {
		t.Error("no allowed_outbound_hosts must deny everything")
	}

	norm, err := m.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"manifest_version":1,"app":{"name":"hello","version":"1.0.0","description":"","labels":{}},` +
		`"component":{"source":"hello.wasm","abi":""},"routes":[{"path":"/","host":""}],` +
		`"limits":{"memory":67108864,"timeout":"10s","max_request_body":1048576,"max_response_body":8388608,"max_concurrency":16,"queue_timeout":"1s"},` +
		`"capabilities":{"env":{},"allowed_outbound_hosts":[],"outbound_timeout":"5s","files":[]},` +
		`"scaling":{"min_warm":1,"max_instances":16,"max_requests_per_instance":0,"idle_timeout":"5m0s","target_utilization_percentage":100}}`
	if string(norm) != want {
		t.Errorf("Normalize =\n%s\nwant\n%s", norm, want)
	}
}

func TestParseMaxConcurrencyFollowsMaxInstances(t *testing.T) {
	m := mustParse(t, minimalManifest+"[scaling]\nmax_instances = 3\nmin_warm = 0\n", "")
	if m.Limits.MaxConcurrency != 3 {
		t.Errorf("MaxConcurrency = %d, want 3 (= max_instances)", m.Limits.MaxConcurrency)
	}
}

func TestParseSizes(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int64
		err  string
	}{
		{"bare integer string", "1048576", 1048576, ""},
		{"bytes", "10B", 10, ""},
		{"KiB", "512KiB", 512 * kib, ""},
		{"lowercase mib", "64mib", 64 * mib, ""},
		{"space before unit", "64 MiB", 64 * mib, ""},
		{"SI KB", "2KB", 2000, ""},
		{"lowercase mb", "3mb", 3_000_000, ""},
		{"GiB", "4GiB", 4 * gib, ""},
		{"GB", "1gb", 1_000_000_000, ""},
		{"fraction", "1.5KiB", 1536, ""},
		{"zero", "0", 0, ""},
		{"fractional bytes", "1.5B", 0, "whole number"},
		{"negative", "-1MiB", 0, "negative"},
		{"words", "64 megs", 0, "not a size"},
		{"unit only", "MiB", 0, "not a size"},
		{"empty", "", 0, "not a size"},
		{"exponent", "1e6", 0, "not a size"},
		{"overflow", "99999999999GiB", 0, "larger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseSize(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseMemoryRounding(t *testing.T) {
	tests := []struct {
		name   string
		memory string
		want   uint64
		err    string
	}{
		{"exact page multiple", `"1MiB"`, mib, ""},
		{"rounds up", `"1000001"`, roundUpToPage(1000001), ""},
		{"integer bytes", `2097152`, 2 * mib, ""},
		{"max", `"4GiB"`, 4 * gib, ""},
		{"rounds up to min", `"1000KiB"`, mib, ""},
		{"below min", `"900KiB"`, 0, `fermion.toml:10: limits.memory: 900KiB is less than the minimum of 1MiB`},
		{"above max", `"5GiB"`, 0, `fermion.toml:10: limits.memory: 5GiB is more than the maximum of 4GiB`},
		{"negative integer", `-5`, 0, `fermion.toml:10: limits.memory: must not be negative`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := minimalManifest + "[limits]\nmemory = " + tt.memory + "\n"
			m, err := Parse("", []byte(src), "")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Limits.MemoryBytes != tt.want {
				t.Errorf("MemoryBytes = %d, want %d", m.Limits.MemoryBytes, tt.want)
			}
		})
	}
}

// TestParseErrors checks that each kind of mistake is reported with the
// file, line, field path and a fix.
func TestParseErrors(t *testing.T) {
	// base is minimalManifest with the routes table last, so cases can append
	// sections; its lines are 1..8.
	base := minimalManifest
	tests := []struct {
		name string
		src  string
		want []string // each must appear as a line of the error
	}{
		{
			name: "syntax error keeps line and column",
			src:  "manifest_version = 1\n[app]\nname = hello\n",
			want: []string{`fermion.toml:3:8: invalid TOML: expected value but found "hello" instead; strings must be quoted, like name = "hello"`},
		},
		{
			name: "syntax error unclosed table",
			src:  "manifest_version = 1\n[app\n",
			want: []string{"fermion.toml:2:5: invalid TOML: expected '.' or ']' to end table name"},
		},
		{
			name: "duplicate key",
			src:  base + "[app]\nname = \"x\"\n",
			want: []string{"fermion.toml:9:", "invalid TOML"},
		},
		{
			name: "wrong type string for int",
			src:  base + "[scaling]\nmax_instances = \"4\"\n",
			want: []string{`fermion.toml:10: scaling.max_instances: must be an integer, not string "4"; remove the quotes: max_instances = 4`},
		},
		{
			name: "wrong type int for string",
			src:  strings.Replace(base, `version = "1.0.0"`, `version = 1`, 1),
			want: []string{`fermion.toml:4: app.version: must be a string, not integer 1; put it in quotes: version = "1"`},
		},
		{
			name: "wrong type float for int",
			src:  base + "[scaling]\nmin_warm = 1.5\n",
			want: []string{`fermion.toml:10: scaling.min_warm: must be a whole number, not 1.5`},
		},
		{
			name: "wrong type int for duration",
			src:  base + "[limits]\ntimeout = 10\n",
			want: []string{`fermion.toml:10: limits.timeout: must be a duration string, not integer 10; add a unit and quotes: timeout = "10s"`},
		},
		{
			name: "wrong type table for string",
			src:  base + "[component.source]\nx = 1\n",
			want: []string{"invalid TOML"}, // the toml library rejects redefining source as a table
		},
		{
			name: "routes as a table",
			src:  strings.Replace(base, "[[routes]]", "[routes]", 1),
			want: []string{`fermion.toml:7: routes: must be an array, not a table; write it as [[routes]] tables (note the double brackets)`},
		},
		{
			name: "unknown key with suggestion",
			src:  "manifest_version = 1\n[app]\nnmae = \"hello\"\nversion = \"1.0.0\"\n[component]\nsource = \"a.wasm\"\n[[routes]]\npath = \"/\"\n",
			want: []string{
				`fermion.toml:3:1: app.nmae: unknown field; did you mean "app.name"?`,
				`fermion.toml: app.name: required; add name = "my-app" under [app]`,
			},
		},
		{
			name: "unknown table with suggestion",
			src:  base + "[limit]\nmemory = \"1MiB\"\n",
			want: []string{`fermion.toml:9:1: limit: unknown table; did you mean "limits"?`},
		},
		{
			name: "key in the wrong table",
			src:  base + "[scaling]\n  memory = \"1MiB\"\n",
			want: []string{`fermion.toml:10:3: scaling.memory: unknown field here; "memory" belongs under [limits]`},
		},
		{
			name: "unknown key without suggestion",
			src:  base + "[limits]\nbananas = 3\n",
			want: []string{`fermion.toml:10:1: limits.bananas: unknown field; remove it (valid here: memory, timeout, max_request_body, max_response_body, max_concurrency, queue_timeout, max_module_size, max_code_size, max_function_size, max_functions, max_function_locals, max_function_branches, max_table_elements, max_globals, max_data_segments, max_element_segments, compile_timeout)`},
		},
		{
			name: "unknown key in dotted and inline form",
			src:  base + "[capabilities]\nfiles = [\n  { source = \"s\", destination = \"/s\" },\n  { source = \"t\", destinaton = \"/t\" },\n]\n",
			want: []string{`fermion.toml:12:19: capabilities.files[1].destinaton: unknown field; did you mean "capabilities.files[1].destination"?`},
		},
		{
			name: "unknown dotted key",
			src:  base + "[limits]\nmemory.size = 3\n",
			want: []string{`fermion.toml:10: limits.memory: must be a size such as "64MiB", not a table`},
		},
		{
			name: "missing everything",
			src:  "",
			want: []string{
				`fermion.toml: manifest_version: required; add manifest_version = 1 at the top of the file`,
				`fermion.toml: app.name: required; add name = "my-app" under [app]`,
				`fermion.toml: app.version: required; add version = "0.1.0" under [app]`,
				`fermion.toml: component.source: required; add source = "app.wasm" (the module's path, relative to this file) under [component]`,
				`fermion.toml: routes: required; add at least one [[routes]] table with path = "/"`,
			},
		},
		{
			name: "missing route path names the entry",
			src:  base + "\n[[routes]]\nhost = \"a.example.com\"\n",
			want: []string{`fermion.toml:10: routes[1].path: required; add path = "/" to this [[routes]] entry`},
		},
		{
			name: "empty routes",
			src:  "routes = []\n" + strings.Replace(base, "[[routes]]\npath = \"/\"\n", "", 1),
			want: []string{`fermion.toml:1: routes: must not be empty; add at least one [[routes]] table with path = "/"`},
		},
		{
			name: "bad name",
			src:  strings.Replace(base, `name = "hello"`, `name = "Hello World"`, 1),
			want: []string{`fermion.toml:3: app.name: "Hello World" is not a valid name; use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit, like "hello-world"`},
		},
		{
			name: "name too long",
			src:  strings.Replace(base, `name = "hello"`, `name = "`+strings.Repeat("a", 64)+`"`, 1),
			want: []string{`fermion.toml:3: app.name: "aaaa`},
		},
		{
			name: "bad semver leading v",
			src:  strings.Replace(base, `version = "1.0.0"`, `version = "v1.0.0"`, 1),
			want: []string{`fermion.toml:4: app.version: "v1.0.0" is not a semantic version; drop the leading "v": version = "1.0.0"`},
		},
		{
			name: "bad semver two parts",
			src:  strings.Replace(base, `version = "1.0.0"`, `version = "1.2"`, 1),
			want: []string{`fermion.toml:4: app.version: "1.2" is not a semantic version; use all three numbers: version = "1.2.0"`},
		},
		{
			name: "bad semver leading zero",
			src:  strings.Replace(base, `version = "1.0.0"`, `version = "01.0.0"`, 1),
			want: []string{`fermion.toml:4: app.version: "01.0.0" is not a semantic version; use MAJOR.MINOR.PATCH`},
		},
		{
			name: "bad label",
			src:  strings.Replace(base, "[component]", "labels = { \"-bad\" = \"x\", ok = \""+strings.Repeat("v", 64)+"\" }\n[component]", 1),
			want: []string{
				`fermion.toml:5: app.labels.-bad: invalid label key "-bad"`,
				`fermion.toml:5: app.labels.ok: label value is 64 characters; shorten it to at most 63`,
			},
		},
		{
			name: "bad size",
			src:  base + "[limits]\n\n\n\n\nmemory = \"64 megs\"\n",
			want: []string{`fermion.toml:14: limits.memory: "64 megs" is not a size; use a number with a unit such as "64MiB" or "512KiB"`},
		},
		{
			name: "zero response body",
			src:  base + "[limits]\nmax_response_body = \"0\"\n",
			want: []string{`fermion.toml:10: limits.max_response_body: must be greater than 0`},
		},
		{
			name: "bad duration",
			src:  base + "[limits]\ntimeout = \"10 seconds\"\n",
			want: []string{`fermion.toml:10: limits.timeout: "10 seconds" is not a duration; use a number with a unit such as "10s", "500ms" or "2m"`},
		},
		{
			name: "duration too long",
			src:  base + "[limits]\ntimeout = \"16m\"\n",
			want: []string{`fermion.toml:10: limits.timeout: "16m" is longer than the maximum of 15m0s`},
		},
		{
			name: "zero load bound size",
			src:  base + "[limits]\nmax_module_size = \"0\"\n",
			want: []string{`fermion.toml:10: limits.max_module_size: must be greater than 0; remove it to use the node's default`},
		},
		{
			name: "zero load bound count",
			src:  base + "[limits]\nmax_functions = 0\n",
			want: []string{`fermion.toml:10: limits.max_functions: must be at least 1, got 0`},
		},
		{
			name: "load bound typo",
			src:  base + "[limits]\nmax_function = 10\n",
			want: []string{`fermion.toml:10:1: limits.max_function: unknown field; did you mean "limits.max_functions"?`},
		},
		{
			name: "load bound under scaling",
			src:  base + "[scaling]\nmax_table_elements = 10\n",
			want: []string{`fermion.toml:10:1: scaling.max_table_elements: unknown field here; "max_table_elements" belongs under [limits]`},
		},
		{
			name: "compile timeout zero",
			src:  base + "[limits]\ncompile_timeout = \"0s\"\n",
			want: []string{`fermion.toml:10: limits.compile_timeout: must be greater than 0, got "0s"`},
		},
		{
			name: "zero timeout",
			src:  base + "[limits]\ntimeout = \"0s\"\n",
			want: []string{`fermion.toml:10: limits.timeout: must be greater than 0, got "0s"`},
		},
		{
			name: "negative queue timeout",
			src:  base + "[limits]\nqueue_timeout = \"-1s\"\n",
			want: []string{`fermion.toml:10: limits.queue_timeout: must not be negative, got "-1s"`},
		},
		{
			name: "min_warm above max_instances",
			src:  base + "[scaling]\nmax_instances = 2\nmin_warm = 3\n",
			want: []string{`fermion.toml:11: scaling.min_warm: min_warm (3) is more than max_instances (2); lower min_warm or raise max_instances`},
		},
		{
			name: "target utilization above 100",
			src:  base + "[scaling]\ntarget_utilization_percentage = 150\n",
			want: []string{`fermion.toml:10: scaling.target_utilization_percentage: must be at most 100, got 150`},
		},
		{
			name: "max_instances out of range",
			src:  base + "[scaling]\nmax_instances = 0\n",
			want: []string{`fermion.toml:10: scaling.max_instances: must be at least 1, got 0`},
		},
		{
			name: "max_instances too high",
			src:  base + "[scaling]\nmax_instances = 10001\n",
			want: []string{`fermion.toml:10: scaling.max_instances: must be at most 10000, got 10001`},
		},
		{
			name: "negative max_concurrency",
			src:  "limits.max_concurrency = -1\n" + base,
			want: []string{`fermion.toml:1: limits.max_concurrency: must be at least 0, got -1`},
		},
		{
			name: "route path without slash",
			src:  strings.Replace(base, `path = "/"`, `path = "hello"`, 1),
			want: []string{`fermion.toml:8: routes[0].path: "hello" must start with "/", like "/hello"`},
		},
		{
			name: "route path with spin wildcard",
			src:  strings.Replace(base, `path = "/"`, `path = "/hello/..."`, 1),
			want: []string{`fermion.toml:8: routes[0].path: "/hello/...": wildcards are not needed, routes already match by prefix; use "/hello"`},
		},
		{
			name: "route path with query",
			src:  strings.Replace(base, `path = "/"`, `path = "/a?b=c"`, 1),
			want: []string{`fermion.toml:8: routes[0].path: "/a?b=c": a route is a path only`},
		},
		{
			name: "route path with dot dot",
			src:  strings.Replace(base, `path = "/"`, `path = "/a/../b"`, 1),
			want: []string{`fermion.toml:8: routes[0].path: "/a/../b" must not contain "." or ".." segments`},
		},
		{
			name: "route host with port",
			src:  base + "host = \"api.example.com:8080\"\n",
			want: []string{`fermion.toml:9: routes[0].host: "api.example.com:8080": give only the host name; routes do not match on port or path`},
		},
		{
			name: "duplicate route",
			src:  base + "[[routes]]\npath = \"/\"\n",
			want: []string{`fermion.toml:10: routes[1].path: duplicate route; routes[0] already has this host and path`},
		},
		{
			name: "host pattern with path",
			src:  base + "[capabilities]\nallowed_outbound_hosts = [\"https://api.example.com/v1\"]\n",
			want: []string{`fermion.toml:10: capabilities.allowed_outbound_hosts[0]: "https://api.example.com/v1": remove the path "/v1"; a pattern is only scheme://host[:port], like "https://api.example.com"`},
		},
		{
			name: "host pattern bad port on its own line",
			src:  base + "[capabilities]\nallowed_outbound_hosts = [\n  \"https://ok.example.com\",\n  \"https://api.example.com:http\",\n]\n",
			want: []string{`fermion.toml:12: capabilities.allowed_outbound_hosts[1]: "https://api.example.com:http": invalid port "http"; use a number from 1 to 65535 or "*"`},
		},
		{
			name: "host pattern bad scheme",
			src:  base + "[capabilities]\nallowed_outbound_hosts = [\"ftp://files.example.com\"]\n",
			want: []string{`fermion.toml:10: capabilities.allowed_outbound_hosts[0]: "ftp://files.example.com": unsupported scheme "ftp"; use http, https or *`},
		},
		{
			name: "host pattern userinfo",
			src:  base + "[capabilities]\nallowed_outbound_hosts = [\"https://user:pw@api.example.com\"]\n",
			want: []string{`fermion.toml:10: capabilities.allowed_outbound_hosts[0]: "https://user:pw@api.example.com": remove the user info "user:pw@"; credentials are not part of a pattern`},
		},
		{
			name: "host pattern without scheme",
			src:  base + "[capabilities]\nallowed_outbound_hosts = [\"api.example.com\"]\n",
			want: []string{`fermion.toml:10: capabilities.allowed_outbound_hosts[0]: "api.example.com": missing scheme; write it as "https://api.example.com"`},
		},
		{
			name: "absolute source",
			src:  strings.Replace(base, `source = "hello.wasm"`, `source = "/opt/hello.wasm"`, 1),
			want: []string{`fermion.toml:6: component.source: "/opt/hello.wasm" is absolute; paths must be relative to the manifest's directory, like "hello.wasm"`},
		},
		{
			name: "escaping source",
			src:  strings.Replace(base, `source = "hello.wasm"`, `source = "a/../../hello.wasm"`, 1),
			want: []string{`fermion.toml:6: component.source: "a/../../hello.wasm" escapes the manifest's directory with ".."; paths must stay inside it`},
		},
		{
			name: "escaping build workdir and mount",
			src:  base + "[component.build]\ncommand = \"make\"\nworkdir = \"..\"\n[capabilities]\nfiles = [{ source = \"../etc\", destination = \"/etc\" }]\n",
			want: []string{
				`fermion.toml:11: component.build.workdir: ".." escapes the manifest's directory`,
				`fermion.toml:13: capabilities.files[0].source: "../etc" escapes the manifest's directory`,
			},
		},
		{
			name: "relative mount destination",
			src:  base + "[capabilities]\nfiles = [{ source = \"static\", destination = \"static\" }]\n",
			want: []string{`fermion.toml:10: capabilities.files[0].destination: "static" must be an absolute guest path, like "/static"`},
		},
		{
			name: "bad env var name",
			src:  base + "[capabilities]\nenv = { GREETING = \"hi\", \"MY-VAR\" = \"x\" }\n",
			want: []string{`fermion.toml:10: capabilities.env.MY-VAR: "MY-VAR" is not a valid environment variable name`},
		},
		{
			name: "env value not a string",
			src:  base + "[capabilities.env]\nPORT = 8080\n",
			want: []string{`fermion.toml:10: capabilities.env.PORT: must be a string, not integer 8080; put it in quotes: PORT = "8080"`},
		},
		{
			name: "bad abi",
			src:  strings.Replace(base, `source = "hello.wasm"`, "source = \"hello.wasm\"\nabi = \"comand\"", 1),
			want: []string{`fermion.toml:7: component.abi: "comand" is not an ABI; did you mean "command"?`},
		},
		{
			name: "snapshot not a bool",
			src:  strings.Replace(base, `source = "hello.wasm"`, "source = \"hello.wasm\"\nsnapshot = \"no\"", 1),
			want: []string{`fermion.toml:7: component.snapshot: must be true or false, not string "no"; false makes every new instance run _initialize instead of starting from a snapshot`},
		},
		{
			name: "wrong manifest_version",
			src:  strings.Replace(base, "manifest_version = 1", "manifest_version = 2", 1),
			want: []string{`fermion.toml:1: manifest_version: unsupported version 2; this version of fermion reads manifest_version = 1`},
		},
		{
			name: "manifest_version as string",
			src:  strings.Replace(base, "manifest_version = 1", `manifest_version = "1"`, 1),
			want: []string{`fermion.toml:1: manifest_version: must be an integer, not string "1"; remove the quotes: manifest_version = 1`},
		},
		{
			name: "empty build command",
			src:  base + "[component.build]\ncommand = \"  \"\n",
			want: []string{`fermion.toml:10: component.build.command: must not be empty`},
		},
		{
			name: "dotted keys at top level",
			src:  "scaling.min_warm = 5\nscaling.max_instances = 4\n" + base,
			want: []string{`fermion.toml:1: scaling.min_warm: min_warm (5) is more than max_instances (4)`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse("", []byte(tt.src), "")
			if err == nil {
				t.Fatalf("Parse succeeded (%+v); want errors %q", m, tt.want)
			}
			var merr *Error
			if !errors.As(err, &merr) {
				t.Fatalf("error is %T, want *manifest.Error: %v", err, err)
			}
			for _, w := range tt.want {
				found := false
				for _, line := range strings.Split(err.Error(), "\n") {
					if strings.HasPrefix(line, w) || strings.Contains(line, w) && !strings.HasPrefix(w, "fermion.toml") {
						found = true
					}
				}
				if !found {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
		})
	}
}

func TestErrorCollectsAndSorts(t *testing.T) {
	src := `manifest_version = 1
[app]
name = "Bad Name"
version = "x"
[component]
source = "/abs.wasm"
[limits]
timeout = "forever"
`
	_, err := Parse("app/fermion.toml", []byte(src), "")
	var merr *Error
	if !errors.As(err, &merr) {
		t.Fatalf("want *Error, got %v", err)
	}
	var got []string
	for _, p := range merr.Problems {
		got = append(got, p.Field)
	}
	want := []string{"app.name", "app.version", "component.source", "limits.timeout", "routes"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fields = %v, want %v (sorted by line, absent keys last)", got, want)
	}
	if merr.Problems[0].File != "app/fermion.toml" || merr.Problems[0].Line != 3 {
		t.Errorf("first problem = %+v", merr.Problems[0])
	}
	if n := strings.Count(err.Error(), "\n"); n != len(want)-1 {
		t.Errorf("Error() should have one problem per line:\n%v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(fullManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path string }{
		{"file", filepath.Join(dir, FileName)},
		{"directory", dir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Load(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if m.Dir != dir {
				t.Errorf("Dir = %q, want %q", m.Dir, dir)
			}
			if want := filepath.Join(dir, "build", "hello.wasm"); m.SourcePath() != want {
				t.Errorf("SourcePath = %q, want %q", m.SourcePath(), want)
			}
			if want := filepath.Join(dir, "static"); m.Capabilities.Files[0].Source != want {
				t.Errorf("mount source = %q, want %q", m.Capabilities.Files[0].Source, want)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		_, err := Load(filepath.Join(dir, "nope.toml"))
		if err == nil || !strings.HasPrefix(err.Error(), "load manifest: ") || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v, want wrapped not-exist", err)
		}
	})
	t.Run("directory without a manifest says how to make one", func(t *testing.T) {
		_, err := Load(t.TempDir())
		if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "has no fermion.toml") || !strings.Contains(err.Error(), "fermion new") {
			t.Errorf("err = %v, want wrapped not-exist naming fermion.toml and fermion new", err)
		}
	})
	t.Run("invalid names the path", func(t *testing.T) {
		p := filepath.Join(dir, "bad.toml")
		if err := os.WriteFile(p, []byte("manifest_version = 1\n[app]\nnmae = 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), p+":3:1: app.nmae: unknown field") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestLoadLimits: load bounds are read, absent ones stay 0 (the node's default), and
// only the ones set appear in the normalized form, which parses back to the same.
func TestLoadLimits(t *testing.T) {
	src := minimalManifest + "[limits]\nmax_module_size = \"128MiB\"\nmax_functions = 2000000\ncompile_timeout = \"2m\"\n"
	m, err := Parse("", []byte(src), "")
	if err != nil {
		t.Fatal(err)
	}
	want := LoadLimits{ModuleSize: 128 << 20, Functions: 2_000_000, CompileTimeout: 2 * time.Minute}
	if m.Limits.Load != want {
		t.Fatalf("load limits %+v, want %+v", m.Limits.Load, want)
	}
	norm, err := m.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"max_module_size":134217728`, `"max_functions":2000000`, `"compile_timeout":"2m0s"`} {
		if !strings.Contains(string(norm), w) {
			t.Errorf("normalized %s lacks %s", norm, w)
		}
	}
	if strings.Contains(string(norm), "max_globals") {
		t.Errorf("normalized %s has a bound the manifest does not set", norm)
	}
	plain, err := Parse("", []byte(minimalManifest), "")
	if err != nil {
		t.Fatal(err)
	}
	if plain.Limits.Load != (LoadLimits{}) {
		t.Errorf("defaults %+v, want zero (the node's)", plain.Limits.Load)
	}
}

func TestNormalizeDeterministic(t *testing.T) {
	a := `manifest_version = 1
[app]
name = "n"
version = "1.0.0"
labels = { a = "1", b = "2", c = "3", d = "4" }
[component]
source = "x.wasm"
[[routes]]
path = "/"
[capabilities]
env = { Z = "z", A = "a", M = "m" }
`
	// Same manifest with map entries in a different order and a different
	// checkout directory: the canonical bytes must not change.
	b := strings.NewReplacer(
		`{ a = "1", b = "2", c = "3", d = "4" }`, `{ d = "4", c = "3", b = "2", a = "1" }`,
		`{ Z = "z", A = "a", M = "m" }`, `{ M = "m", A = "a", Z = "z" }`,
	).Replace(a)

	var first []byte
	for i, tc := range []struct{ src, dir string }{{a, "/one"}, {a, "/one"}, {b, "/two/three"}, {b, ""}} {
		m := mustParse(t, tc.src, tc.dir)
		for j := 0; j < 5; j++ { // map iteration order varies run to run
			got, err := m.Normalize()
			if err != nil {
				t.Fatal(err)
			}
			if first == nil {
				first = got
			} else if string(got) != string(first) {
				t.Fatalf("case %d: Normalize not deterministic:\n%s\n%s", i, got, first)
			}
		}
	}
	if !strings.Contains(string(first), `"labels":{"a":"1","b":"2","c":"3","d":"4"}`) ||
		!strings.Contains(string(first), `"env":{"A":"a","M":"m","Z":"z"}`) {
		t.Errorf("map keys not sorted: %s", first)
	}
}

func TestIndexKeys(t *testing.T) {
	src := `# comment
top = 1
[a]
"quoted.key" = 'x'
b.c = """
multi
line ] } [
"""
inline = { x = 1, y = { z = [1, 2] } }
arr = [
  "s",  # comment ]
  { k = "v" },
]
[[t]]
v = 1
[[t]]
v = 2
[t.sub]
w = 3
[[t.list]]
q = 1
`
	idx := indexKeys(src)
	tests := []struct {
		path string
		line int
		col  int
	}{
		{"top", 2, 1},
		{"a", 3, 1},
		{`a."quoted.key"`, 4, 1},
		{"a.b", 5, 1},
		{"a.b.c", 5, 1},
		{"a.inline", 9, 1},
		{"a.inline.y.z", 9, 25},
		{"a.inline.y.z[1]", 9, 33},
		{"a.arr[0]", 11, 3},
		{"a.arr[1].k", 12, 5},
		{"t[0]", 14, 1},
		{"t[0].v", 15, 1},
		{"t[1].v", 17, 1},
		{"t[1].sub.w", 19, 1},
		{"t[1].list[0].q", 21, 1},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, ok := idx[tt.path]
			if !ok {
				t.Fatalf("%s not indexed; have %v", tt.path, idx)
			}
			if got.line != tt.line || got.col != tt.col {
				t.Errorf("%s at %d:%d, want %d:%d", tt.path, got.line, got.col, tt.line, tt.col)
			}
		})
	}
}

// TestComponentSnapshot: component.snapshot = false reaches the normalized config (and
// back), and leaving it out or setting true changes no digest.
func TestComponentSnapshot(t *testing.T) {
	base := "manifest_version = 1\n[app]\nname = \"n\"\nversion = \"1.0.0\"\n[component]\nsource = \"x.wasm\"\n"
	routes := "[[routes]]\npath = \"/\"\n"
	tests := []struct {
		name     string
		line     string
		wantOff  bool
		wantNorm bool // "snapshot":false in the normalized form
	}{
		{"absent", "", false, false},
		{"true", "snapshot = true\n", false, false},
		{"false", "snapshot = false\n", true, true},
	}
	plain, err := mustParse(t, base+routes, "").Normalize()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustParse(t, base+tt.line+routes, "")
			if m.Component.NoSnapshot != tt.wantOff {
				t.Fatalf("NoSnapshot = %v, want %v", m.Component.NoSnapshot, tt.wantOff)
			}
			norm, err := m.Normalize()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(string(norm), `"snapshot":false`); got != tt.wantNorm {
				t.Fatalf("normalized %s", norm)
			}
			if !tt.wantNorm && string(norm) != string(plain) {
				t.Fatalf("the normalized form changed:\n%s\n%s", norm, plain)
			}
		})
	}
}
