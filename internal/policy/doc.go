// Package policy is Fermion's policy engine: who may run what, where, with which
// capabilities, decided by CEL policies that teams write, test and stage like code.
// It parses policy files, compiles and type-checks their expressions once per policy
// version, evaluates them under a cost limit, and runs case files that test them.
//
// It is pure: no I/O beyond parsing the bytes it is given, no clock (Options.Now is
// the caller's), no goroutines, no global state apart from the CEL environments,
// which are built once and never change. Storage (policy versions in the engine's
// KV), the CLI verbs and metrics belong to the control plane.
//
// # Policy files
//
// A policy is a YAML file shaped like Kubernetes' ValidatingAdmissionPolicy:
//
//	apiVersion: fermion.dev/v1
//	kind: Policy
//	metadata:
//	  name: require-signed
//	spec:
//	  target: admission            # admission | placement | runtime
//	  failurePolicy: Fail          # Fail (default) | Ignore
//	  mode: deny                   # deny (default) | warn | audit
//	  matchConditions:             # all must hold for the policy to apply
//	    - name: not-dev
//	      expression: caller.role != "dev"
//	  validations:                 # admission and runtime: all must hold
//	    - expression: artifact.signed && artifact.signer in ["ops-2025"]
//	      messageExpression: '"artifact " + artifact.digest + " has no signature by a trusted key"'
//	      reason: Forbidden
//
// A placement policy has constraints (hard, bool over node and app) and preferences
// (soft, weighted, a number in [0,1] or a bool) instead of validations; its
// matchConditions see only app:
//
//	spec:
//	  target: placement
//	  matchConditions: [{name: pii, expression: 'app.labels.?data_class.orValue("") == "pii"'}]
//	  constraints:
//	    - name: eu-region
//	      expression: node.labels.?region.orValue("") in ["eu-west", "eu-central"]
//	      message: node region not in EU list
//	  preferences:
//	    - {name: low-cost, weight: 0.5, expression: 'node.labels.?cost_tier.orValue("") == "low"'}
//
// ParseFile is strict: unknown fields, wrong types, files over MaxPolicySize and
// nesting over MaxDepth are errors naming file:line:col and the field path.
//
// # Variables
//
// admission: artifact (Artifact), manifest (Manifest), caller (Caller).
// placement: app (AppInput) and, in constraints and preferences, node (NodeInput).
// runtime: artifact (RuntimeArtifact), node (RuntimeNode; node.allow is what the node
// permits). Field names are the json tags of those types, so a misspelt field is a
// compile error. Maps such as labels fail on a missing key: test with has() or use
// optional syntax, labels.?tier.orValue(""). The CEL standard library is extended with
// the strings, lists and sets extensions and optional types.
//
// # Compiling, costs and failures
//
// Set.With compiles a policy: each expression is parsed and type-checked against its
// target's variables (an unknown variable or field, or a non-bool validation, is an
// error with the position in the file and a caret under the expression), and its
// worst-case cost is estimated assuming the input sizes in sizeHints. An expression
// whose estimate exceeds the cost limit (DefaultCostLimit, as Kubernetes' per-call
// limit) is refused. Every evaluation also runs under that limit, so an input larger
// than assumed stops with an error; errors follow the policy's failurePolicy (Fail:
// the error is a violation in the policy's mode; Ignore: the expression is skipped).
//
// # Staging
//
// A Set is immutable; With and Without return new sets, so a policy that fails to
// compile never replaces the version in force. A policy is staged from audit (record
// what it would deny) through warn to deny, each mode applied as a new version; the
// same name at the same version in another mode is ErrConflict.
//
// # Placement and the scheduler
//
// Set.Placement returns NodeConstraint and NodePreference values, shaped like the
// scheduler's Constraint and Preference but over NodeInput, so that this package and
// internal/scheduler stay independent. The control plane adapts them, converting each
// node once per placement:
//
//	type policyConstraint struct {
//		c     policy.NodeConstraint
//		nodes map[*scheduler.Node]*policy.NodeInput // built once per Place call
//	}
//
//	func (a policyConstraint) Name() string { return a.c.Name() }
//	func (a policyConstraint) Match(n *scheduler.Node) (bool, string) {
//		return a.c.Match(a.nodes[n])
//	}
//
// with NodeInput{Name: n.Name, Labels: n.Labels, Capacity: policy.Capacity{Memory:
// n.Capacity.MemoryBytes, MilliCPU: n.Capacity.MilliCPU, Instances:
// int64(n.Capacity.Instances)}}, and likewise for preferences. Converting 1,000 nodes
// costs about as much as the constraints themselves (bench/policy_test.go), so keep
// the NodeInputs across placements and rebuild one when its node changes. The reasons a
// constraint gives ("policy data-residency: node region not in EU list") are counted
// by the scheduler's explanation; ExplainPlacement counts the same per constraint for
// every mode.
//
// A constraint or preference that reads only constant label keys and capacity fields
// of node (not node.name, not the labels map as a whole) is evaluated once per
// distinct combination of those values and the result reused for the other nodes
// (see memo.go): a fleet of 1,000 nodes typically costs a handful of CEL evaluations
// per constraint, not 1,000.
//
// # Applied policies and their inputs
//
// The control plane stores each policy as its source, the mode it was applied in and
// a version; ParseApplied turns such a record back into a *Policy, on the server and
// on an agent that is sent the runtime policies. Vet is Lint split for apply: a
// policy whose matchConditions are always false (it matches nothing) is refused, the
// other findings are warnings. ParseArtifactConfig reads an artifact's OCI config
// blob (the normalised manifest and the module scan) into the manifest, imports and
// ABI that admission and runtime policies judge, so that the control plane and the
// agents build their inputs from the same facts. It decodes the blob with the format's
// owners (artifact.ParseConfig, manifest.ParseNormalized) and declares none of it.
//
// # Testing policies
//
// ParseCases reads a case file (cases: [{name, target, policy, input, expect}]),
// RunCases evaluates each case and WriteCaseTable prints the results; `fermion policy
// test` exits 1 when any case fails. Lint reports policies that are valid but
// suspicious, such as matchConditions that are always false ("matches nothing").
package policy
