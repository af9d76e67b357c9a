package rollout

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestParseSteps(t *testing.T) {
	tests := []struct {
		in      string
		want    []Stage
		wantErr string
	}{
		{in: "1node,10%,50%,100%", want: []Stage{{Nodes: Amount{Count: 1}}, {Weight: 10}, {Weight: 50}, {Weight: 100}}},
		{in: "3nodes, 25%nodes,manual, 100%", want: []Stage{{Nodes: Amount{Count: 3}}, {Nodes: Amount{Percent: 25}, Gate: GateManual}, {Weight: 100}}},
		{in: "1node@region=eu@zone=a,pause,100%", want: []Stage{{Nodes: Amount{Count: 1}, Selector: map[string]string{"region": "eu", "zone": "a"}, Gate: GatePause}, {Weight: 100}}},
		{in: "", wantErr: "no steps"},
		{in: "manual,10%", wantErr: "must follow a step"},
		{in: "10", wantErr: "is not a step"},
		{in: "manaul", wantErr: `did you mean "manual"`},
		{in: "0%", wantErr: "1%–100%"},
		{in: "101%", wantErr: "1%–100%"},
		{in: "0nodes", wantErr: "at least 1 node"},
		{in: "10%@region=eu", wantErr: "every node running the app"},
		{in: "1node@region", wantErr: "not label=value"},
		{in: "99999999999999999999node", wantErr: "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSteps(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestSpecValidate(t *testing.T) {
	steps := func(s string) []Stage {
		st, err := ParseSteps(s)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	tests := []struct {
		name    string
		spec    Spec
		wantErr string
	}{
		{"default", Spec{}, ""},
		{"canary", Spec{Kind: Canary, Steps: steps("1node,10%,100%")}, ""},
		{"rolling", Spec{Kind: Rolling, MaxUnavailable: Amount{Count: 1}}, ""},
		{"canary without steps", Spec{Kind: Canary}, "a canary needs steps"},
		{"weights shrink", Spec{Kind: Canary, Steps: steps("50%,10%")}, "weights must increase"},
		{"node after weight", Spec{Kind: Canary, Steps: steps("10%,2nodes")}, "put node steps first"},
		{"rolling with steps", Spec{Kind: Rolling, MaxSurge: Amount{Count: 1}, Steps: steps("10%")}, "steps are for kind canary"},
		{"rolling with no batch", Spec{Kind: Rolling}, "at least one must be above 0"},
		{"unknown kind", Spec{Kind: "blue-green"}, "unknown strategy"},
		{"bad checks", Spec{Kind: Canary, Steps: steps("100%"), Checks: Checks{MaxP99Ratio: 0.5}}, "max_p99_ratio"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := tt.spec.Normalize()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if n.Interval != DefaultInterval || n.MaxExtensions != DefaultMaxExtensions {
					t.Errorf("defaults not filled: %+v", n)
				}
				for _, st := range n.Steps {
					if st.Gate == "" {
						t.Errorf("step %s has no gate", st)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	r := Spec{Kind: Rolling, MaxUnavailable: Amount{Count: 1}, MaxSurge: Amount{Percent: 10}}
	got := r.Plan(7) // batch 1 + ceil(0.7) = 2: 2, 4, 6, 7
	var counts []int
	for _, s := range got {
		counts = append(counts, s.Nodes.Count)
		if s.Gate != GateNone {
			t.Errorf("rolling batch gated %q", s.Gate)
		}
	}
	if !reflect.DeepEqual(counts, []int{2, 4, 6, 7}) {
		t.Errorf("batches %v", counts)
	}
	if p := Default().Plan(3); len(p) != 1 || p[0].Nodes.Of(3) != 3 {
		t.Errorf("all at once: %+v", p)
	}
	if (Amount{Percent: 10}).Of(3) != 1 || (Amount{Count: 5}).Of(3) != 3 {
		t.Error("Amount.Of rounds wrong")
	}
}

func decodeTOML(t testing.TB, src string) (Spec, string) {
	var raw map[string]any
	if _, err := toml.Decode(src, &raw); err != nil {
		t.Fatalf("toml: %v", err)
	}
	tbl, _ := raw["strategy"].(map[string]any)
	lines := strings.Split(src, "\n")
	pos := func(field string) (int, int) {
		key := field[strings.LastIndex(field, ".")+1:]
		for i, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), key+" ") || strings.HasPrefix(strings.TrimSpace(l), key+"=") {
				return i + 1, strings.Index(l, key) + 1
			}
		}
		return 0, 0
	}
	s, probs := DecodeTable("fermion.toml", "strategy", tbl, pos)
	var msgs []string
	for _, p := range probs {
		msgs = append(msgs, p.String())
	}
	return s, strings.Join(msgs, "\n")
}

func TestDecodeTable(t *testing.T) {
	s, errs := decodeTOML(t, `
[strategy]
kind = "canary"
steps = ["1node", "10%", "manual", "100%"]
interval = "30s"
max_extensions = 2
sticky = "cookie:session"
[strategy.analysis]
max_error_ratio = 1
max_error_increase = 0.5
max_p99_ratio = 1.5
min_requests = 50
`)
	if errs != "" {
		t.Fatal(errs)
	}
	if s.Kind != Canary || len(s.Steps) != 3 || s.Steps[1].Gate != GateManual || s.Interval != 30*time.Second || s.MaxExtensions != 2 || s.Sticky != "cookie:session" {
		t.Errorf("spec %+v", s)
	}
	if s.Checks.MaxErrorRatio != 0.01 || s.Checks.MaxErrorIncrease != 0.005 || s.Checks.MaxP99Ratio != 1.5 || s.Checks.MinRequests != 50 || s.Checks.Alpha != 0.05 {
		t.Errorf("checks %+v", s.Checks)
	}
	if z, errs := decodeTOML(t, "[strategy]\nkind = \"canary\"\nsteps = [\"100%\"]\nmax_extensions = 0\n"); errs != "" || z.MaxExtensions != NoExtensions {
		t.Errorf("max_extensions = 0: %d %s", z.MaxExtensions, errs)
	}
	r, errs := decodeTOML(t, "[strategy]\nkind = \"rolling\"\nmax_unavailable = 1\nmax_surge = \"25%\"\n")
	if errs != "" || r.MaxUnavailable.Count != 1 || r.MaxSurge.Percent != 25 {
		t.Errorf("rolling %+v %s", r, errs)
	}
}

func TestDecodeTableErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"typo kind", "[strategy]\nkind = \"canry\"\nsteps = [\"100%\"]\n", `fermion.toml:2: strategy.kind: unknown strategy "canry"; did you mean "canary"?`},
		{"unknown key", "[strategy]\nkind = \"canary\"\nstep = [\"100%\"]\n", `fermion.toml:3:1: strategy.step: unknown field; did you mean "strategy.steps"?`},
		{"misplaced check", "[strategy]\nkind = \"canary\"\nsteps = [\"100%\"]\nmin_requests = 3\n", `belongs under [strategy.analysis]`},
		{"bad step", "[strategy]\nkind = \"canary\"\nsteps = [\"1node\", \"ten%\"]\n", `fermion.toml:3: strategy.steps: step 2: "ten%" is not a step`},
		{"step not string", "[strategy]\nkind = \"canary\"\nsteps = [10]\n", `strategy.steps[0]: must be a string`},
		{"comma in step", "[strategy]\nkind = \"canary\"\nsteps = [\"1node,10%\"]\n", `holds a comma`},
		{"interval", "[strategy]\nkind = \"canary\"\nsteps = [\"100%\"]\ninterval = \"soon\"\n", `strategy.interval: "soon" is not an interval`},
		{"missing kind", "[strategy]\nsteps = [\"100%\"]\n", `strategy.kind: required`},
		{"percent range", "[strategy]\nkind = \"canary\"\nsteps = [\"100%\"]\n[strategy.analysis]\nmax_error_ratio = 150\n", `strategy.analysis.max_error_ratio: 150 is not a percentage`},
		{"alpha", "[strategy]\nkind = \"canary\"\nsteps = [\"100%\"]\n[strategy.analysis]\nalpha = 0.9\n", `strategy.analysis.alpha: 0.9 is not a significance level`},
		{"analysis not table", "[strategy]\nkind = \"canary\"\nsteps = [\"100%\"]\nanalysis = 3\n", `strategy.analysis: must be a table`},
		{"semantic", "[strategy]\nkind = \"canary\"\nsteps = [\"50%\", \"10%\"]\n", `weights must increase`},
		{"surge type", "[strategy]\nkind = \"rolling\"\nmax_surge = true\n", `strategy.max_surge: must be a node count`},
		{"sticky", "[strategy]\nkind = \"canary\"\nsteps = [\"100%\"]\nsticky = \"ip\"\n", `fermion.toml:4: strategy.sticky: "ip" is not a stickiness key`},
		{"sticky on rolling", "[strategy]\nkind = \"rolling\"\nmax_surge = 1\nsticky = \"cookie:s\"\n", `stickiness applies to a canary`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := decodeTOML(t, tt.src)
			if !strings.Contains(errs, tt.want) {
				t.Errorf("problems:\n%s\nwant one containing %q", errs, tt.want)
			}
		})
	}
}

