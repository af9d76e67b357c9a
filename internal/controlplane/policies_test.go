package controlplane_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/policy"
)

// policyFleet is a fleet whose server reports metrics to reg.
func policyFleet(t *testing.T, nodes map[string]map[string]string) (*fleet, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	p := cptest.Start(t, controlplane.Config{Metrics: reg})
	c, err := client.New(p.API, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{p: p, c: c, agents: map[string]*cptest.SimAgent{}, join: p.NodeToken(t)}
	for name, labels := range nodes {
		f.add(t, name, labels)
	}
	cptest.WaitNodes(t, p.Server, len(nodes), v1.NodeReady, 10*time.Second)
	return f, reg
}

func examplePolicy(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fermiontest.Root(t), "examples", "policies", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// admissionPolicy is a policy file with one validation, whose expression is on line 8
// (line 8 + the lines of extra, which go before validations).
func admissionPolicy(name, expr, extra string) string {
	return fmt.Sprintf(`apiVersion: fermion.dev/v1
kind: Policy
metadata:
  name: %s
spec:
  target: admission
%s  validations:
    - expression: %s
      message: not allowed
`, name, extra, expr)
}

type rawResponse struct {
	status int
	header http.Header
	body   string
}

func rawRequest(t *testing.T, method, url, token string, body any) rawResponse {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResponse{resp.StatusCode, resp.Header, string(b)}
}

func tokenID(tok string) string {
	parts := strings.Split(tok, "_")
	if len(parts) != 3 {
		return ""
	}
	return parts[1]
}

// metricValue reads a counter, or a histogram's sample count, with exactly these labels.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// TestPolicyBadInput: every kind of broken policy is refused with a clear 4xx naming
// the problem and where it is, nothing is written, and the version in force stays.
func TestPolicyBadInput(t *testing.T) {
	f, _ := policyFleet(t, nil)
	ctx := context.Background()
	good, created, err := f.c.ApplyPolicy(ctx, "require-signed", v1.PolicyApply{Source: examplePolicy(t, "require-signed"), Mode: v1.PolicyModeAudit})
	if err != nil {
		t.Fatal(err)
	}
	if !created || good.Version != 1 || good.Mode != v1.PolicyModeAudit || good.Target != "admission" || good.AppliedBy != tokenID(f.p.Token) {
		t.Fatalf("created=%v %+v", created, good)
	}
	viewer, err := f.c.CreateToken(ctx, v1.TokenRequest{Role: v1.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	deep := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	cases := []struct {
		name   string
		body   any
		token  string
		status int
		code   string
		field  string
		want   []string
	}{
		{"syntax error", v1.PolicyApply{Source: admissionPolicy("require-signed", "artifact.signed &&", ""), File: "policies/require-signed.yaml"},
			"", 400, v1.CodeBadRequest, "source", []string{"policy require-signed does not compile", "policies/require-signed.yaml:8:", "Syntax error"}},
		{"type error", v1.PolicyApply{Source: admissionPolicy("require-signed", `artifact.size == "big"`, "")},
			"", 400, v1.CodeBadRequest, "source", []string{"require-signed.yaml:8:", "no matching overload"}},
		{"over the cost budget", v1.PolicyApply{Source: admissionPolicy("require-signed", "artifact.imports.all(a, artifact.imports.all(b, a == b || a.startsWith(b)))", "")},
			"", 400, v1.CodeBadRequest, "source", []string{"require-signed.yaml:8:", "exceeds the limit of 1,000,000"}},
		{"unknown variable", v1.PolicyApply{Source: admissionPolicy("require-signed", `request.user == "root"`, "")},
			"", 400, v1.CodeBadRequest, "source", []string{"require-signed.yaml:8:", "undeclared reference to 'request'"}},
		{"unknown field", v1.PolicyApply{Source: admissionPolicy("require-signed", `artifact.signature == ""`, "")},
			"", 400, v1.CodeBadRequest, "source", []string{"require-signed.yaml:8:", "signature"}},
		{"matches nothing", v1.PolicyApply{Source: admissionPolicy("require-signed", "artifact.signed", "  matchConditions:\n    - {name: never, expression: 'false'}\n")},
			"", 400, v1.CodeBadRequest, "source", []string{"require-signed.yaml:8:", "matches nothing"}},
		{"conflicting mode", v1.PolicyApply{Source: examplePolicy(t, "require-signed"), Mode: "enforce"},
			"", 400, v1.CodeBadRequest, "mode", []string{`"enforce": want one of deny, warn, audit`}},
		{"mode in the file", v1.PolicyApply{Source: strings.Replace(examplePolicy(t, "require-signed"), "mode: deny", "mode: enforce", 1)},
			"", 400, v1.CodeBadRequest, "source", []string{"spec.mode", "use deny, warn or audit"}},
		{"another policy's name", v1.PolicyApply{Source: examplePolicy(t, "limits-ceiling")},
			"", 400, v1.CodeBadRequest, "source", []string{"metadata.name is limits-ceiling but the request is for policy require-signed"}},
		{"not YAML", v1.PolicyApply{Source: "apiVersion: [fermion\n"},
			"", 400, v1.CodeBadRequest, "source", []string{"require-signed.yaml:1:"}},
		{"empty", v1.PolicyApply{Source: "  \n"}, "", 400, v1.CodeBadRequest, "source", []string{"empty"}},
		{"huge document", v1.PolicyApply{Source: examplePolicy(t, "require-signed") + "# " + strings.Repeat("x", 300<<10) + "\n"},
			"", 400, v1.CodeBadRequest, "source", []string{"require-signed.yaml", "bytes"}},
		{"deeply nested document", v1.PolicyApply{Source: examplePolicy(t, "require-signed") + "status: " + deep + "\n"},
			"", 400, v1.CodeBadRequest, "source", []string{"require-signed.yaml", "nested deeper than 32 levels"}},
		{"body over the API limit", v1.PolicyApply{Source: strings.Repeat("x", 2<<20)}, "", 413, v1.CodeTooLarge, "", nil},
		{"unknown body field", `{"source": "x", "enforce": true}`, "", 400, v1.CodeBadRequest, "enforce", nil},
		{"viewer token", v1.PolicyApply{Source: examplePolicy(t, "require-signed")}, viewer.Secret, 403, v1.CodeForbidden, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := c.token
			if tok == "" {
				tok = f.p.Token
			}
			r := rawRequest(t, "PUT", f.p.API+"/v1/policies/require-signed", tok, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			var eb v1.ErrorBody
			if err := json.Unmarshal([]byte(r.body), &eb); err != nil || eb.Error == nil {
				t.Fatalf("not an error body: %s", r.body)
			}
			t.Logf("%d %s (%s): %s", r.status, eb.Error.Code, eb.Error.Field, eb.Error.Message)
			if eb.Error.Code != c.code || eb.Error.Field != c.field {
				t.Errorf("code %s field %q, want %s %q", eb.Error.Code, eb.Error.Field, c.code, c.field)
			}
			for _, w := range c.want {
				if !strings.Contains(eb.Error.Message, w) {
					t.Errorf("message lacks %q:\n%s", w, eb.Error.Message)
				}
			}
		})
	}
	t.Run("reserved name", func(t *testing.T) {
		r := rawRequest(t, "PUT", f.p.API+"/v1/policies/violations", f.p.Token, v1.PolicyApply{Source: "x"})
		if r.status != 400 || !strings.Contains(r.body, "reserved") {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	// Nothing was written: version 1 is still the one stored and in force.
	l, err := f.c.ListPolicies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Policies) != 1 {
		t.Fatalf("policies after bad input: %+v", l.Policies)
	}
	if p := l.Policies[0]; p.Version != 1 || p.Mode != v1.PolicyModeAudit || p.Error != "" || p.Source != good.Source {
		t.Fatalf("after bad input: %+v", p)
	}
}

// TestPolicyStaging stages require-signed from audit through warn to deny against an
// unsigned artifact: recorded, then warned, then refused; every decision is an event
// and counted.
func TestPolicyStaging(t *testing.T) {
	f, reg := policyFleet(t, map[string]map[string]string{"edge-1": {"region": "eu-west"}})
	ctx := context.Background()
	admin := tokenID(f.p.Token)
	image := f.p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
	spec := v1.DeploymentSpec{Image: image, Nodes: 1}
	src := examplePolicy(t, "require-signed")
	apply := func(mode string, wantVersion int) {
		t.Helper()
		p, _, err := f.c.ApplyPolicy(ctx, "require-signed", v1.PolicyApply{Source: src, Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		if p.Version != wantVersion || p.Mode != mode {
			t.Fatalf("apply %s: %+v, want version %d", mode, p, wantVersion)
		}
	}

	// Audit: allowed, recorded.
	apply(v1.PolicyModeAudit, 1)
	d, _, err := f.c.PutDeployment(ctx, "hello", spec, client.CreateOnly())
	if err != nil {
		t.Fatalf("audit mode refused the deploy: %v", err)
	}
	if len(d.Warnings) != 0 {
		t.Errorf("audit mode warned: %v", d.Warnings)
	}
	f.waitConverged(t, "hello", 10*time.Second)

	// Warn: allowed, the caller is told (body and Warning header).
	apply(v1.PolicyModeWarn, 2)
	r := rawRequest(t, "PUT", f.p.API+"/v1/deployments/hello", f.p.Token, spec)
	if r.status != http.StatusOK {
		t.Fatalf("warn mode: %d %s", r.status, r.body)
	}
	var wd v1.Deployment
	json.Unmarshal([]byte(r.body), &wd)
	wantMsg := "policy require-signed: artifact " + d.Version.Digest + " has no signature by a trusted key"
	if len(wd.Warnings) != 1 || wd.Warnings[0] != wantMsg+" (mode warn)" {
		t.Errorf("warnings %q, want %q", wd.Warnings, wantMsg+" (mode warn)")
	}
	if h := r.header.Values("Warning"); len(h) != 1 || !strings.HasPrefix(h[0], `299 fermion "policy require-signed: artifact sha256:`) {
		t.Errorf("Warning header %q", h)
	}

	// Deny: refused with policy_denied, nothing written.
	apply(v1.PolicyModeDeny, 3)
	image2 := f.p.PushExample(t, "hello", "1.0.1", artifact.Meta{Revision: "v2"})
	_, _, err = f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image2, Nodes: 1}, client.Unconditional())
	var e *v1.Error
	if !errors.As(err, &e) || e.Code != v1.CodePolicyDenied {
		t.Fatalf("deny mode: want policy_denied, got %v", err)
	}
	if !strings.HasPrefix(e.Message, "policy require-signed: artifact sha256:") || !strings.HasSuffix(e.Message, "has no signature by a trusted key (mode deny)") {
		t.Errorf("denial message %q", e.Message)
	}
	if cur, err := f.c.GetDeployment(ctx, "hello"); err != nil || cur.Generation != d.Generation || cur.Version.Digest != d.Version.Digest {
		t.Fatalf("a denied deploy changed the deployment: %+v %v", cur, err)
	}

	// The same file in the same mode again is no new version.
	if p, created, err := f.c.ApplyPolicy(ctx, "require-signed", v1.PolicyApply{Source: src, Mode: v1.PolicyModeDeny}); err != nil || created || p.Version != 3 {
		t.Fatalf("re-apply: %+v created=%v %v", p, created, err)
	}

	// Every decision is an event with the policy, version, mode and subject.
	vs, err := f.c.PolicyViolations(ctx, client.ViolationFilter{Policy: "require-signed", Since: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range vs.Events {
		v := ev.Violation
		if v == nil || v.Subject != admin || ev.Deployment != "hello" || v.Target != "admission" || !strings.HasPrefix(ev.Message, "policy require-signed: artifact sha256:") {
			t.Errorf("violation event %+v %+v", ev, v)
			continue
		}
		got = append(got, fmt.Sprintf("%s/%d/%s", ev.Type, v.Version, v.Mode))
	}
	want := []string{"policy_audited/1/audit", "policy_warned/2/warn", "policy_denied/3/deny"}
	if !slices.Equal(got, want) {
		t.Errorf("violations %v, want %v", got, want)
	}
	if vs, err := f.c.PolicyViolations(ctx, client.ViolationFilter{Policy: "no-such-policy"}); err != nil || len(vs.Events) != 0 {
		t.Errorf("another policy's violations: %v %v", vs, err)
	}

	// And counted.
	for _, mode := range []string{"audit", "warn", "deny"} {
		if n := metricValue(t, reg, "fermion_policy_evaluations_total", map[string]string{"policy": "require-signed", "mode": mode, "result": "violation"}); n != 1 {
			t.Errorf("evaluations{mode=%s,result=violation} = %v, want 1", mode, n)
		}
		if n := metricValue(t, reg, "fermion_policy_violations_total", map[string]string{"policy": "require-signed", "mode": mode}); n != 1 {
			t.Errorf("violations{mode=%s} = %v, want 1", mode, n)
		}
	}
	if n := metricValue(t, reg, "fermion_policy_evaluation_duration_seconds", map[string]string{"policy": "require-signed"}); n != 3 {
		t.Errorf("evaluation latency samples = %v, want 3", n)
	}

	// The manifest's labels and SLOs reach admission: hello is tier=edge and declares
	// an [[slo]], so edge-slo-required does not object (its cases test the denial);
	// require-signed, still in mode deny, does.
	if _, _, err := f.c.ApplyPolicy(ctx, "edge-slo-required", v1.PolicyApply{Source: examplePolicy(t, "edge-slo-required")}); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image2, Nodes: 1}, client.Unconditional())
	if !errors.As(err, &e) || e.Code != v1.CodePolicyDenied || strings.Contains(e.Message, "edge-slo-required") || !strings.Contains(e.Message, "require-signed") {
		t.Fatalf("edge-slo-required objected to hello, which declares an SLO, or require-signed did not: %v", err)
	}

	// Deleted, the policies stop applying; re-applied, the numbering goes on.
	for _, name := range []string{"require-signed", "edge-slo-required"} {
		if err := f.c.DeletePolicy(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.c.GetPolicy(ctx, "require-signed"); !client.IsCode(err, v1.CodeNotFound) {
		t.Fatalf("deleted policy: %v", err)
	}
	if err := f.c.DeletePolicy(ctx, "require-signed"); !client.IsCode(err, v1.CodeNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image2, Nodes: 1}, client.Unconditional()); err != nil {
		t.Fatalf("deploy after the policies were deleted: %v", err)
	}
	if p, created, err := f.c.ApplyPolicy(ctx, "require-signed", v1.PolicyApply{Source: src, Mode: v1.PolicyModeAudit}); err != nil || !created || p.Version != 4 {
		t.Fatalf("re-create: %+v created=%v %v", p, created, err)
	}
}

// TestPlacementPolicy: a data-residency policy in audit reports what it would exclude;
// in deny it excludes the nodes, at deploy time and in the controllers, and an
// unplaceable deployment's explanation names it.
func TestPlacementPolicy(t *testing.T) {
	f, _ := policyFleet(t, map[string]map[string]string{
		"edge-1": {"region": "eu-west"},
		"edge-2": {"region": "us-east"},
		"edge-3": {"region": "us-west"},
	})
	ctx := context.Background()
	// hello is labelled tier=edge in its fermion.toml.
	src := `apiVersion: fermion.dev/v1
kind: Policy
metadata:
  name: edge-residency
spec:
  target: placement
  matchConditions:
    - name: edge
      expression: app.labels.?tier.orValue("") == "edge"
  constraints:
    - name: eu-region
      expression: node.labels.?region.orValue("") in ["eu-west", "eu-central"]
      message: node region not in EU list
`
	if _, _, err := f.c.ApplyPolicy(ctx, "edge-residency", v1.PolicyApply{Source: src, Mode: v1.PolicyModeAudit}); err != nil {
		t.Fatal(err)
	}
	image := f.p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
	d, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Nodes: 3}, client.CreateOnly())
	if err != nil {
		t.Fatalf("audit mode constrained placement: %v", err)
	}
	if d.Version.Labels["tier"] != "edge" {
		t.Errorf("version labels %v", d.Version.Labels)
	}
	if st := f.waitConverged(t, "hello", 10*time.Second); len(placed(st)) != 3 {
		t.Fatalf("placed on %v", placed(st))
	}
	vs, err := f.c.PolicyViolations(ctx, client.ViolationFilter{Policy: "edge-residency"})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs.Events) != 1 || vs.Events[0].Type != v1.EventPolicyAudited || vs.Events[0].Violation.Target != "placement" ||
		vs.Events[0].Message != "policy edge-residency: would exclude 2 of 3 nodes (node region not in EU list) (mode audit)" {
		t.Fatalf("audit events %+v", vs.Events)
	}

	// Deny: the controllers take it off the US nodes and say why.
	if _, _, err := f.c.ApplyPolicy(ctx, "edge-residency", v1.PolicyApply{Source: src, Mode: v1.PolicyModeDeny}); err != nil {
		t.Fatal(err)
	}
	want := "2 policy edge-residency: node region not in EU list"
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		st, err := f.c.DeploymentStatus(ctx, "hello")
		if err != nil {
			return err
		}
		if got := placed(st); !slices.Equal(got, []string{"edge-1"}) || !strings.Contains(st.Deployment.Placement.Message, want) {
			return fmt.Errorf("placed on %v, placement %q", got, st.Deployment.Placement.Message)
		}
		return nil
	})
	// At deploy time: refused, the explanation counts what the policy excluded.
	_, _, err = f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Nodes: 2}, client.Unconditional())
	var e *v1.Error
	if !errors.As(err, &e) || e.Code != v1.CodeUnplaceable || !strings.Contains(e.Message, want) {
		t.Fatalf("want unplaceable naming the policy, got %v", err)
	}
	vs, _ = f.c.PolicyViolations(ctx, client.ViolationFilter{Policy: "edge-residency"})
	if n := len(vs.Events); n != 2 || vs.Events[1].Type != v1.EventPolicyDenied || !strings.Contains(vs.Events[1].Message, "excludes 2 of 3 nodes") {
		t.Errorf("events after the refused deploy: %+v", vs.Events)
	}
	if _, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Nodes: 1}, client.Unconditional()); err != nil {
		t.Fatal(err)
	}
	if st := f.waitConverged(t, "hello", 10*time.Second); !slices.Equal(placed(st), []string{"edge-1"}) {
		t.Fatalf("placed on %v", placed(st))
	}
}

