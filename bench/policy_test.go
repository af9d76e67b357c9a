package bench

// Policy evaluation against the DESIGN.md budget of ≤ 10 µs per policy decision (issue
// 5: ≤ 10 µs p50 per policy, ≤ 100 µs for a set of 20), and CEL placement constraints
// over 1,000 nodes and their effect on scheduler throughput. Reproduce with
//
//	go test ./bench/ -run '^$' -bench 'Policy|Place1000Nodes$' -benchtime 2s -count 5
//
// On this project's 2-core machine (Oxide Virtual Turin-like, go1.26.8), shared with other
// jobs at load 1.5–3, the medians of five runs in one invocation were:
//
//	BenchmarkPolicyAdmit20/allowed      23.0 µs/set, 1.15 µs/policy; p50 17.4 µs/set, p99 168 µs/set
//	BenchmarkPolicyAdmit20/denied       31.3 µs/set, 1.56 µs/policy (20 policies, 6 objecting)
//	BenchmarkPolicyAdmitEach            p50 0.66 µs/policy, p99 9.7 µs/policy (each policy alone)
//	BenchmarkPolicyAdmitExamples         6.9 µs for the 5 example admission policies
//	BenchmarkPolicyAdmitBaselineGo      0.042 µs for the same 5 written in Go (CEL: 164×)
//
//	BenchmarkPolicyPlacementFilter1000            95.8 µs per 1,000 nodes × 3 constraints, 32 ns/match
//	BenchmarkPolicyPlacementFilter1000Unmemoized  2,990 µs, 997 ns/match (every match a CEL evaluation)
//	BenchmarkPolicyPlacementFilter1000BaselineGo  48.6 µs, 16 ns/match (the same 3 rules in Go)
//
//	BenchmarkPlace1000Nodes                    23,000 placements/s (baseline: Go label selector)
//	BenchmarkPlace1000NodesPolicy               4,000 placements/s (3 CEL constraints, nodes converted per call)
//	BenchmarkPlace1000NodesPolicyCachedNodes    7,760 placements/s (3 CEL constraints, nodes converted once)
//
// So the set of 20 is 4.3× under its 100 µs budget at p50 (the p99 is GC and the
// neighbours' load: 151 allocations per decision) and one policy 15× under 10 µs. In
// placement, remembering each constraint's result per distinct (labels, capacity)
// combination makes CEL constraints 31× cheaper than evaluating them per node, 2× the
// cost of Go; what remains between 23,000 and 7,760 placements/s is that cost plus
// Set.Placement per call, and converting 1,000 nodes per call halves it again — the
// control plane should keep a NodeInput per node revision to stay above 5,000/s.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/policy"
	"fermion.dev/fermion/internal/scheduler"
)

// extraAdmissionPolicies are 15 realistic admission rules which, with the five example
// admission policies, make the 20 of the benchmark.
var extraAdmissionPolicies = map[string]string{
	"caller-role":       `caller.role in ["deployer", "admin"]`,
	"max-instances":     `manifest.scaling.max_instances <= 200`,
	"min-warm-ceiling":  `manifest.scaling.min_warm <= 10`,
	"app-name-format":   `manifest.app.name.matches("^[a-z][a-z0-9-]{1,40}$")`,
	"semver":            `manifest.app.version.matches("^[0-9]+\\.[0-9]+\\.[0-9]+$")`,
	"owner-label":       `"team" in manifest.app.labels`,
	"source-annotation": `artifact.annotations[?"org.opencontainers.image.source"].orValue("").startsWith("https://github.com/acme/")`,
	"size-ceiling":      `artifact.size <= 50 * 1024 * 1024`,
	"no-env-secrets":    `manifest.capabilities.env.all(k, !k.endsWith("_SECRET"))`,
	"no-files":          `size(manifest.capabilities.files) == 0`,
	"wasi-imports":      `artifact.imports.all(i, i.startsWith("wasi_snapshot_preview1.") || i.startsWith("fermion."))`,
	"body-limit":        `manifest.limits.max_request_body <= 10 * 1024 * 1024`,
	"concurrency":       `manifest.limits.max_concurrency >= 1 && manifest.limits.max_concurrency <= 1000`,
	"digest-format":     `artifact.digest.startsWith("sha256:") && size(artifact.digest) == 71`,
	"reactor-on-edge":   `manifest.app.labels.?tier.orValue("") != "edge" || artifact.abi == "reactor"`,
}

