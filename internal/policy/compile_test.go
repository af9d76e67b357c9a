package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// admissionPolicy is a policy file with one validation, indented as written in YAML.
func admissionPolicy(name, expr string) string {
	return fmt.Sprintf(`apiVersion: fermion.dev/v1
kind: Policy
metadata:
  name: %s
spec:
  target: admission
  validations:
    - expression: %s
`, name, expr)
}

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := ParseFile("p.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse:\n%v", err)
	}
	return p
}

// compileErr applies src to an empty set and returns the compile error's text.
func compileErr(t *testing.T, src string) string {
	t.Helper()
	_, err := (*Set)(nil).With(mustParse(t, src))
	if err == nil {
		t.Fatal("compiled, want an error")
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Kind != KindCompile {
		t.Fatalf("error is not a compile *Error: %v", err)
	}
	t.Log(err)
	return err.Error()
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"syntax error in expression", admissionPolicy("p", "artifact.signed &&"),
			[]string{"p.yaml:8:", "spec.validations[0].expression", "Syntax error", "(expression 1:"}},
		{"type error has position", admissionPolicy("p", "artifact.signed && artifact.size > 'big'"),
			[]string{"p.yaml:8:52:", "found no matching overload for '_>_'", "(expression 1:34)", "| artifact.signed && artifact.size > 'big'\n    | " + strings.Repeat(".", 33) + "^"}},
		{"unknown variable", admissionPolicy("p", "request.user == 'admin'"),
			[]string{"p.yaml:8:19:", "undeclared reference to 'request'", "can use artifact, manifest, caller and deployment"}},
		{"misspelt variable", admissionPolicy("p", "calller.role == 'admin'"),
			[]string{"undeclared reference to 'calller'", "did you mean 'caller'?"}},
		{"unknown field", admissionPolicy("p", "artifact.sigend"),
			[]string{"p.yaml:8:27:", "undefined field 'sigend'"}},
		{"not boolean", admissionPolicy("p", "artifact.size"),
			[]string{"p.yaml:8:19:", "must evaluate to a bool, but its type is int"}},
		{"message expression not a string", admissionPolicy("p", "artifact.signed\n      messageExpression: artifact.size"),
			[]string{"spec.validations[0].messageExpression", "must evaluate to a string"}},
		{"invalid regex", admissionPolicy("p", `"artifact.digest.matches('[')"`),
			[]string{"p.yaml:8:", "invalid matches argument"}},
		{"expression in a block scalar", admissionPolicy("p", "|\n        artifact.signed &&\n          nope"),
			[]string{"p.yaml:10:11:", "undeclared reference to 'nope'", "(expression 2:3)"}},
		{"exceeds cost budget", admissionPolicy("p", "artifact.imports.all(a, artifact.imports.all(b, a == b || a.startsWith(b)))"),
			[]string{"p.yaml:8:19:", "worst-case cost", "exceeds the limit of 1,000,000 per evaluation", "nested loops"}},
		{"placement matchCondition uses node", `apiVersion: fermion.dev/v1
kind: Policy
metadata: {name: p}
spec:
  target: placement
  matchConditions: [{name: m, expression: 'node.name != ""'}]
  constraints: [{name: c, expression: 'true'}]
`, []string{"spec.matchConditions[0].expression", "undeclared reference to 'node'", "app only"}},
		{"preference is a string", `apiVersion: fermion.dev/v1
kind: Policy
metadata: {name: p}
spec:
  target: placement
  preferences: [{name: c, weight: 1, expression: 'node.name'}]
`, []string{"spec.preferences[0].expression", "must evaluate to a number in [0, 1] or a bool, but its type is string"}},
		{"runtime policy uses manifest", `apiVersion: fermion.dev/v1
kind: Policy
metadata: {name: p}
spec:
  target: runtime
  validations: [{expression: 'manifest.limits.memory < 1'}]
`, []string{"undeclared reference to 'manifest'", "can use artifact and node"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := compileErr(t, tt.src)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
		})
	}
}

func TestCompileReportsEveryExpression(t *testing.T) {
	msg := compileErr(t, admissionPolicy("p", "nope1\n    - expression: nope2"))
	if !strings.Contains(msg, "'nope1'") || !strings.Contains(msg, "'nope2'") {
		t.Errorf("want both errors:\n%s", msg)
	}
}

// A dyn-typed expression is accepted at compile time; a non-bool result is an
// evaluation error, handled by failurePolicy.
func TestDynResultNotBoolFailsClosed(t *testing.T) {
	s, err := NewSet(Options{}, mustParse(t, admissionPolicy("p", "manifest.slo.availability")))
	if err != nil {
		t.Fatal(err)
	}
	d := s.Admit(AdmissionInput{Manifest: Manifest{SLO: map[string]any{"availability": 0.99}}})
	if d.Allowed || !d.Denials[0].Error || !strings.Contains(d.Denials[0].Message, "not a bool") {
		t.Errorf("decision %v", d)
	}
}

func TestLint(t *testing.T) {
	withMatch := func(expr string) string {
		return strings.Replace(admissionPolicy("p", "artifact.signed"), "  validations:", "  matchConditions:\n    - name: m\n      expression: "+expr+"\n  validations:", 1)
	}
	tests := []struct {
		name, src, want string
	}{
		{"matches nothing: literal false", withMatch("'false'"), "matches nothing"},
		{"matches nothing: constant comparison", withMatch("1 == 2"), "matches nothing"},
		{"matches nothing: false and more", withMatch(`"false && caller.role == 'dev'"`), "matches nothing"},
		{"always-true match condition", withMatch("'true'"), "always true; remove it"},
		{"always-false validation", admissionPolicy("p", "'false'"), "every input the policy matches is a violation"},
		{"always-true validation", admissionPolicy("p", `"'a' in ['a', 'b']"`), "never objects"},
		{"fails open", strings.Replace(admissionPolicy("p", "artifact.signed"), "target: admission", "target: admission\n  failurePolicy: Ignore", 1), "fails open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.src)
			fs, err := Lint(p)
			if err != nil {
				t.Fatal(err)
			}
			var all []string
			for _, f := range fs {
				all = append(all, f.String())
			}
			if !strings.Contains(strings.Join(all, "\n"), tt.want) {
				t.Errorf("findings %q do not mention %q", all, tt.want)
			}
			// A policy that matches nothing is still valid.
			if _, err := NewSet(Options{}, p); err != nil {
				t.Errorf("lint finding stopped compile: %v", err)
			}
		})
	}
	t.Run("clean policy", func(t *testing.T) {
		fs, err := Lint(mustParse(t, withMatch("caller.role != 'dev'")))
		if err != nil || len(fs) != 0 {
			t.Errorf("findings %v, err %v", fs, err)
		}
	})
	t.Run("compile error", func(t *testing.T) {
		if _, err := Lint(mustParse(t, admissionPolicy("p", "nope"))); err == nil {
			t.Error("no error")
		}
	})
}
