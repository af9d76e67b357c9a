package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

const validPolicy = `apiVersion: fermion.dev/v1
kind: Policy
metadata:
  name: require-signed
spec:
  target: admission
  validations:
    - expression: artifact.signed
      message: artifact is not signed
`

func TestParseFileDefaults(t *testing.T) {
	p, err := ParseFile("p.yaml", []byte(validPolicy))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "require-signed" || p.Spec.Target != TargetAdmission {
		t.Errorf("parsed %+v", p)
	}
	if p.Spec.FailurePolicy != Fail || p.Spec.Mode != ModeDeny || p.Spec.Validations[0].Reason != "Forbidden" {
		t.Errorf("defaults = %s/%s/%s, want Fail/deny/Forbidden", p.Spec.FailurePolicy, p.Spec.Mode, p.Spec.Validations[0].Reason)
	}
}

// parseErr parses src and returns the error text, failing the test if it parses.
func parseErr(t *testing.T, src string) string {
	t.Helper()
	p, err := ParseFile("p.yaml", []byte(src))
	if err == nil {
		t.Fatalf("parsed, want an error: %+v", p)
	}
	var pe *Error
	if !errors.As(err, &pe) || len(pe.Problems) == 0 {
		t.Fatalf("error %T %v is not an *Error with problems", err, err)
	}
	t.Log(err.Error())
	return err.Error()
}

func TestParseFileErrors(t *testing.T) {
	spec := func(body string) string {
		return "apiVersion: fermion.dev/v1\nkind: Policy\nmetadata:\n  name: p\nspec:\n" + body
	}
	tests := []struct {
		name, src string
		want      []string // substrings of the error
	}{
		{"syntax error", "apiVersion: [fermion\nkind: Policy\n", []string{"p.yaml:2:", "invalid YAML"}},
		{"tab indentation", "metadata:\n\tname: p\n", []string{"p.yaml:2:1", "tabs"}},
		{"empty file", "", []string{"file is empty"}},
		{"not a mapping", "- a\n- b\n", []string{"must be a mapping"}},
		{"not UTF-8", "name: \xff\n", []string{"not valid UTF-8"}},
		{"two documents", validPolicy + "---\n" + validPolicy, []string{"more than one YAML document"}},
		{"duplicate key", "kind: Policy\nkind: Policy\n", []string{"p.yaml:2:", `"kind"`}},
		{"anchor", "apiVersion: &v fermion.dev/v1\nkind: *v\n", []string{"anchors"}},
		{"tag", "apiVersion: !!str fermion.dev/v1\n", []string{"tags"}},
		{"unknown top-level field", "apiVersion: fermion.dev/v1\nkind: Policy\nmetdata: {name: p}\n",
			[]string{"p.yaml:3:1: metdata: unknown field", `did you mean "metadata"`}},
		{"unknown spec field", spec("  target: admission\n  validation:\n    - expression: 'true'\n"),
			[]string{"p.yaml:7:3: spec.validation: unknown field", `did you mean "validations"`}},
		{"unknown nested field", spec("  target: admission\n  validations:\n    - expresion: 'true'\n"),
			[]string{"p.yaml:8:7: spec.validations[0].expresion: unknown field", `"expression"`}},
		{"wrong type", spec("  target: admission\n  validations: artifact.signed\n"),
			[]string{"p.yaml:7:16: spec.validations: must be a list"}},
		{"weight not a number", spec("  target: placement\n  preferences:\n    - {name: a, weight: high, expression: 'true'}\n"),
			[]string{"spec.preferences[0].weight: must be a number"}},
		{"missing apiVersion", "kind: Policy\nmetadata: {name: p}\nspec: {target: admission, validations: [{expression: 'true'}]}\n",
			[]string{"apiVersion: required"}},
		{"wrong apiVersion", strings.Replace(validPolicy, "fermion.dev/v1", "admissionregistration.k8s.io/v1", 1),
			[]string{"p.yaml:1:13: apiVersion", "fermion.dev/v1"}},
		{"wrong kind", strings.Replace(validPolicy, "kind: Policy", "kind: ValidatingAdmissionPolicy", 1), []string{"kind: is"}},
		{"missing name", strings.Replace(validPolicy, "name: require-signed", "labels: {}", 1), []string{"metadata.name: required"}},
		{"bad name", strings.Replace(validPolicy, "require-signed", "Require_Signed", 1), []string{"p.yaml:4:9: metadata.name", "not a valid name"}},
		{"missing target", spec("  validations: [{expression: 'true'}]\n"), []string{"spec.target: required"}},
		{"bad target", spec("  target: deploy\n  validations: [{expression: 'true'}]\n"), []string{"spec.target: is \"deploy\""}},
		{"bad mode", spec("  target: admission\n  mode: enforce\n  validations: [{expression: 'true'}]\n"), []string{"spec.mode", "deny, warn or audit"}},
		{"failurePolicy in lower case", spec("  target: admission\n  failurePolicy: fail\n  validations: [{expression: 'true'}]\n"), []string{"capitalised"}},
		{"admission without validations", spec("  target: admission\n"), []string{"spec.validations: required"}},
		{"empty expression", spec("  target: admission\n  validations: [{expression: ''}]\n"), []string{"spec.validations[0].expression: required"}},
		{"bad reason", spec("  target: admission\n  validations: [{expression: 'true', reason: Nope}]\n"), []string{"spec.validations[0].reason"}},
		{"placement with validations", spec("  target: placement\n  validations: [{expression: 'true'}]\n"), []string{"not validations"}},
		{"placement with nothing", spec("  target: placement\n"), []string{"at least one entry in constraints or preferences"}},
		{"constraints on admission", spec("  target: admission\n  validations: [{expression: 'true'}]\n  constraints: [{name: a, expression: 'true'}]\n"),
			[]string{"only a placement policy has constraints"}},
		{"duplicate constraint names", spec("  target: placement\n  constraints:\n    - {name: a, expression: 'true'}\n    - {name: a, expression: 'true'}\n"),
			[]string{"spec.constraints[1].name", "unique"}},
		{"zero weight", spec("  target: placement\n  preferences: [{name: a, expression: 'true'}]\n"), []string{"spec.preferences[0].weight: required"}},
		{"message on two lines", spec("  target: admission\n  validations:\n    - expression: 'true'\n      message: |\n        a\n        b\n"), []string{"must be one line"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := parseErr(t, tt.src)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
		})
	}
}