func parsePolicy(b *testing.B, name string, data []byte) *policy.Policy {
	b.Helper()
	p, err := policy.ParseFile(name, data)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// admissionPolicies returns the 20 admission policies: the examples and the extras.
func admissionPolicies(b *testing.B) []*policy.Policy {
	b.Helper()
	files, _ := filepath.Glob("../examples/policies/*.yaml")
	var ps []*policy.Policy
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		if p := parsePolicy(b, f, data); p.Spec.Target == policy.TargetAdmission {
			ps = append(ps, p)
		}
	}
	for name, expr := range extraAdmissionPolicies {
		src := fmt.Sprintf("apiVersion: fermion.dev/v1\nkind: Policy\nmetadata: {name: %s}\nspec:\n  target: admission\n  validations:\n    - expression: %q\n      message: %s\n",
			name, expr, name+" violated")
		ps = append(ps, parsePolicy(b, name+".yaml", []byte(src)))
	}
	if len(ps) != 20 {
		b.Fatalf("%d admission policies, want 20", len(ps))
	}
	return ps
}

// compliantDeployment passes all 20 policies: the common case at deploy time.
func compliantDeployment() policy.AdmissionInput {
	return policy.AdmissionInput{
		Artifact: policy.Artifact{
			Digest:     "sha256:" + strings.Repeat("5f", 32),
			Size:       3 << 20,
			Signed:     true,
			Signer:     "platform-ci",
			Registry:   "registry.fermion.internal",
			Repository: "shop/checkout",
			Imports: []string{"wasi_snapshot_preview1.fd_write", "wasi_snapshot_preview1.clock_time_get",
				"wasi_snapshot_preview1.random_get", "wasi_snapshot_preview1.proc_exit", "fermion.http_send"},
			ABI:         "reactor",
			Annotations: map[string]string{"org.opencontainers.image.source": "https://github.com/acme/checkout"},
		},
		Manifest: policy.Manifest{
			App:          policy.App{Name: "checkout", Version: "1.4.0", Labels: map[string]string{"tier": "edge", "team": "shop"}},
			Limits:       policy.Limits{Memory: 64 << 20, TimeoutMS: 5000, MaxRequestBody: 1 << 20, MaxResponseBody: 4 << 20, MaxConcurrency: 64},
			Capabilities: policy.Capabilities{Env: []string{"REGION"}, AllowedOutboundHosts: []string{"api.stripe.com"}},
			Scaling:      policy.Scaling{MinWarm: 2, MaxInstances: 50},
			SLO:          map[string]any{"availability": 0.999, "latency_p99_ms": 200},
		},
		Caller: policy.Caller{Subject: "ci@acme", Role: "deployer"},
	}
}

// rejectedDeployment violates most policies, so messages are built too.
func rejectedDeployment() policy.AdmissionInput {
	in := compliantDeployment()
	in.Artifact.Signed, in.Artifact.Registry = false, "docker.io"
	in.Manifest.Limits.Memory = 512 << 20
	in.Manifest.Capabilities.AllowedOutboundHosts = append(in.Manifest.Capabilities.AllowedOutboundHosts, "evil.example.com")
	in.Manifest.SLO = nil
	in.Caller.Role = "dev"
	return in
}

// percentiles reports p50 and p99 of samples (ns) under the given unit suffix.
func percentiles(b *testing.B, samples []time.Duration, unit string) {
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds()), "p50-ns/"+unit)
	b.ReportMetric(float64(samples[len(samples)*99/100].Nanoseconds()), "p99-ns/"+unit)
}