func FuzzDecodeTable(f *testing.F) {
	f.Add("[strategy]\nkind = \"canary\"\nsteps = [\"1node\", \"10%\", \"manual\", \"100%\"]\ninterval = \"1m\"\n[strategy.analysis]\nmax_p99_ratio = 1.2\n")
	f.Add("[strategy]\nkind = \"rolling\"\nmax_unavailable = \"25%\"\n")
	f.Add("[strategy]\nkind = \"canary\"\nsteps = [\"2nodes@region=eu\", \"pause\", \"50%nodes\"]\n")
	f.Fuzz(func(t *testing.T, src string) {
		var raw map[string]any
		if _, err := toml.Decode(src, &raw); err != nil {
			return
		}
		tbl, ok := raw["strategy"].(map[string]any)
		if !ok {
			return
		}
		s, probs := DecodeTable("f.toml", "strategy", tbl, nil)
		if len(probs) == 0 {
			// Whatever decodes must be valid and runnable.
			if err := s.Validate(); err != nil {
				t.Fatalf("decoded spec invalid: %v", err)
			}
			for _, n := range []int{0, 1, 7} {
				if p := s.Plan(n); len(p) == 0 || len(p) > 100001 {
					t.Fatalf("plan of %d nodes has %d steps", n, len(p))
				}
			}
		}
		for _, p := range probs {
			if p.Msg == "" || p.Field == "" {
				t.Fatalf("problem without field or message: %+v", p)
			}
		}
	})
}

