package policy

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAdmitModes(t *testing.T) {
	p := mustParse(t, `apiVersion: fermion.dev/v1
kind: Policy
metadata: {name: require-signed}
spec:
  target: admission
  validations:
    - expression: artifact.signed
      messageExpression: '"artifact " + artifact.digest + " has no signature by a trusted key"'
`)
	for _, tt := range []struct {
		mode    Mode
		allowed bool
		outcome Outcome
	}{
		{ModeDeny, false, OutcomeDeny},
		{ModeWarn, true, OutcomeWarn},
		{ModeAudit, true, OutcomeAudit},
	} {
		t.Run(string(tt.mode), func(t *testing.T) {
			s, err := NewSet(Options{}, p.WithMode(tt.mode).WithVersion(4))
			if err != nil {
				t.Fatal(err)
			}
			d := s.Admit(unsigned)
			if d.Allowed != tt.allowed || d.Outcome() != tt.outcome {
				t.Fatalf("decision %+v", d)
			}
			v := d.Violations()[0]
			want := Violation{Policy: "require-signed", Version: 4, Mode: tt.mode, Reason: "Forbidden",
				Message: "artifact sha256:0bad has no signature by a trusted key", Field: "spec.validations[0].expression"}
			if v != want {
				t.Errorf("violation\n got %+v\nwant %+v", v, want)
			}
			if got := v.String(); got != "policy require-signed: artifact sha256:0bad has no signature by a trusted key (mode "+string(tt.mode)+")" {
				t.Errorf("String() = %q", got)
			}
			if d := s.Admit(AdmissionInput{Artifact: Artifact{Signed: true}}); !d.Allowed || len(d.Violations()) != 0 {
				t.Errorf("signed: %+v", d)
			}
		})
	}
}

func TestDecisionString(t *testing.T) {
	d := Decision{
		Denials:  []Violation{{Policy: "a", Message: "no", Mode: ModeDeny}},
		Warnings: []Violation{{Policy: "b", Message: "hm", Mode: ModeWarn}},
	}
	if got, want := d.String(), "denied: policy a: no (mode deny); warnings: policy b: hm (mode warn)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestMatchConditionsSkip(t *testing.T) {
	src := strings.Replace(admissionPolicy("edge-only", "artifact.signed"), "  validations:",
		"  matchConditions:\n    - name: edge\n      expression: manifest.app.labels.?tier.orValue('') == 'edge'\n    - name: not-admin\n      expression: caller.role != 'admin'\n  validations:", 1)
	obs := &recorder{}
	s, err := NewSet(Options{Observer: obs}, mustParse(t, src))
	if err != nil {
		t.Fatal(err)
	}
	edge := unsigned
	edge.Manifest.App.Labels = map[string]string{"tier": "edge"}
	admin := edge
	admin.Caller.Role = "admin"
	if d := s.Admit(unsigned); !d.Allowed || len(d.Violations()) != 0 {
		t.Errorf("not matched: %+v", d)
	}
	if d := s.Admit(admin); !d.Allowed {
		t.Errorf("second condition false: %+v", d)
	}
	if d := s.Admit(edge); d.Allowed {
		t.Errorf("matched: %+v", d)
	}
	if got := obs.results(); got != "skipped,skipped,violation" {
		t.Errorf("observed %s", got)
	}
}

func TestMessageFallbacks(t *testing.T) {
	for _, tt := range []struct{ name, validation, want string }{
		{"message", "artifact.signed\n      message: must be signed", "must be signed"},
		{"messageExpression fails, message used", "artifact.signed\n      message: must be signed\n      messageExpression: artifact.annotations['missing']", "must be signed"},
		{"messageExpression empty, expression used", "artifact.signed\n      messageExpression: \"''\"", "failed expression: artifact.signed"},
		{"nothing", "artifact.signed", "failed expression: artifact.signed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSet(Options{}, mustParse(t, admissionPolicy("p", tt.validation)))
			if err != nil {
				t.Fatal(err)
			}
			if d := s.Admit(unsigned); len(d.Denials) != 1 || d.Denials[0].Message != tt.want {
				t.Errorf("got %+v, want message %q", d, tt.want)
			}
		})
	}
}

func TestFailurePolicy(t *testing.T) {
	// A missing map key is an evaluation error.
	expr := "artifact.annotations['org.opencontainers.image.source'].startsWith('https://')"
	base := admissionPolicy("source", expr)
	for _, tt := range []struct {
		name, fp string
		mode     Mode
		want     Outcome
		result   Result
	}{
		{"default fails closed", "", ModeDeny, OutcomeDeny, ResultError},
		{"Fail", "Fail", ModeDeny, OutcomeDeny, ResultError},
		{"Fail in audit mode only audits", "Fail", ModeAudit, OutcomeAudit, ResultError},
		{"Ignore skips", "Ignore", ModeDeny, OutcomeAllow, ResultIgnored},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := base
			if tt.fp != "" {
				src = strings.Replace(base, "target: admission", "target: admission\n  failurePolicy: "+tt.fp, 1)
			}
			obs := &recorder{}
			s, err := NewSet(Options{Observer: obs}, mustParse(t, src).WithMode(tt.mode))
			if err != nil {
				t.Fatal(err)
			}
			d := s.Admit(unsigned)
			if d.Outcome() != tt.want || obs.results() != string(tt.result) {
				t.Fatalf("outcome %s (%s), observed %s; want %s, %s", d.Outcome(), d, obs.results(), tt.want, tt.result)
			}
			if tt.want != OutcomeAllow {
				v := d.Violations()[0]
				if !v.Error || !strings.Contains(v.String(), "policy source: evaluation failed (failurePolicy Fail): spec.validations[0].expression: no such key") {
					t.Errorf("violation %+v", v)
				}
			}
		})
	}
}

