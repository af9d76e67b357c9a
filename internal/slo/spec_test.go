package slo

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

const twoSLOs = `# the hello app's SLOs
apiVersion: fermion.dev/v1
kind: SLO
name: hello-availability
app: hello
sli: availability
objective: 99.9
window: 30d
scope:
  per: node
  nodes: {role: edge}
runbook: https://runbooks.example/hello
---
name: hello-latency
selector: {team: web}
sli:
  kind: latency
  threshold: 250ms
objective: "99.5%"
window: 28d
scope: region
alerting:
  preset: seed
---
name: custom
app: hello
sli: availability
objective: 99.99
alerting:
  tiers:
    - {severity: page, factor: 14.4, long: 1h, short: 5m, for: 2m}
    - {severity: ticket, factor: 2, long: 1d, short: 2h, for: 0m}
`

func TestDecodeValid(t *testing.T) {
	specs, err := Decode("slo.yaml", []byte(twoSLOs))
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 3 {
		t.Fatalf("got %d specs", len(specs))
	}
	a, l, c := specs[0], specs[1], specs[2]
	if a.Name != "hello-availability" || a.App != "hello" || a.SLI.Kind != Availability ||
		a.Objective != (Ratio{999, 1000}) || a.Window != 30*24*time.Hour ||
		a.Scope.Per != ScopeNode || a.Scope.Nodes["role"] != "edge" || a.Preset != "workbook" ||
		len(a.Tiers) != 4 || a.Runbook != "https://runbooks.example/hello" {
		t.Errorf("availability spec: %+v", a)
	}
	if l.Selector["team"] != "web" || l.SLI != (SLI{Latency, 250 * time.Millisecond}) ||
		l.Objective != (Ratio{995, 1000}) || l.Scope.Per != ScopeRegion || l.Preset != "seed" || len(l.Tiers) != 2 {
		t.Errorf("latency spec: %+v", l)
	}
	if c.Objective != (Ratio{9999, 10000}) || len(c.Tiers) != 2 || c.Tiers[0].For != 2*time.Minute ||
		c.Tiers[0].Factor != (Ratio{144, 10}) || c.Scope.Per != ScopeGlobal || c.Window != 30*24*time.Hour {
		t.Errorf("custom spec: %+v", c)
	}
	for i := range specs {
		if err := specs[i].Validate(); err != nil {
			t.Errorf("decoded spec fails Validate: %v", err)
		}
	}
}