// BenchmarkPolicyAdmit20 is one admission decision with 20 policies loaded. Budget:
// ≤ 100 µs per set, and ns/policy (ns/op ÷ 20) ≤ 10 µs.
func BenchmarkPolicyAdmit20(b *testing.B) {
	set, err := policy.NewSet(policy.Options{}, admissionPolicies(b)...)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		in      policy.AdmissionInput
		allowed bool
	}{
		{"allowed", compliantDeployment(), true},
		{"denied", rejectedDeployment(), false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			if d := set.Admit(tc.in); d.Allowed != tc.allowed {
				b.Fatalf("decision %v", d)
			}
			b.ReportAllocs()
			samples := make([]time.Duration, 0, 1<<16)
			reportCPU(b, func() {
				start := time.Now()
				set.Admit(tc.in)
				if len(samples) < cap(samples) {
					samples = append(samples, time.Since(start))
				}
			})
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(set.Len()), "ns/policy")
			percentiles(b, samples, "set")
		})
	}
}

// BenchmarkPolicyAdmitEach times each of the 20 policies alone, round robin, for the
// p50 per policy.
func BenchmarkPolicyAdmitEach(b *testing.B) {
	var sets []*policy.Set
	for _, p := range admissionPolicies(b) {
		s, err := policy.NewSet(policy.Options{}, p)
		if err != nil {
			b.Fatal(err)
		}
		sets = append(sets, s)
	}
	in := compliantDeployment()
	b.ReportAllocs()
	samples := make([]time.Duration, 0, 1<<16)
	i := 0
	reportCPU(b, func() {
		s := sets[i%len(sets)]
		i++
		start := time.Now()
		s.Admit(in)
		if len(samples) < cap(samples) {
			samples = append(samples, time.Since(start))
		}
	})
	percentiles(b, samples, "policy")
}

// BenchmarkPolicyAdmitBaselineGo is the five example admission policies written as Go,
// the floor that BenchmarkPolicyAdmitExamples is compared with.
func BenchmarkPolicyAdmitBaselineGo(b *testing.B) {
	in := compliantDeployment()
	trusted := []string{"release-2025", "platform-ci"}
	hosts := []string{"api.stripe.com", "hooks.slack.com", "*.svc.acme.internal"}
	check := func(in *policy.AdmissionInput) []string {
		var denials []string
		if !in.Artifact.Signed || !slices.Contains(trusted, in.Artifact.Signer) {
			denials = append(denials, "artifact "+in.Artifact.Digest+" has no signature by a trusted key")
		}
		if !(in.Artifact.Registry == "registry.fermion.internal" || in.Artifact.Registry == "ghcr.io" && strings.HasPrefix(in.Artifact.Repository, "acme/")) {
			denials = append(denials, "registry not allowed")
		}
		if in.Manifest.Limits.Memory > 256<<20 || in.Manifest.Limits.TimeoutMS > 30000 {
			denials = append(denials, "limits")
		}
		for _, h := range in.Manifest.Capabilities.AllowedOutboundHosts {
			if !slices.Contains(hosts, h) {
				denials = append(denials, "outbound "+h)
			}
		}
		if in.Manifest.App.Labels["tier"] == "edge" && len(in.Manifest.SLO) == 0 {
			denials = append(denials, "slo")
		}
		return denials
	}
	if d := check(&in); len(d) != 0 {
		b.Fatal(d)
	}
	b.ReportAllocs()
	reportCPU(b, func() { check(&in) })
}

