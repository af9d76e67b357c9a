package slo

import (
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestThresholdRoundsUp(t *testing.T) {
	for _, obj := range []string{"99", "99.5", "99.9", "99.95", "99.99", "99.999", "90", "97.3"} {
		pct, _ := ParseDecimal(obj)
		o := Ratio{pct.Num, pct.Den * 100}
		for _, f := range []string{"14.4", "14", "6", "3", "1", "4", "0.5", "2.7", "13.37"} {
			factor, _ := ParseDecimal(f)
			p, q := threshold(factor, o)
			pr, _ := new(big.Rat).SetString(p + "/" + q)
			want := new(big.Rat).Mul(new(big.Rat).SetFrac64(int64(factor.Num), int64(factor.Den)), new(big.Rat).SetFrac64(int64(o.Den-o.Num), int64(o.Den)))
			if pr.Cmp(want) != 0 {
				t.Errorf("%s× at %s%%: %s/%s ≠ %s", f, obj, p, q, want)
			}
			pf, _ := new(big.Rat).SetString(p)
			qf, _ := new(big.Rat).SetString(q)
			pv, _ := pf.Float64()
			qv, _ := qf.Float64()
			x, _ := pr.Float64()
			if x*qv < pv {
				t.Errorf("%s× at %s%%: a ratio of exactly %s/%s fails \"* %s >= %s\" in float64", f, obj, p, q, q, p)
			}
		}
	}
}

func TestRulesRefusals(t *testing.T) {
	sel := spec999(ScopeGlobal, "workbook")
	sel.App, sel.Selector = "", map[string]string{"team": "web"}
	if _, err := Rules([]Spec{sel}); err == nil || !strings.Contains(err.Error(), "give app: instead") {
		t.Errorf("selector SLO: %v", err)
	}
	lat := spec999(ScopeGlobal, "workbook")
	lat.SLI = SLI{Kind: Latency, Threshold: 300 * time.Millisecond}
	if _, err := Rules([]Spec{lat}); err == nil || !strings.Contains(err.Error(), "not a bucket") || !strings.Contains(err.Error(), "250ms") {
		t.Errorf("latency off the buckets: %v", err)
	}
	dup := spec999(ScopeGlobal, "workbook")
	if _, err := Rules([]Spec{dup, dup}); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("duplicate names: %v", err)
	}
	bad := spec999(ScopeGlobal, "workbook")
	bad.Objective = Ratio{1, 1}
	if _, err := Rules([]Spec{bad}); err == nil || !strings.Contains(err.Error(), "below 100 %") {
		t.Errorf("impossible objective: %v", err)
	}
}

// promtoolSpecs are the SLOs the promtool tests judge: an exact page boundary at 14.4×
// (with a 4× ticket beside it), and the seed preset on a 10× burn.
const promtoolSpecs = `name: exact
app: hello
sli: availability
objective: 99.9
runbook: https://runbooks.example/hello
alerting:
  tiers:
    - {severity: page, factor: 14.4, long: 1h, short: 5m}
    - {severity: ticket, factor: 4, long: 1h, short: 15m, for: 15m}
---
name: seed
app: api
sli: availability
objective: 99.9
alerting: {preset: seed}
---
name: latency
app: hello
sli: {kind: latency, threshold: 250ms}
objective: 99
scope: {per: node, nodes: {role: edge}}
`