func TestDecodeProblems(t *testing.T) {
	base := "name: a\napp: hello\nsli: availability\nobjective: 99.9\n"
	tests := []struct {
		name, src string
		want      []string // substrings of the error, in order
	}{
		{"unknown field", base + "objectve: 99\n", []string{`slo.yaml:5:1: objectve: unknown field "objectve"; did you mean "objective"?`}},
		{"unknown nested field", base + "scope: {pre: node}\n", []string{`slo.yaml:5:9: scope.pre: unknown field "pre"; did you mean "per"?`}},
		{"objective 100", "name: a\napp: hello\nsli: availability\nobjective: 100\n", []string{"slo.yaml:4:12: objective: objective must be below 100 %"}},
		{"objective above 100", "name: a\napp: hello\nsli: availability\nobjective: 100.5\n", []string{"below 100 %"}},
		{"objective 0", "name: a\napp: hello\nsli: availability\nobjective: 0\n", []string{"above 0 %"}},
		{"objective negative", "name: a\napp: hello\nsli: availability\nobjective: -5\n", []string{"objective", "not a plain decimal"}},
		{"objective text", "name: a\napp: hello\nsli: availability\nobjective: high\n", []string{"not a plain decimal"}},
		{"missing fields", "description: x\n", []string{"slo.yaml:1:1: name: required", "app: required", "sli: required", "objective: required"}},
		{"app and selector", base + "selector: {a: b}\n", []string{"selector: give app or selector, not both"}},
		{"bad window", base + "window: 30 days\n", []string{"slo.yaml:5:9: window:", "30d"}},
		{"unknown sli", "name: a\napp: hello\nsli: availabilty\nobjective: 99\n", []string{`did you mean "availability"?`}},
		{"latency without threshold", "name: a\napp: hello\nsli: {kind: latency}\nobjective: 99\n", []string{"sli.threshold: a latency SLI needs a threshold"}},
		{"unknown scope", base + "scope: nodes\n", []string{`unknown scope "nodes"`, `did you mean "node"`}},
		{"unknown preset", base + "alerting: {preset: sed}\n", []string{`did you mean "seed"?`}},
		{"short window too short for preset", base + "window: 1d\n", []string{"preset workbook's tier 3 looks back 3d"}},
		{"tier short >= long", base + "alerting:\n  tiers:\n    - {severity: page, factor: 2, long: 5m, short: 1h}\n", []string{"slo.yaml:7:8: alerting.tiers[0]: short window 1h must be shorter than long window 5m"}},
		{"tier missing factor", base + "alerting:\n  tiers:\n    - {severity: page, long: 1h, short: 5m}\n", []string{"alerting.tiers[0].factor: required"}},
		{"tier negative for", base + "alerting:\n  tiers:\n    - {severity: page, factor: 2, long: 1h, short: 5m, for: -1m}\n", []string{"alerting.tiers[0].for:", "is not a duration"}},
		{"tier bad severity", base + "alerting:\n  tiers:\n    - {severity: sms, factor: 2, long: 1h, short: 5m}\n", []string{`severity "sms" is not one of page, ticket`}},
		{"bad runbook", base + "runbook: wiki/hello\n", []string{"not an http(s) URL"}},
		{"bad name", "name: Hello_World\napp: hello\nsli: availability\nobjective: 99\n", []string{"not a valid name"}},
		{"duplicate names", base + "---\n" + base, []string{"slo.yaml:6:1: name: SLO \"a\" is defined twice (first at line 1)"}},
		{"duplicate key", base + "app: other\n", []string{`mapping key "app" already defined`}},
		{"wrong kind", base + "kind: Policy\n", []string{`kind "Policy" is not an SLO`}},
		{"not a mapping", "- a\n- b\n", []string{"must be a mapping, not a list"}},
		{"empty", "# nothing\n", []string{"file holds no SLO"}},
		{"invalid yaml", "name: [a\n", []string{"invalid YAML"}},
		{"anchor", "name: &x a\napp: *x\nsli: availability\nobjective: 99\n", []string{"anchors"}},
		{"too nested", "name: " + strings.Repeat("[", 40) + "\n", []string{"nested deeper than"}},
		{"too large", base + "description: " + strings.Repeat("x", MaxFileSize) + "\n", []string{"the limit is 256 KiB"}},
		{"second document bad", base + "---\nname: b\napp: hello\nsli: availability\nobjective: 100\n", []string{"slo.yaml:9:12: objective:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs, err := Decode("slo.yaml", []byte(tt.src))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, %v; want an *Error", specs, err)
			}
			if specs != nil {
				t.Errorf("specs returned beside an error: %v", specs)
			}
			msg := err.Error()
			at := 0
			for _, w := range tt.want {
				i := strings.Index(msg[at:], w)
				if i < 0 {
					t.Fatalf("error\n%s\nlacks (in order) %q", msg, w)
				}
				at += i + len(w)
			}
		})
	}
}

func TestParseDecimalAndWindow(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Ratio
		ok   bool
	}{
		{"99.9", Ratio{999, 10}, true}, {"14.4", Ratio{144, 10}, true}, {"6", Ratio{6, 1}, true},
		{"0.5", Ratio{5, 10}, true}, {".5", Ratio{5, 10}, true}, {"99.9999999999", Ratio{}, false},
		{"1e3", Ratio{}, false}, {"-1", Ratio{}, false}, {"", Ratio{}, false}, {".", Ratio{}, false},
		{"1.2.3", Ratio{}, false}, {"12345678901", Ratio{}, false},
	} {
		got, err := ParseDecimal(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseDecimal(%q) = %v, %v", tc.in, got, err)
		}
	}
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{{"30d", 30 * 24 * time.Hour}, {"5m", 5 * time.Minute}, {"2w", 14 * 24 * time.Hour}, {"1h30m", 90 * time.Minute}, {"0m", 0}, {"x", 0}, {"-1h", 0}} {
		got, err := ParseWindow(tc.in)
		if got != tc.want || (err == nil) != (tc.want > 0) {
			t.Errorf("ParseWindow(%q) = %v, %v", tc.in, got, err)
		}
		if tc.want > 0 {
			if back, _ := ParseWindow(FormatWindow(got)); back != got {
				t.Errorf("FormatWindow(%v) = %q does not round-trip", got, FormatWindow(got))
			}
		}
	}
}

