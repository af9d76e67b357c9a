package cli_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"fermion.dev/fermion/internal/fermiontest"
)

func TestSLOValidate(t *testing.T) {
	dir := filepath.Join(fermiontest.Root(t), "examples", "slo")
	code, stdout, stderr := run(t, "slo", "validate", dir)
	if code != 0 {
		t.Fatalf("exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	contains(t, "stdout", stdout, "NAME", "hello-availability", "hello-latency", "latency<250ms", "99.9%", "node", "seed", "2 SLOs in 1 file: valid\n")

	code, stdout, stderr = run(t, "slo", "validate", dir, "-o", "json")
	if code != 0 {
		t.Fatalf("exited %d: %s", code, stderr)
	}
	var sums []struct {
		Name, App, SLI, Objective, Window, Scope string
		Tiers                                    []string
	}
	if err := json.Unmarshal([]byte(stdout), &sums); err != nil {
		t.Fatalf("json: %v\n%s", err, stdout)
	}
	if len(sums) != 2 || sums[0].Name != "hello-availability" || sums[0].Objective != "99.9%" || sums[0].Scope != "node" || len(sums[0].Tiers) != 4 ||
		sums[1].SLI != "latency<250ms" || sums[1].Tiers[0] != "page 14× over 15m and 5m for 5m" {
		t.Errorf("json = %+v", sums)
	}
}

func TestSLOValidateMistakes(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, filepath.Join(dir, "bad.yaml"), "name: x\napp: hello\nsli: availabilty\nobjective: 100\nwindoe: 30d\n")
	one := writeFile(t, filepath.Join(dir, "one.yaml"), "name: same\napp: hello\nsli: availability\nobjective: 99\n")
	two := writeFile(t, filepath.Join(dir, "two.yaml"), "name: same\napp: world\nsli: availability\nobjective: 99\n")
	cases := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"positioned problems", []string{bad}, 1, []string{bad + `:3:6: sli.kind: unknown SLI "availabilty"; did you mean "availability"?`, bad + ":4:12: objective: objective must be below 100 %", bad + `:5:1: windoe: unknown field "windoe"; did you mean "window"?`}},
		{"name in two files", []string{one, two}, 1, []string{two + `: SLO "same" is also defined in ` + one}},
		{"missing file", []string{filepath.Join(dir, "nope.yaml")}, 1, []string{"nope.yaml: no such file"}},
		{"empty directory", []string{t.TempDir()}, 1, []string{"holds no .yaml or .yml files"}},
		{"no files", nil, 2, []string{"give at least one SLO file"}},
		{"bad output", []string{one, "-o", "xml"}, 2, []string{`--output "xml": want table, json or yaml`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := run(t, append([]string{"slo", "validate"}, c.args...)...)
			if code != c.code {
				t.Fatalf("exited %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, stdout, stderr)
			}
			contains(t, "stderr", stderr, c.want...)
		})
	}
}

func TestSLORules(t *testing.T) {
	dir := t.TempDir()
	examples := filepath.Join(fermiontest.Root(t), "examples", "slo")
	out := filepath.Join(dir, "rules.yaml")
	code, stdout, stderr := run(t, "slo", "rules", examples, "-o", out)
	if code != 0 {
		t.Fatalf("exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	contains(t, "stderr", stderr, "wrote rules for 2 SLOs to "+out)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	contains(t, "rules", string(data), "fermion_slo:sli_error:ratio_rate1h", "alert: FermionSLOBurnPage", "alert: FermionSLOBurnTicket",
		`runbook_url: "https://runbooks.example/hello-availability"`, `le="0.25"`)

	// Standard output when -o is not given: the same rules.
	code, stdout, _ = run(t, "slo", "rules", examples)
	if code != 0 || stdout != string(data) {
		t.Errorf("stdout rules (exit %d) differ from the file", code)
	}

	// A mistake writes nothing: the previous rules stay whole.
	bad := writeFile(t, filepath.Join(dir, "bad.yaml"), "name: x\napp: hello\nsli: {kind: latency, threshold: 300ms}\nobjective: 99\n")
	code, _, stderr = run(t, "slo", "rules", bad, "-o", out)
	if code != 1 {
		t.Fatalf("exited %d, want 1: %s", code, stderr)
	}
	contains(t, "stderr", stderr, "latency threshold 300ms is not a bucket", "no rules were written")
	if after, _ := os.ReadFile(out); string(after) != string(data) {
		t.Error("a failed run changed the rules file")
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus); the generated rules are not checked")
	}
	if b, err := exec.Command(promtool, "check", "rules", out).CombinedOutput(); err != nil || !strings.Contains(string(b), "SUCCESS") {
		t.Errorf("promtool check rules: %v\n%s", err, b)
	}
}
