package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const examplesDir = "../../examples/policies"

// loadExamples parses every policy under examples/policies.
func loadExamples(t testing.TB) []*Policy {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no example policies in %s: %v", examplesDir, err)
	}
	var ps []*Policy
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParseFile(f, data)
		if err != nil {
			t.Fatalf("parse example:\n%v", err)
		}
		ps = append(ps, p)
	}
	return ps
}

func TestExamplesCompileAndLintClean(t *testing.T) {
	ps := loadExamples(t)
	want := []string{"allowed-registries", "cost-preference", "data-residency", "edge-slo-required",
		"limits-ceiling", "node-capabilities", "outbound-allowlist", "require-signed"}
	var got []string
	for _, p := range ps {
		got = append(got, p.Name())
		findings, err := Lint(p)
		if err != nil {
			t.Errorf("lint %s:\n%v", p.File, err)
		}
		for _, f := range findings {
			t.Errorf("lint finding: %s", f)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("examples = %v, want %v", got, want)
	}
}

func TestExampleCasesPass(t *testing.T) {
	set, err := NewSet(Options{}, loadExamples(t)...)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(examplesDir, "cases", "*.yaml"))
	if len(files) < 7 {
		t.Fatalf("found %d case files, want one per example and all.cases.yaml", len(files))
	}
	var all []Case
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cases, err := ParseCases(f, data)
		if err != nil {
			t.Fatalf("parse cases:\n%v", err)
		}
		all = append(all, cases...)
	}
	results := RunCases(set, all)
	if Failed(results) > 0 {
		var b strings.Builder
		WriteCaseTable(&b, results)
		t.Fatalf("example cases failed:\n%s", b.String())
	}
	// Every example policy is exercised by at least one case that expects it to object.
	objects := map[string]bool{}
	for _, r := range results {
		for _, v := range r.Decision.Violations() {
			objects[v.Policy] = true
		}
	}
	for _, p := range set.Policies() {
		if len(p.Spec.Preferences) == 0 && !objects[p.Name()] {
			t.Errorf("no case shows policy %s objecting", p.Name())
		}
	}
}