// BenchmarkPolicyAdmitExamples is the five example admission policies in CEL.
func BenchmarkPolicyAdmitExamples(b *testing.B) {
	var ps []*policy.Policy
	for _, p := range admissionPolicies(b) {
		if _, extra := extraAdmissionPolicies[p.Name()]; !extra {
			ps = append(ps, p)
		}
	}
	set, err := policy.NewSet(policy.Options{}, ps...)
	if err != nil {
		b.Fatal(err)
	}
	in := compliantDeployment()
	if d := set.Admit(in); !d.Allowed || set.Len() != 5 {
		b.Fatal(d)
	}
	b.ReportAllocs()
	reportCPU(b, func() { set.Admit(in) })
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(set.Len()), "ns/policy")
}

// placementPolicies are three CEL constraints over the simulated fleet's labels and
// capacity, in two policies: data residency for pii apps, and edge nodes with room.
const placementPolicies = `apiVersion: fermion.dev/v1
kind: Policy
metadata: {name: data-residency}
spec:
  target: placement
  matchConditions: [{name: pii, expression: 'app.labels.?data_class.orValue("") == "pii"'}]
  constraints:
    - name: eu-region
      expression: node.labels.?region.orValue("") in ["eu", "eu-west", "eu-central"]
      message: node region not in EU list
---
apiVersion: fermion.dev/v1
kind: Policy
metadata: {name: edge-nodes}
spec:
  target: placement
  constraints:
    - name: edge-tier
      expression: node.labels.?tier.orValue("") == "edge"
      message: not an edge node
    - name: room
      expression: node.capacity.memory >= 2 * 1024 * 1024 * 1024 && node.capacity.instances >= 64
      message: node too small
`

func placementSet(b *testing.B) *policy.Set {
	b.Helper()
	var ps []*policy.Policy
	for i, doc := range strings.Split(placementPolicies, "---\n") {
		ps = append(ps, parsePolicy(b, fmt.Sprintf("placement-%d.yaml", i), []byte(doc)))
	}
	set, err := policy.NewSet(policy.Options{}, ps...)
	if err != nil {
		b.Fatal(err)
	}
	return set
}

var piiApp = policy.AppInput{Name: "patients", Labels: map[string]string{"data_class": "pii"}}

func nodeInputs(nodes []*scheduler.Node) []policy.NodeInput {
	out := make([]policy.NodeInput, len(nodes))
	for i, n := range nodes {
		out[i] = policy.NodeInput{Name: n.Name, Labels: n.Labels, Capacity: policy.Capacity{
			Memory: n.Capacity.MemoryBytes, MilliCPU: n.Capacity.MilliCPU, Instances: int64(n.Capacity.Instances)}}
	}
	return out
}

// BenchmarkPolicyPlacementFilter1000 evaluates the 3 CEL constraints on each of 1,000
// nodes (3,000 matches, no short-circuit), with a new Set.Placement per pass as the
// scheduler gets per placement. The constraints read labels and capacity only, so each
// is evaluated once per distinct combination and remembered for the other nodes.
func BenchmarkPolicyPlacementFilter1000(b *testing.B) {
	benchFilter(b, placementSet(b))
}

// BenchmarkPolicyPlacementFilter1000Unmemoized is the same with every constraint also
// reading node.name, which defeats the memo: 3,000 CEL evaluations per pass.
func BenchmarkPolicyPlacementFilter1000Unmemoized(b *testing.B) {
	src := strings.ReplaceAll(placementPolicies, "expression: node.", "expression: node.name != \"\" && node.")
	var ps []*policy.Policy
	for i, doc := range strings.Split(src, "---\n") {
		ps = append(ps, parsePolicy(b, fmt.Sprintf("placement-%d.yaml", i), []byte(doc)))
	}
	set, err := policy.NewSet(policy.Options{}, ps...)
	if err != nil {
		b.Fatal(err)
	}
	benchFilter(b, set)
}

func benchFilter(b *testing.B, set *policy.Set) {
	nodes := nodeInputs(simulatedNodes(1000))
	if cs, _ := set.Placement(piiApp); len(cs) != 3 {
		b.Fatalf("%d constraints", len(cs))
	}
	b.ReportAllocs()
	reportCPU(b, func() {
		cs, _ := set.Placement(piiApp)
		for i := range nodes {
			for _, c := range cs {
				c.Match(&nodes[i])
			}
		}
	})
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/3000, "ns/match")
}

