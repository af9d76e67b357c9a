package policy

import (
	"fmt"
	"strings"
	"testing"
)

func TestRunCasesReportsMismatch(t *testing.T) {
	s, err := NewSet(Options{}, mustParse(t, admissionPolicy("require-signed", "artifact.signed\n      message: not signed")))
	if err != nil {
		t.Fatal(err)
	}
	cases, err := ParseCases("c.yaml", []byte(`cases:
  - name: signed passes
    target: admission
    input: {artifact: {signed: true}}
    expect: allow
  - name: wrongly expected to pass
    target: admission
    input: {artifact: {signed: false}}
    expect: allow
  - name: wrong message
    target: admission
    input: {artifact: {}}
    expect: deny
    messageContains: registry
  - name: unknown policy
    target: admission
    policy: nope
    input: {artifact: {}}
    expect: deny
  - name: wrong target for the policy
    target: runtime
    policy: require-signed
    input: {artifact: {}}
    expect: deny
`))
	if err != nil {
		t.Fatal(err)
	}
	results := RunCases(s, cases)
	if Failed(results) != 4 || !results[0].Pass {
		t.Fatalf("results %+v", results)
	}
	var b strings.Builder
	if err := WriteCaseTable(&b, results); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, w := range []string{
		"RESULT  CASE",
		"ok      signed passes",
		"FAIL    wrongly expected to pass     admission  allow   deny   c.yaml:6: policy require-signed: not signed (mode deny)",
		`c.yaml:10: no message contains "registry"`,
		"policy nope is not in the set",
		"policy require-signed is an admission policy; the case is runtime",
		"5 cases, 4 failed\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("table lacks %q:\n%s", w, out)
		}
	}
}

func TestParseCasesErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"unknown input field", "cases:\n  - name: a\n    target: admission\n    input:\n      artifact: {sigend: true}\n    expect: deny\n",
			`c.yaml:5:18: cases[0].input.artifact.sigend: unknown field; did you mean "signed"?`},
		{"wrong input type", "cases:\n  - name: a\n    target: admission\n    input: {artifact: {size: big}}\n    expect: deny\n",
			"cases[0].input.artifact.size: must be an integer"},
		{"placement input for admission", "cases:\n  - name: a\n    target: admission\n    input: {node: {name: n}}\n    expect: deny\n",
			"cases[0].input.node: unknown field"},
		{"missing expect", "cases:\n  - name: a\n    target: admission\n    input: {}\n", "cases[0].expect: required"},
		{"bad expect", "cases:\n  - name: a\n    target: admission\n    input: {}\n    expect: reject\n", `c.yaml:5:13: cases[0].expect: is "reject"`},
		{"missing target", "cases:\n  - name: a\n    input: {}\n    expect: deny\n", "cases[0].target: required"},
		{"missing input", "cases:\n  - name: a\n    target: admission\n    expect: deny\n", "cases[0].input: required"},
		{"duplicate names", "cases:\n  - {name: a, target: admission, input: {}, expect: deny}\n  - {name: a, target: admission, input: {}, expect: deny}\n", "unique"},
		{"no cases", "cases: []\n", "cases: required"},
		{"unknown top-level field", "case: []\n", `did you mean "cases"?`},
		{"huge case file", "cases: []\n#" + strings.Repeat("x", MaxCaseFileSize), "the limit is 1024 KiB"},
		{"deeply nested input", "cases:\n  - name: a\n    target: admission\n    input: {artifact: {annotations: " + strings.Repeat("{a: ", 40) + "b" + strings.Repeat("}", 40) + "}}\n", "nested deeper than 32 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCases("c.yaml", []byte(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestCaseTableCounts: the summary line counts cases in the number they call for.
func TestCaseTableCounts(t *testing.T) {
	s, err := NewSet(Options{}, mustParse(t, admissionPolicy("require-signed", "artifact.signed\n      message: not signed")))
	if err != nil {
		t.Fatal(err)
	}
	doc := func(n int) string {
		var b strings.Builder
		b.WriteString("cases:\n")
		for i := range n {
			fmt.Fprintf(&b, "  - name: signed passes %d\n    target: admission\n    input: {artifact: {signed: true}}\n    expect: allow\n", i)
		}
		return b.String()
	}
	for _, tt := range []struct {
		name  string
		cases int
		want  string
	}{
		{"none", 0, "0 cases, 0 failed\n"},
		{"one", 1, "1 case, 0 failed\n"},
		{"two", 2, "2 cases, 0 failed\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var cases []Case
			if tt.cases > 0 {
				if cases, err = ParseCases("c.yaml", []byte(doc(tt.cases))); err != nil {
					t.Fatal(err)
				}
			}
			var b strings.Builder
			if err := WriteCaseTable(&b, RunCases(s, cases)); err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(b.String(), "\n"+tt.want) {
				t.Errorf("table ends %q, want a last line %q", b.String(), tt.want)
			}
		})
	}
}