// An input far larger than the compile-time estimate assumed is stopped by the
// run-time cost limit, and the failure policy decides.
func TestRuntimeCostLimit(t *testing.T) {
	p := mustParse(t, admissionPolicy("imports", "artifact.imports.all(i, !i.startsWith('env.'))"))
	s, err := NewSet(Options{CostLimit: 20_000}, p)
	if err != nil {
		t.Fatalf("statically within budget, but: %v", err)
	}
	small := AdmissionInput{Artifact: Artifact{Imports: []string{"wasi_snapshot_preview1.fd_write"}}}
	if d := s.Admit(small); !d.Allowed {
		t.Fatalf("small input: %v", d)
	}
	huge := AdmissionInput{Artifact: Artifact{Imports: slices.Repeat([]string{"wasi_snapshot_preview1.fd_write"}, 100_000)}}
	start := time.Now()
	d := s.Admit(huge)
	if d.Allowed || !strings.Contains(d.Denials[0].Message, "cost limit exceeded") {
		t.Errorf("huge input: %v", d)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("took %v", el)
	}
	ignore, err := NewSet(Options{CostLimit: 20_000}, mustParse(t, strings.Replace(admissionPolicy("imports", "artifact.imports.all(i, !i.startsWith('env.'))"), "target: admission", "target: admission\n  failurePolicy: Ignore", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if d := ignore.Admit(huge); !d.Allowed {
		t.Errorf("Ignore: %v", d)
	}
	// The same expression is refused outright when even the assumed sizes exceed the limit.
	if _, err := NewSet(Options{CostLimit: 1_000}, p); err == nil || !strings.Contains(err.Error(), "exceeds the limit of 1,000") {
		t.Errorf("tiny limit: %v", err)
	}
}

func TestObserverTiming(t *testing.T) {
	clock := time.Unix(0, 0)
	now := func() time.Time { clock = clock.Add(3 * time.Microsecond); return clock }
	obs := &recorder{}
	s, err := NewSet(Options{Observer: obs, Now: now},
		mustParse(t, admissionPolicy("a", "artifact.signed")).WithMode(ModeWarn),
		mustParse(t, admissionPolicy("b", "artifact.size < 10")))
	if err != nil {
		t.Fatal(err)
	}
	s.Admit(unsigned)
	want := []observation{{"a", ModeWarn, ResultViolation, 3e-6}, {"b", ModeDeny, ResultPass, 3e-6}}
	if len(obs.got) != 2 {
		t.Fatalf("observed %+v", obs.got)
	}
	for i, o := range obs.got {
		if o.policy != want[i].policy || o.mode != want[i].mode || o.result != want[i].result || o.seconds < 2.9e-6 || o.seconds > 3.1e-6 {
			t.Errorf("observation %d = %+v, want %+v", i, o, want[i])
		}
	}
}

func TestRuntimeCheck(t *testing.T) {
	var node *Policy
	for _, p := range loadExamples(t) {
		if p.Name() == "node-capabilities" {
			node = p
		}
	}
	s, err := NewSet(Options{}, node, mustParse(t, admissionPolicy("admission-only", "false")))
	if err != nil {
		t.Fatal(err)
	}
	in := RuntimeInput{
		Artifact: RuntimeArtifact{Imports: []string{"wasi_snapshot_preview1.fd_write"}, Capabilities: Capabilities{AllowedOutboundHosts: []string{"api.example.com"}}},
		Node:     RuntimeNode{Name: "edge-1", Allow: NodeAllow{ImportModules: []string{"wasi_snapshot_preview1"}}},
	}
	d := s.RuntimeCheck(in)
	if d.Allowed || len(d.Denials) != 1 || d.Denials[0].Message != "outbound hosts beyond what the node allows" {
		t.Fatalf("decision %+v", d)
	}
	in.Node.Allow.OutboundHosts = []string{"api.example.com"}
	if d := s.RuntimeCheck(in); !d.Allowed {
		t.Errorf("allowed node: %v", d)
	}
}

type observation struct {
	policy  string
	mode    Mode
	result  Result
	seconds float64
}

type recorder struct{ got []observation }

func (r *recorder) Evaluated(policy string, mode Mode, result Result, seconds float64) {
	r.got = append(r.got, observation{policy, mode, result, seconds})
}

func (r *recorder) results() string {
	var s []string
	for _, o := range r.got {
		s = append(s, string(o.result))
	}
	return strings.Join(s, ",")
}
