package policy

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseFile checks that no policy file, however broken, panics the parser or the
// compiler, and that every failure is an *Error.
func FuzzParseFile(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	for _, s := range []string{
		validPolicy,
		"apiVersion: [fermion\n",
		"a: &x [1]\nb: *x\n",
		"- - - - x\n",
		"spec: {target: placement, constraints: [{name: a, expression: 'node.labels.x == \"y\"'}]}\n",
		"metadata:\n\tname: p\n",
		"--- 1\n--- 2\n",
		"a: |\n  b\n c\n",
		"? a\n: b\n",
		"a: !!binary aGVsbG8=\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseFile("fuzz.yaml", data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T is not an *Error: %v", err, err)
			}
			return
		}
		if p.Name() == "" || p.Spec.Mode == "" || p.Spec.FailurePolicy == "" {
			t.Fatalf("accepted without name or defaults: %+v", p)
		}
		s, err := NewSet(Options{}, p)
		if err != nil {
			return
		}
		s.Admit(AdmissionInput{})
		s.RuntimeCheck(RuntimeInput{})
		cs, prefs := s.Placement(AppInput{})
		for _, c := range cs {
			c.Match(&NodeInput{})
		}
		for _, pr := range prefs {
			pr.Score(&NodeInput{})
		}
	})
}

// FuzzParseCases does the same for case files.
func FuzzParseCases(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(examplesDir, "cases", "*.yaml"))
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParseCases("fuzz.yaml", data); err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T is not an *Error: %v", err, err)
			}
		}
	})
}

// FuzzParseArtifactConfig checks that no artifact config, however broken, panics the
// reader, and that what it accepts can be judged by the example policies.
func FuzzParseArtifactConfig(f *testing.F) {
	for _, s := range []string{artifactConfig, `{"manifest":{}}`, `{"manifest":null}`, `[]`, `{"manifest":{"limits":{"memory":18446744073709551615,"timeout":"-1s"}}}`} {
		f.Add([]byte(s))
	}
	set, err := NewSet(Options{}, loadExamples(f)...)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseArtifactConfig(data)
		if err != nil {
			return
		}
		if c.Manifest.Limits.Memory < 0 || c.Manifest.Limits.TimeoutMS < 0 {
			t.Fatalf("negative limits accepted: %+v", c.Manifest.Limits)
		}
		set.Admit(AdmissionInput{Manifest: c.Manifest, Artifact: Artifact{Imports: c.Imports, ABI: c.ABI, Size: c.Size}})
		set.RuntimeCheck(RuntimeInput{Artifact: c.RuntimeArtifact("sha256:0")})
	})
}