// BenchmarkPolicyPlacementFilter1000BaselineGo is the same 3 constraints written in
// Go over the same nodes.
func BenchmarkPolicyPlacementFilter1000BaselineGo(b *testing.B) {
	nodes := nodeInputs(simulatedNodes(1000))
	eu := []string{"eu", "eu-west", "eu-central"}
	match := []func(n *policy.NodeInput) bool{
		func(n *policy.NodeInput) bool { return slices.Contains(eu, n.Labels["region"]) },
		func(n *policy.NodeInput) bool { return n.Labels["tier"] == "edge" },
		func(n *policy.NodeInput) bool { return n.Capacity.Memory >= 2<<30 && n.Capacity.Instances >= 64 },
	}
	b.ReportAllocs()
	ok := 0
	reportCPU(b, func() {
		for i := range nodes {
			for _, m := range match {
				if m(&nodes[i]) {
					ok++
				}
			}
		}
	})
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/3000, "ns/match")
}

// policyConstraint adapts a policy.NodeConstraint to the scheduler, as the package
// documentation of internal/policy describes: nodes are converted once per Place call.
type policyConstraint struct {
	c     policy.NodeConstraint
	nodes map[*scheduler.Node]*policy.NodeInput
}

func (a policyConstraint) Name() string { return a.c.Name() }

func (a policyConstraint) Match(n *scheduler.Node) (bool, string) { return a.c.Match(a.nodes[n]) }

// BenchmarkPlace1000NodesPolicy is BenchmarkPlace1000Nodes (the baseline, run in the
// same invocation) with its Go label selector (region=eu, tier=edge) replaced by the 3
// CEL constraints (region in the EU list, tier edge, room), including the per-call
// conversion of the nodes and Set.Placement.
func BenchmarkPlace1000NodesPolicy(b *testing.B) {
	set := placementSet(b)
	nodes := simulatedNodes(1000)
	req := placeRequest()
	b.ReportAllocs()
	seed := uint64(0)
	reportCPU(b, func() {
		seed++
		req.Seed = seed
		inputs := nodeInputs(nodes)
		byNode := make(map[*scheduler.Node]*policy.NodeInput, len(nodes))
		for i, n := range nodes {
			byNode[n] = &inputs[i]
		}
		cs, _ := set.Placement(piiApp)
		r := req
		r.Constraints = nil // the CEL constraints replace the baseline's region and tier selector
		for _, c := range cs {
			r.Constraints = append(r.Constraints, policyConstraint{c: c, nodes: byNode})
		}
		res, err := scheduler.Place(nodes, r)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Placements) != 3 {
			b.Fatalf("placed %d", len(res.Placements))
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "placements/s")
}

// BenchmarkPlace1000NodesPolicyCachedNodes is BenchmarkPlace1000NodesPolicy with the
// nodes converted once, as a control plane that keeps a NodeInput per node revision
// would: what the CEL constraints themselves cost the scheduler.
func BenchmarkPlace1000NodesPolicyCachedNodes(b *testing.B) {
	set := placementSet(b)
	nodes := simulatedNodes(1000)
	inputs := nodeInputs(nodes)
	byNode := make(map[*scheduler.Node]*policy.NodeInput, len(nodes))
	for i, n := range nodes {
		byNode[n] = &inputs[i]
	}
	req := placeRequest()
	b.ReportAllocs()
	seed := uint64(0)
	reportCPU(b, func() {
		seed++
		req.Seed = seed
		cs, _ := set.Placement(piiApp)
		r := req
		r.Constraints = nil
		for _, c := range cs {
			r.Constraints = append(r.Constraints, policyConstraint{c: c, nodes: byNode})
		}
		res, err := scheduler.Place(nodes, r)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Placements) != 3 {
			b.Fatalf("placed %d", len(res.Placements))
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "placements/s")
}