// TestRuntimePoliciesReachAgents: the runtime policies in force go to every agent with
// its heartbeat, in the mode applied, ready for the agent's own check.
func TestRuntimePoliciesReachAgents(t *testing.T) {
	f, _ := policyFleet(t, map[string]map[string]string{"edge-1": {"zone": "a"}})
	ctx := context.Background()
	a := f.agents["edge-1"]
	if rp := a.RuntimePolicies(); len(rp) != 0 {
		t.Fatalf("runtime policies before any: %+v", rp)
	}
	src := examplePolicy(t, "node-capabilities")
	if _, _, err := f.c.ApplyPolicy(ctx, "node-capabilities", v1.PolicyApply{Source: src, Mode: v1.PolicyModeWarn}); err != nil {
		t.Fatal(err)
	}
	// Admission policies are not sent.
	if _, _, err := f.c.ApplyPolicy(ctx, "limits-ceiling", v1.PolicyApply{Source: examplePolicy(t, "limits-ceiling")}); err != nil {
		t.Fatal(err)
	}
	var rp []v1.RuntimePolicy
	fermiontest.WaitFor(t, 5*time.Second, func() error {
		rp = a.RuntimePolicies()
		if len(rp) != 1 || rp[0].Name != "node-capabilities" || rp[0].Version != 1 || rp[0].Mode != v1.PolicyModeWarn || rp[0].Source != src {
			return fmt.Errorf("runtime policies %+v", rp)
		}
		return nil
	})
	p, err := policy.ParseApplied(rp[0].Name+".yaml", []byte(rp[0].Source), policy.Mode(rp[0].Mode), rp[0].Version)
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.NewSet(policy.Options{}, p)
	if err != nil {
		t.Fatal(err)
	}
	d := set.RuntimeCheck(policy.RuntimeInput{Artifact: policy.RuntimeArtifact{Imports: []string{"wasi_snapshot_preview1.fd_write"}},
		Node: policy.RuntimeNode{Name: "edge-1", Allow: policy.NodeAllow{ImportModules: []string{"fermion"}}}})
	if !d.Allowed || len(d.Warnings) != 1 || !strings.Contains(d.Warnings[0].String(), "does not allow: wasi_snapshot_preview1.fd_write (mode warn)") {
		t.Fatalf("runtime check %s", d)
	}
	if err := f.c.DeletePolicy(ctx, "node-capabilities"); err != nil {
		t.Fatal(err)
	}
	fermiontest.WaitFor(t, 5*time.Second, func() error {
		if rp := a.RuntimePolicies(); len(rp) != 0 {
			return fmt.Errorf("runtime policies after delete %+v", rp)
		}
		return nil
	})
}

