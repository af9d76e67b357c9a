package policy

import (
	"fmt"
	"strings"
	"testing"
)

func examplePolicy(t *testing.T, name string) *Policy {
	t.Helper()
	for _, p := range loadExamples(t) {
		if p.Name() == name {
			return p
		}
	}
	t.Fatalf("no example %s", name)
	return nil
}

var (
	pii    = AppInput{Name: "patients", Labels: map[string]string{"data_class": "pii"}}
	public = AppInput{Name: "catalog", Labels: map[string]string{"data_class": "public"}}
)

func regionNodes() []NodeInput {
	var nodes []NodeInput
	for i, r := range []string{"eu-west", "eu-central", "us-east", "ap-south", ""} {
		n := NodeInput{Name: fmt.Sprintf("n%d", i), Labels: map[string]string{"cost_tier": []string{"low", "standard", "high"}[i%3]}}
		if r != "" {
			n.Labels["region"] = r
		}
		nodes = append(nodes, n)
	}
	return nodes
}

func TestPlacementConstraints(t *testing.T) {
	s, err := NewSet(Options{}, examplePolicy(t, "data-residency"), examplePolicy(t, "cost-preference"))
	if err != nil {
		t.Fatal(err)
	}
	cs, prefs := s.Placement(pii)
	if len(cs) != 1 || cs[0].Name() != "policy:data-residency/eu-region" || len(prefs) != 1 {
		t.Fatalf("constraints %v, preferences %v", cs, prefs)
	}
	var got []string
	for _, n := range regionNodes() {
		ok, reason := cs[0].Match(&n)
		got = append(got, fmt.Sprintf("%s:%v:%s", n.Labels["region"], ok, reason))
	}
	want := "eu-west:true:,eu-central:true:,us-east:false:policy data-residency: node region not in EU list," +
		"ap-south:false:policy data-residency: node region not in EU list,:false:policy data-residency: node region not in EU list"
	if strings.Join(got, ",") != want {
		t.Errorf("matches\n got %s\nwant %s", strings.Join(got, ","), want)
	}
	if cs, _ := s.Placement(public); len(cs) != 0 {
		t.Errorf("public app constrained by %v", cs)
	}
}

func TestPlacementPreferences(t *testing.T) {
	s, err := NewSet(Options{}, examplePolicy(t, "cost-preference"))
	if err != nil {
		t.Fatal(err)
	}
	_, prefs := s.Placement(public)
	if len(prefs) != 1 || prefs[0].Weight() != 0.5 || prefs[0].Name() != "policy:cost-preference/low-cost" {
		t.Fatalf("preferences %v", prefs)
	}
	var scores []string
	for _, n := range regionNodes() {
		scores = append(scores, fmt.Sprint(prefs[0].Score(&n)))
	}
	if got := strings.Join(scores, ","); got != "1,0.5,0,1,0.5" {
		t.Errorf("scores %s", got)
	}
	if _, prefs := s.Placement(AppInput{Labels: map[string]string{"latency": "critical"}}); len(prefs) != 0 {
		t.Error("exempt app scored")
	}
}

func TestPreferenceScoresClamp(t *testing.T) {
	src := `apiVersion: fermion.dev/v1
kind: Policy
metadata: {name: p}
spec:
  target: placement
  preferences:
    - {name: big, weight: 2, expression: 'node.capacity.memory / 1024'}
    - {name: neg, weight: -1, expression: '-3.5'}
    - {name: bool, weight: 1, expression: 'node.name == "a"'}
    - {name: err, weight: 1, expression: 'node.labels["missing"] == "x"'}
`
	s, err := NewSet(Options{}, mustParse(t, src))
	if err != nil {
		t.Fatal(err)
	}
	_, prefs := s.Placement(AppInput{})
	n := &NodeInput{Name: "a", Capacity: Capacity{Memory: 1 << 30}}
	var got []string
	for _, p := range prefs {
		got = append(got, fmt.Sprintf("%s=%v*%v", p.Name(), p.Score(n), p.Weight()))
	}
	if s := strings.Join(got, " "); s != "policy:p/big=1*2 policy:p/neg=0*-1 policy:p/bool=1*1 policy:p/err=0*1" {
		t.Errorf("scores %s", s)
	}
}

func TestPlacementStagedModes(t *testing.T) {
	p := examplePolicy(t, "data-residency")
	audit, err := NewSet(Options{}, p.WithMode(ModeAudit))
	if err != nil {
		t.Fatal(err)
	}
	if cs, _ := audit.Placement(pii); len(cs) != 0 {
		t.Errorf("audit-mode placement policy enforced: %v", cs)
	}
	ex := audit.ExplainPlacement(pii, regionNodes())
	want := Exclusion{Policy: "data-residency", Mode: ModeAudit, Constraint: "eu-region", Reason: "policy data-residency: node region not in EU list", Excluded: 3}
	if len(ex) != 1 || ex[0] != want {
		t.Errorf("explain\n got %+v\nwant %+v", ex, want)
	}
	if ex := audit.ExplainPlacement(public, regionNodes()); len(ex) != 0 {
		t.Errorf("explain for an unmatched app: %+v", ex)
	}
	d := audit.CheckNode(pii, regionNodes()[2])
	if !d.Allowed || d.Outcome() != OutcomeAudit || d.Audits[0].Message != "node region not in EU list" {
		t.Errorf("CheckNode: %+v", d)
	}
}

func TestPlacementFailurePolicy(t *testing.T) {
	src := func(fp string) string {
		return `apiVersion: fermion.dev/v1
kind: Policy
metadata: {name: gpu}
spec:
  target: placement
  failurePolicy: ` + fp + `
  matchConditions: [{name: wants, expression: 'app.labels["gpu"] == "yes"'}]
  constraints: [{name: has-gpu, expression: 'node.labels["gpu"] == "yes"'}]
`
	}
	node := &NodeInput{Name: "n", Labels: map[string]string{}}
	t.Run("Fail", func(t *testing.T) {
		s, err := NewSet(Options{}, mustParse(t, src("Fail")))
		if err != nil {
			t.Fatal(err)
		}
		// The app has no gpu label: the matchCondition errors, so the policy applies.
		cs, _ := s.Placement(AppInput{})
		if len(cs) != 1 {
			t.Fatalf("constraints %v", cs)
		}
		if ok, reason := cs[0].Match(node); ok || reason != "policy gpu: constraint has-gpu failed to evaluate" {
			t.Errorf("Match = %v, %q", ok, reason)
		}
	})
	t.Run("Ignore", func(t *testing.T) {
		s, err := NewSet(Options{}, mustParse(t, src("Ignore")))
		if err != nil {
			t.Fatal(err)
		}
		if cs, _ := s.Placement(AppInput{}); len(cs) != 0 {
			t.Errorf("constraints %v", cs)
		}
		cs, _ := s.Placement(AppInput{Labels: map[string]string{"gpu": "yes"}})
		if ok, _ := cs[0].Match(node); !ok {
			t.Error("erroring constraint excluded the node under Ignore")
		}
	})
}

// The constraints keep their own copy of the app.
func TestPlacementCopiesApp(t *testing.T) {
	s, err := NewSet(Options{}, examplePolicy(t, "data-residency"))
	if err != nil {
		t.Fatal(err)
	}
	app := AppInput{Labels: map[string]string{"data_class": "pii"}}
	cs, _ := s.Placement(app)
	app.Labels["data_class"] = "public"
	if ok, _ := cs[0].Match(&NodeInput{Labels: map[string]string{"region": "us-east"}}); ok {
		t.Error("constraint follows the caller's map")
	}
}
