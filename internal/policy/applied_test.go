package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseApplied(t *testing.T) {
	p, err := ParseApplied("p.yaml", []byte(validPolicy), ModeAudit, 7)
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec.Mode != ModeAudit || p.Version != 7 || p.File != "p.yaml" {
		t.Errorf("parsed %s, file %s", p, p.File)
	}
	p, err = ParseApplied("p.yaml", []byte(validPolicy), "", 1)
	if err != nil || p.Spec.Mode != ModeDeny {
		t.Fatalf("no override: %v %v", p, err)
	}
	for name, tc := range map[string]struct {
		src     string
		mode    Mode
		version int
		want    string
	}{
		"bad mode":         {validPolicy, "enforce", 1, `mode: is "enforce"; use deny, warn or audit`},
		"negative version": {validPolicy, "", -1, "version: is -1"},
		"bad file":         {"kind: [", "", 1, "p.yaml:1:"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseApplied("p.yaml", []byte(tc.src), tc.mode, tc.version)
			var pe *Error
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want an *Error with %q", err, tc.want)
			}
		})
	}
}

func TestVet(t *testing.T) {
	never := strings.Replace(admissionPolicy("p", "artifact.signed"), "  validations:", "  matchConditions:\n    - {name: never, expression: 'false'}\n  validations:", 1)
	refuse, warn, err := Vet(mustParse(t, never))
	if err != nil {
		t.Fatal(err)
	}
	if len(refuse) != 1 || !strings.Contains(refuse[0].String(), "p.yaml:8:") || !strings.Contains(refuse[0].Msg, "matches nothing") || len(warn) != 0 {
		t.Errorf("matches nothing: refuse %v warn %v", refuse, warn)
	}
	refuse, warn, err = Vet(mustParse(t, admissionPolicy("p", "true")))
	if err != nil {
		t.Fatal(err)
	}
	if len(refuse) != 0 || len(warn) != 1 || !strings.Contains(warn[0].Msg, "always true") {
		t.Errorf("always true: refuse %v warn %v", refuse, warn)
	}
	if _, _, err := Vet(mustParse(t, admissionPolicy("p", "nope.x"))); err == nil {
		t.Error("a policy that does not compile vetted clean")
	}
	// Lint reports both kinds.
	findings, err := Lint(mustParse(t, never))
	if err != nil || len(findings) != 1 {
		t.Errorf("lint: %v %v", findings, err)
	}
}

// artifactConfig is an artifact config as `fermion build` writes it (artifact.Config
// with the manifest's Normalize output).
const artifactConfig = `{"manifest":{"manifest_version":1,"app":{"name":"hello","version":"0.1.0","description":"","labels":{"tier":"edge"}},
"component":{"source":"hello.wasm","abi":"reactor"},"routes":[{"path":"/hello","host":""}],
"limits":{"memory":67108864,"timeout":"10s","max_request_body":1048576,"max_response_body":8388608,"max_concurrency":8,"queue_timeout":"1s"},
"capabilities":{"env":{"TOKEN":"s3cret","GREETING":"hi"},"allowed_outbound_hosts":["https://api.example.com"],"outbound_timeout":"5s",
"files":[{"source":"static","destination":"/static"}]},
"scaling":{"min_warm":1,"max_instances":8,"max_requests_per_instance":0,"idle_timeout":"5m0s","target_utilization_percentage":70}},
"module":{"digest":"sha256:aa","size":123456,"abi":"reactor","imports":[{"module":"wasi_snapshot_preview1","name":"fd_write","kind":"func"},{"module":"fermion","name":"http_send","kind":"func"}],"exports":["handle"]},
"scan":{"capabilities":["outbound_http"],"findings":[]}}`

func TestParseArtifactConfig(t *testing.T) {
	c, err := ParseArtifactConfig([]byte(artifactConfig))
	if err != nil {
		t.Fatal(err)
	}
	want := ArtifactConfig{
		Manifest: Manifest{
			App:          App{Name: "hello", Version: "0.1.0", Labels: map[string]string{"tier": "edge"}},
			Limits:       Limits{Memory: 64 << 20, TimeoutMS: 10000, MaxRequestBody: 1 << 20, MaxResponseBody: 8 << 20, MaxConcurrency: 8},
			Capabilities: Capabilities{Env: []string{"GREETING", "TOKEN"}, AllowedOutboundHosts: []string{"https://api.example.com"}, Files: []string{"/static"}},
			Scaling:      Scaling{MinWarm: 1, MaxInstances: 8, TargetUtilizationPercentage: 70},
		},
		ABI: "reactor", Imports: []string{"wasi_snapshot_preview1.fd_write", "fermion.http_send"}, Size: 123456,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	ra := c.RuntimeArtifact("sha256:bb")
	if ra.Digest != "sha256:bb" || ra.ABI != "reactor" || len(ra.Imports) != 2 || ra.Limits.Memory != 64<<20 || ra.Capabilities.Files[0] != "/static" {
		t.Errorf("runtime artifact %+v", ra)
	}
	// The node-capabilities example judges it.
	set, err := NewSet(Options{}, loadExamples(t)...)
	if err != nil {
		t.Fatal(err)
	}
	d := set.RuntimeCheck(RuntimeInput{Artifact: ra, Node: RuntimeNode{Name: "edge-1",
		Allow: NodeAllow{ImportModules: []string{"wasi_snapshot_preview1", "fermion"}, OutboundHosts: []string{"https://api.example.com"}, Env: []string{"GREETING", "TOKEN"}, Files: true}}})
	if !d.Allowed {
		t.Errorf("runtime check: %s", d)
	}
	// Values secrets may hide in are not read.
	if strings.Contains(strings.Join(c.Manifest.Capabilities.Env, ","), "s3cret") {
		t.Error("an env value reached the policy input")
	}

	for name, tc := range map[string]struct{ config, want string }{
		"not JSON":      {"{", "read artifact config"},
		"no manifest":   {`{"module":{}}`, "no app manifest"},
		"bad timeout":   {`{"manifest":{"limits":{"timeout":"soon"}}}`, `limits.timeout "soon" is not a duration`},
		"too large":     {`{"manifest":{}, "x":"` + strings.Repeat("a", MaxArtifactConfigSize) + `"}`, "more than"},
		"wrong type":    {`{"manifest":{"limits":{"memory":"64MiB"}}}`, "read artifact config"},
		"empty default": {`{"manifest":{}}`, ""},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := ParseArtifactConfig([]byte(tc.config))
			if tc.want == "" {
				if err != nil || c.Manifest.App.Labels == nil || c.Imports == nil || c.Manifest.Capabilities.Env == nil {
					t.Fatalf("%+v %v: want empty, non-nil lists and maps", c, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}