func FuzzParseSteps(f *testing.F) {
	for _, s := range []string{"1node,10%,50%,100%", "3nodes@zone=a,manual,25%nodes", "pause", "1node@x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		steps, err := ParseSteps(s)
		if err != nil {
			return
		}
		// What parses prints back to steps that parse the same.
		var toks []string
		for _, st := range steps {
			toks = append(toks, st.String())
			if st.Gate == GateManual || st.Gate == GatePause {
				toks = append(toks, string(st.Gate))
			}
		}
		again, err := ParseSteps(strings.Join(toks, ","))
		if err != nil || !reflect.DeepEqual(again, steps) {
			t.Fatalf("%q → %v → %q → %v, %v", s, steps, strings.Join(toks, ","), again, err)
		}
	})
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		f       Flags
		check   func(Spec) bool
		wantErr string
	}{
		{"none", Flags{}, func(s Spec) bool { return s.Kind == AllAtOnce }, ""},
		{"issue example", Flags{Strategy: "canary", Steps: "1node,10%,50%,100%", Interval: "1m"}, func(s Spec) bool {
			return s.Kind == Canary && len(s.Steps) == 4 && s.Interval == time.Minute && s.Checks == DefaultChecks()
		}, ""},
		{"steps imply canary", Flags{Steps: "10%,100%"}, func(s Spec) bool { return s.Kind == Canary }, ""},
		{"rolling default batch", Flags{Strategy: "rolling"}, func(s Spec) bool { return s.MaxUnavailable.Count == 1 }, ""},
		{"rolling surge", Flags{MaxSurge: "25%"}, func(s Spec) bool { return s.Kind == Rolling && s.MaxSurge.Percent == 25 }, ""},
		{"typo", Flags{Strategy: "canery", Steps: "10%"}, nil, `did you mean "canary"`},
		{"canary without steps", Flags{Strategy: "canary"}, nil, "needs --steps"},
		{"steps on rolling", Flags{Strategy: "rolling", Steps: "10%"}, nil, "--steps is for --strategy canary"},
		{"bad step", Flags{Steps: "1node,x"}, nil, "--steps: step 2"},
		{"interval", Flags{Steps: "10%", Interval: "10ms"}, nil, "--interval \"10ms\""},
		{"surge on canary", Flags{Steps: "10%", MaxSurge: "1"}, nil, "--max-surge is for --strategy rolling"},
		{"bad amount", Flags{MaxUnavailable: "lots"}, nil, "--max-unavailable"},
		{"semantic", Flags{Steps: "50%,10%"}, nil, "weights must increase"},
		{"sticky", Flags{Steps: "10%,100%", Sticky: "header:x-user"}, func(s Spec) bool { return s.Sticky == "header:X-User" }, ""},
		{"sticky cookie", Flags{Steps: "10%,100%", Sticky: "cookie:session_id"}, func(s Spec) bool { return s.Sticky == "cookie:session_id" }, ""},
		{"sticky kind", Flags{Steps: "10%", Sticky: "query:u"}, nil, "write header:NAME or cookie:NAME"},
		{"sticky name", Flags{Steps: "10%", Sticky: "header:X User"}, nil, "not a valid header name"},
		{"sticky rolling", Flags{Strategy: "rolling", Sticky: "cookie:s"}, nil, "--sticky is for --strategy canary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseFlags(tt.f)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.check(s) {
				t.Fatalf("%+v, %v", s, err)
			}
		})
	}
}
