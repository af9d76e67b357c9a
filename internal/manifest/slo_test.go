package manifest

import (
	"strings"
	"testing"
)

const sloBase = `manifest_version = 1
[app]
name = "hello"
version = "0.1.0"
[component]
source = "hello.wasm"
[[routes]]
path = "/hello"
`

// TestSLOTables: [[slo]] tables decode into the manifest and normalise; mistakes are
// positioned with did-you-mean, and a manifest without them normalises as before.
func TestSLOTables(t *testing.T) {
	m, err := Parse("", []byte(sloBase+"[[slo]]\nname = \"availability\"\nsli = \"availability\"\nobjective = 99.9\nscope = \"node\"\n[[slo]]\nname = \"fast\"\nsli = \"latency\"\nthreshold = \"250ms\"\nobjective = 99\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	specs, err := m.SLOSpecs()
	if err != nil || len(specs) != 2 || specs[0].App != "hello" || specs[0].Scope.Per != "node" || specs[1].Objective.Num != 99 {
		t.Fatalf("specs %+v, %v", specs, err)
	}
	norm, err := m.Normalize()
	if err != nil || !strings.Contains(string(norm), `"slo":[{"name":"availability","sli":"availability","objective":99.9,"scope":"node"}`) {
		t.Errorf("normalised: %s, %v", norm, err)
	}
	plain, _ := Parse("", []byte(sloBase), "")
	if norm, _ := plain.Normalize(); strings.Contains(string(norm), "slo") {
		t.Errorf("a manifest without [[slo]] normalises with it: %s", norm)
	}
	for _, tc := range []struct {
		name, add string
		want      []string
	}{
		{"unknown key", "[[slo]]\nname = \"a\"\nsli = \"availability\"\nobjective = 99.9\nscop = \"node\"\n", []string{"fermion.toml:13", `did you mean "slo[0].scope"`}},
		{"objective 100", "[[slo]]\nname = \"a\"\nsli = \"availability\"\nobjective = 100\n", []string{"fermion.toml:12", "slo[0].objective", "below 100 %"}},
		{"objective a string", "[[slo]]\nname = \"a\"\nsli = \"availability\"\nobjective = \"99.9\"\n", []string{"slo[0].objective", "must be a number"}},
		{"twice", "[[slo]]\nname = \"a\"\nsli = \"availability\"\nobjective = 99\n[[slo]]\nname = \"a\"\nsli = \"availability\"\nobjective = 99\n", []string{"slo[1].name", "declared twice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("", []byte(sloBase+tc.add), "")
			if err == nil {
				t.Fatal("parsed")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