func TestManifestSLO(t *testing.T) {
	good := ManifestSLO{Name: "availability", SLI: "availability", Objective: 99.9, Scope: "node", Nodes: map[string]string{"role": "edge"}, Preset: "seed", Runbook: "https://r.example/x"}
	s, probs := good.Spec("fermion.toml", "slo[0]", "hello")
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	if s.Objective != (Ratio{999, 1000}) || s.App != "hello" || s.Scope.Per != ScopeNode || len(s.Tiers) != 2 {
		t.Errorf("spec %+v", s)
	}
	if err := s.Validate(); err != nil {
		t.Error(err)
	}
	tests := []struct {
		name string
		m    ManifestSLO
		want string
	}{
		{"objective 100", ManifestSLO{Name: "a", SLI: "availability", Objective: 100}, "slo[0].objective: objective must be below 100 %"},
		{"no objective", ManifestSLO{Name: "a", SLI: "availability"}, "slo[0].objective: required"},
		{"sli typo", ManifestSLO{Name: "a", SLI: "latncy", Objective: 99}, `did you mean "latency"?`},
		{"latency no threshold", ManifestSLO{Name: "a", SLI: "latency", Objective: 99}, "slo[0].threshold"},
		{"bad preset", ManifestSLO{Name: "a", SLI: "availability", Objective: 99, Preset: "x"}, "unknown preset"},
		{"short window", ManifestSLO{Name: "a", SLI: "availability", Objective: 99, Window: "2d"}, "shorter than preset workbook's longest look-back 3d"},
		{"no name", ManifestSLO{SLI: "availability", Objective: 99}, "slo[0].name: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, probs := tt.m.Spec("fermion.toml", "slo[0]", "hello")
			if len(probs) == 0 {
				t.Fatal("no problem reported")
			}
			var all []string
			for _, p := range probs {
				all = append(all, p.String())
			}
			if joined := strings.Join(all, "\n"); !strings.Contains(joined, tt.want) {
				t.Errorf("problems\n%s\nlack %q", joined, tt.want)
			}
		})
	}
}

func TestDecodeCRLFAndBOM(t *testing.T) {
	src := "\xef\xbb\xbfname: a\r\napp: hello\r\nsli: availability\r\nobjective: 99.95\r\nobjectiv: 1\r\n"
	_, err := Decode("w.yaml", []byte(src))
	if err == nil || !strings.Contains(err.Error(), "w.yaml:5:1: objectiv: unknown field") {
		t.Fatalf("got %v", err)
	}
	specs, err := Decode("w.yaml", []byte(strings.Replace(src, "objectiv: 1\r\n", "", 1)))
	if err != nil || specs[0].Objective != (Ratio{9995, 10000}) {
		t.Fatalf("got %v, %v", specs, err)
	}
}

// TestDocExampleDecodes keeps the example in docs/slo.md a valid SLO.
func TestDocExampleDecodes(t *testing.T) {
	doc, err := os.ReadFile("../../docs/slo.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/slo.md has no yaml block")
	}
	specs, err := Decode("docs/slo.md", []byte(block))
	if err != nil {
		t.Fatal(err)
	}
	if s := specs[0]; s.Name != "hello-availability" || s.Scope.Per != ScopeNode || s.Objective != (Ratio{999, 1000}) {
		t.Errorf("spec %+v", s)
	}
}
