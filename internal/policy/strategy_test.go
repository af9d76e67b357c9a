package policy

import "testing"

// A policy can require canaries for apps that declare SLOs: the deployment's
// strategy is part of admission's input.
func TestAdmitRequiresCanaryForSLOApps(t *testing.T) {
	p := mustParse(t, `apiVersion: fermion.dev/v1
kind: Policy
metadata: {name: canary-for-slo-apps}
spec:
  target: admission
  validations:
    - expression: '!has(manifest.slo) || (deployment.strategy.kind == "canary" && deployment.strategy.analysis)'
      messageExpression: '"deployment " + deployment.name + " has SLOs: roll it out with an analysed canary, not " + deployment.strategy.kind'
`)
	s, err := NewSet(Options{}, p)
	if err != nil {
		t.Fatal(err)
	}
	withSLO := Manifest{SLO: map[string]any{"availability": map[string]any{"objective": 99.9}}}
	for _, tc := range []struct {
		name    string
		in      AdmissionInput
		allowed bool
	}{
		{"no SLO, all at once", AdmissionInput{Deployment: Deployment{Name: "web", Strategy: Strategy{Kind: "all-at-once", Steps: []string{}}}}, true},
		{"SLO, all at once", AdmissionInput{Manifest: withSLO, Deployment: Deployment{Name: "web", Strategy: Strategy{Kind: "all-at-once", Steps: []string{}}}}, false},
		{"SLO, canary", AdmissionInput{Manifest: withSLO, Deployment: Deployment{Name: "web", Strategy: Strategy{Kind: "canary", Steps: []string{"1node", "10%"}, IntervalSeconds: 60, Analysis: true}}}, true},
		{"SLO, canary of manual gates only", AdmissionInput{Manifest: withSLO, Deployment: Deployment{Name: "web", Strategy: Strategy{Kind: "canary", Steps: []string{"10%", "manual"}}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := s.Admit(tc.in)
			if d.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v: %s", d.Allowed, tc.allowed, d)
			}
			if !tc.allowed && d.Denials[0].Message != "deployment web has SLOs: roll it out with an analysed canary, not "+tc.in.Deployment.Strategy.Kind {
				t.Errorf("message %q", d.Denials[0].Message)
			}
		})
	}
}