// TestRulesPromtool checks the generated rules with promtool as an SRE would: they
// pass check rules, a burn of exactly 14.4× pages and 14.399× does not (a ticket
// instead), and a 10× burn under the seed preset tickets without paging.
func TestRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed")
	}
	specs, err := Decode("promtool.yaml", []byte(promtoolSpecs))
	if err != nil {
		t.Fatal(err)
	}
	all, err := Decode("slo.yaml", []byte(twoSLOs))
	if err != nil {
		t.Fatal(err)
	}
	all[1].App, all[1].Selector = "web", nil // rules need an app name
	for i := range all {
		all[i].App = "web" // keep them off the series the tests judge
	}
	rules, err := Rules(append(specs, all...))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rf := write("slo-rules.yaml", string(rules))
	if out, err := exec.Command(promtool, "check", "rules", rf).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s\n%s", err, out, rules)
	}
	page := func(slo, app, version string) string {
		return fmt.Sprintf(`          - exp_labels: {severity: page, slo: %s, function: %s, version: %s}
            exp_annotations:
              summary: "SLO %s: %s %s burns its error budget too fast"
              description: "availability SLI of hello against an objective of 99.9%% over 30d: the burn rate reached 14.4× over 1h and 5m."
              runbook_url: "https://runbooks.example/hello"
`, slo, app, version, slo, app, version)
	}
	ticket := func(slo, app, version, desc, runbook string) string {
		s := fmt.Sprintf(`          - exp_labels: {severity: ticket, slo: %s, function: %s, version: %s}
            exp_annotations:
              summary: "SLO %s: %s %s burns its error budget too fast"
              description: %q
`, slo, app, version, slo, app, version, desc)
		if runbook != "" {
			s += "              runbook_url: " + runbook + "\n"
		}
		return s
	}
	exactTicket := "availability SLI of hello against an objective of 99.9% over 30d: the burn rate reached 4× over 1h and 15m."
	seedTicket := "availability SLI of api against an objective of 99.9% over 30d: the burn rate reached 4× over 1h and 15m."
	var groups []string
	for i := range append(specs, all...) {
		name := append(specs, all...)[i].Name
		groups = append(groups, "  - fermion-slo-sli-"+name)
	}
	for i := range append(specs, all...) {
		groups = append(groups, "  - fermion-slo-alerts-"+append(specs, all...)[i].Name)
	}
	test := `rule_files:
  - slo-rules.yaml
evaluation_interval: 1m
group_eval_order:
` + strings.Join(groups, "\n") + `
tests:
  - interval: 1m
    input_series:
      # v1 fails exactly 1.44 % of requests (14.4× against 99.9 %), v2 1.4399 %.
      - series: 'fermion_requests_total{function="hello",version="v1",code="2xx",instance="n1"}'
        values: '0+9856x120'
      - series: 'fermion_requests_total{function="hello",version="v1",code="5xx",instance="n1"}'
        values: '0+144x120'
      - series: 'fermion_requests_total{function="hello",version="v2",code="2xx",instance="n1"}'
        values: '0+985601x120'
      - series: 'fermion_requests_total{function="hello",version="v2",code="5xx",instance="n1"}'
        values: '0+14399x120'
      # api fails 1 % (10×).
      - series: 'fermion_requests_total{function="api",version="v1",code="2xx",instance="n1"}'
        values: '0+9900x120'
      - series: 'fermion_requests_total{function="api",version="v1",code="5xx",instance="n1"}'
        values: '0+100x120'
    promql_expr_test:
      # Rates are extrapolated in float64: exactly 1.44 % arrives a hair below.
      - expr: fermion_slo:sli_error:ratio_rate1h{slo="exact",version="v1"} * 10000 < 144
        eval_time: 90m
        exp_samples:
          - labels: '{function="hello",version="v1",slo="exact"}'
            value: 143.99999999999997
    alert_rule_test:
      - eval_time: 90m
        alertname: FermionSLOBurnPage
        exp_alerts:
` + page("exact", "hello", "v1") + `
      - eval_time: 90m
        alertname: FermionSLOBurnTicket
        exp_alerts:
` + ticket("exact", "hello", "v1", exactTicket, `"https://runbooks.example/hello"`) +
		ticket("exact", "hello", "v2", exactTicket, `"https://runbooks.example/hello"`) +
		ticket("seed", "api", "v1", seedTicket, "") + `
`
	tf := write("slo-rules.test.yaml", test)
	if out, err := exec.Command(promtool, "test", "rules", tf).CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s\n--- rules\n%s\n--- tests\n%s", err, out, rules, test)
	}
}