// TestConcurrentPolicyApplies hammers one policy with applies in alternating modes:
// every apply succeeds (compare-and-swap retries), each change is its own version,
// and what agents are sent ends at the stored version.
func TestConcurrentPolicyApplies(t *testing.T) {
	f, _ := policyFleet(t, map[string]map[string]string{"edge-1": {"zone": "a"}})
	ctx := context.Background()
	src := examplePolicy(t, "node-capabilities")
	const n = 12
	versions := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mode := []string{v1.PolicyModeAudit, v1.PolicyModeWarn, v1.PolicyModeDeny}[i%3]
			var p *v1.Policy
			p, _, errs[i] = f.c.ApplyPolicy(ctx, "node-capabilities", v1.PolicyApply{Source: src, Mode: mode})
			if p != nil {
				versions[i] = p.Version
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	cur, err := f.c.GetPolicy(ctx, "node-capabilities")
	if err != nil {
		t.Fatal(err)
	}
	if cur.Version < 3 || cur.Version > n || slices.Max(versions) != cur.Version || cur.Error != "" {
		t.Fatalf("stored %+v after applies that returned versions %v", cur, versions)
	}
	fermiontest.WaitFor(t, 5*time.Second, func() error {
		rp := f.agents["edge-1"].RuntimePolicies()
		if len(rp) != 1 || rp[0].Version != cur.Version || rp[0].Mode != cur.Mode {
			return fmt.Errorf("agent has %+v, stored version %d mode %s", rp, cur.Version, cur.Mode)
		}
		return nil
	})
}

// TestStoredPolicyThatDoesNotCompile: a version in the bucket that this replica cannot
// compile (written around the API, say by a newer replica) leaves the previous version
// in force, and reads say so.
func TestStoredPolicyThatDoesNotCompile(t *testing.T) {
	f, _ := policyFleet(t, map[string]map[string]string{"edge-1": {"zone": "a"}})
	ctx := context.Background()
	src := examplePolicy(t, "require-signed")
	if _, _, err := f.c.ApplyPolicy(ctx, "require-signed", v1.PolicyApply{Source: src}); err != nil {
		t.Fatal(err)
	}
	image := f.p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
	spec := v1.DeploymentSpec{Image: image, Nodes: 1}
	if _, _, err := f.c.PutDeployment(ctx, "hello", spec, client.Unconditional()); !client.IsCode(err, v1.CodePolicyDenied) {
		t.Fatalf("version 1 in force: %v", err)
	}
	kv, err := f.p.Engine().JetStream().KeyValue(ctx, "fermion_policies")
	if err != nil {
		t.Fatal(err)
	}
	bad, _ := json.Marshal(v1.Policy{Name: "require-signed", Version: 2, Mode: v1.PolicyModeAudit, Target: "admission",
		Source: strings.Replace(src, "artifact.signed &&", "artifact.signed_by_anyone &&", 1), Applied: time.Now()})
	if _, err := kv.Put(ctx, "require-signed", bad); err != nil {
		t.Fatal(err)
	}
	fermiontest.WaitFor(t, 5*time.Second, func() error {
		p, err := f.c.GetPolicy(ctx, "require-signed")
		if err != nil {
			return err
		}
		if p.Version != 2 || !strings.Contains(p.Error, "undefined field 'signed_by_anyone'") {
			return fmt.Errorf("policy %d, error %q", p.Version, p.Error)
		}
		return nil
	})
	if _, _, err := f.c.PutDeployment(ctx, "hello", spec, client.Unconditional()); !client.IsCode(err, v1.CodePolicyDenied) {
		t.Fatalf("version 1 no longer in force: %v", err)
	}
	// A good version through the API replaces both.
	if p, _, err := f.c.ApplyPolicy(ctx, "require-signed", v1.PolicyApply{Source: src, Mode: v1.PolicyModeAudit}); err != nil || p.Version != 3 || p.Error != "" {
		t.Fatalf("apply version 3: %+v %v", p, err)
	}
	if _, _, err := f.c.PutDeployment(ctx, "hello", spec, client.Unconditional()); err != nil {
		t.Fatalf("version 3 (audit) in force: %v", err)
	}
}