func TestParseFileReportsEveryProblem(t *testing.T) {
	msg := parseErr(t, "apiVersion: fermion.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n  target: admission\n  mode: enforce\n  failurePolicy: Never\n  validations: [{expression: 'true'}]\n")
	if !strings.Contains(msg, "spec.mode") || !strings.Contains(msg, "spec.failurePolicy") {
		t.Errorf("want both problems, got:\n%s", msg)
	}
}

func TestParseFileHugeDocument(t *testing.T) {
	src := validPolicy + "# " + strings.Repeat("x", MaxPolicySize) + "\n"
	msg := parseErr(t, src)
	if !strings.Contains(msg, "the limit is 256 KiB") {
		t.Errorf("got %s", msg)
	}
}

// Deep nesting must be refused quickly: the YAML parser is quadratic in depth.
func TestParseFileDeeplyNested(t *testing.T) {
	tests := []struct{ name, src string }{
		{"flow sequences", "spec: " + strings.Repeat("[", 100_000)},
		{"flow mappings", "spec: " + strings.Repeat("{a: ", 50_000)},
		{"block sequences on one line", "spec:\n  " + strings.Repeat("- ", 100_000) + "x\n"},
		{"block mappings", func() string {
			var b strings.Builder
			for i := range 40 {
				b.WriteString(strings.Repeat(" ", i) + "k:\n")
			}
			return b.String()
		}()},
		{"just over the limit", "a: " + strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1) + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			msg := parseErr(t, tt.src)
			if !strings.Contains(msg, "nested deeper than 32 levels") {
				t.Errorf("got %s", msg)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// The YAML parser is also quadratic in the entries of one block mapping.
func TestParseFileTooManyEntries(t *testing.T) {
	var b strings.Builder
	for i := range 20_000 {
		fmt.Fprintf(&b, "k%d: 1\n", i)
	}
	start := time.Now()
	msg := parseErr(t, b.String())
	if !strings.Contains(msg, "p.yaml:1001:1: more than 1000 entries at one level") {
		t.Errorf("got %s", msg)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
}

func TestParseFileKeepsScalarText(t *testing.T) {
	// A YAML 1.1 reader would turn 1.10 into 1.1 and yes into true.
	p, err := ParseFile("p.yaml", []byte(validPolicy+"  matchConditions:\n    - {name: v, expression: 1.10}\nmetadata:\n  name: p\n  labels: {version: 1.10, enabled: yes}\n"))
	if err == nil {
		t.Fatalf("duplicate metadata accepted: %+v", p)
	}
	p, err = ParseFile("p.yaml", []byte(strings.Replace(validPolicy, "name: require-signed", "name: p\n  labels: {version: 1.10, on: yes}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Metadata.Labels["version"]; got != "1.10" {
		t.Errorf("label version = %q, want 1.10", got)
	}
}

func TestWithModeAndVersionCopy(t *testing.T) {
	p, err := ParseFile("p.yaml", []byte(validPolicy))
	if err != nil {
		t.Fatal(err)
	}
	q := p.WithMode(ModeAudit).WithVersion(3)
	if p.Spec.Mode != ModeDeny || p.Version != 0 || q.Spec.Mode != ModeAudit || q.Version != 3 {
		t.Errorf("p %s, q %s", p, q)
	}
	q.Spec.Validations[0].Expression = "false"
	if p.Spec.Validations[0].Expression != "artifact.signed" {
		t.Error("copy shares validations with the original")
	}
}
