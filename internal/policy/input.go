package policy

// The inputs below are the CEL variables policies see. Their json tags are both the
// CEL field names and the keys of case-file input documents, so a field is spelt the
// same in a policy, a case file and the API. Integers are int64 because CEL has one
// integer type.
//
// The estimates the compile-time cost check assumes for the size of each list, map
// and string are in sizeHints (cost.go); inputs larger than that are still evaluated,
// under the run-time cost limit.

// AdmissionInput is what an admission policy decides on, as the CEL variables
// artifact, manifest, caller and deployment.
type AdmissionInput struct {
	Artifact   Artifact   `json:"artifact"`
	Manifest   Manifest   `json:"manifest"`
	Caller     Caller     `json:"caller"`
	Deployment Deployment `json:"deployment"`
}

// Deployment is the deployment being admitted: its name and how the change reaches
// the nodes, so a policy can require canaries (deployment.strategy.kind == "canary").
type Deployment struct {
	Name     string   `json:"name"`
	Strategy Strategy `json:"strategy"`
}

// Strategy is a deployment's rollout strategy, normalized: kind is always set
// ("all-at-once" when the deploy named none).
type Strategy struct {
	Kind string `json:"kind"` // all-at-once, rolling or canary
	// Steps are a canary's steps in the CLI's grammar ("1node", "10%", "manual").
	Steps []string `json:"steps"`
	// IntervalSeconds is each step's analysis window or pause.
	IntervalSeconds int64 `json:"interval_seconds"`
	// Analysis is true when some step is gated by a canary analysis.
	Analysis bool   `json:"analysis"`
	Sticky   string `json:"sticky"`
}

// Artifact is the OCI artifact being deployed, as the registry and the module scan
// describe it.
type Artifact struct {
	Digest      string            `json:"digest"`      // "sha256:…"
	Size        int64             `json:"size"`        // bytes of the wasm layer
	Signed      bool              `json:"signed"`      // a signature verified against a trusted key
	Signer      string            `json:"signer"`      // key id of that key; "" when unsigned
	Registry    string            `json:"registry"`    // host[:port] it is pulled from
	Repository  string            `json:"repository"`  // path within the registry, e.g. "shop/checkout"
	Imports     []string          `json:"imports"`     // every wasm import as "module.name"
	ABI         string            `json:"abi"`         // "reactor" or "command"
	Annotations map[string]string `json:"annotations"` // OCI manifest annotations
}

// Manifest is the part of fermion.toml that policies judge.
type Manifest struct {
	App          App          `json:"app"`
	Limits       Limits       `json:"limits"`
	Capabilities Capabilities `json:"capabilities"`
	Scaling      Scaling      `json:"scaling"`
	// SLO holds the manifest's [[slo]] tables by name, each with its keys (sli,
	// objective in percent, scope, …: manifest.slo.availability.objective); nil when
	// none is declared, which `has(manifest.slo)` tests.
	SLO map[string]any `json:"slo"`
}

// App identifies the application.
type App struct {
	Name    string            `json:"name"`
	Version string            `json:"version"`
	Labels  map[string]string `json:"labels"`
}

// Limits bound one request or instance.
type Limits struct {
	Memory          int64 `json:"memory"`     // bytes per instance
	TimeoutMS       int64 `json:"timeout_ms"` // per-request deadline
	MaxRequestBody  int64 `json:"max_request_body"`
	MaxResponseBody int64 `json:"max_response_body"`
	MaxConcurrency  int64 `json:"max_concurrency"`
}

// Capabilities are what the guest is granted beyond computing.
type Capabilities struct {
	Env                  []string `json:"env"` // keys only: values may be secrets
	AllowedOutboundHosts []string `json:"allowed_outbound_hosts"`
	Files                []string `json:"files"` // guest paths of read-only mounts
}

// Scaling is the instance pool's shape.
type Scaling struct {
	MinWarm      int64 `json:"min_warm"`
	MaxInstances int64 `json:"max_instances"`
	// TargetUtilizationPercentage is 100 for artifacts built before the field existed.
	TargetUtilizationPercentage int64 `json:"target_utilization_percentage"`
}

// Caller is who asked, from the API token.
type Caller struct {
	Subject string `json:"subject"`
	Role    string `json:"role"`
}

// AppInput is the app being placed, the CEL variable app of a placement policy.
type AppInput struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

// NodeInput is a candidate node, the CEL variable node of a placement policy.
type NodeInput struct {
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels"` // region, zone, tier, cost_tier …
	Capacity Capacity          `json:"capacity"`
}

// Capacity is what a node offers in total.
type Capacity struct {
	Memory    int64 `json:"memory"` // bytes
	MilliCPU  int64 `json:"milli_cpu"`
	Instances int64 `json:"instances"`
}

// RuntimeInput is what the agent re-checks before it starts a version, as the CEL
// variables artifact and node.
type RuntimeInput struct {
	Artifact RuntimeArtifact `json:"artifact"`
	Node     RuntimeNode     `json:"node"`
}

// RuntimeArtifact is what the version about to start needs.
type RuntimeArtifact struct {
	Digest       string       `json:"digest"`
	ABI          string       `json:"abi"`
	Imports      []string     `json:"imports"` // "module.name"
	Capabilities Capabilities `json:"capabilities"`
	Limits       Limits       `json:"limits"`
}

// RuntimeNode is the node about to run it.
type RuntimeNode struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	Allow  NodeAllow         `json:"allow"`
}

// NodeAllow is what the node's own configuration permits, independent of what the
// control plane asks for.
type NodeAllow struct {
	ImportModules []string `json:"import_modules"` // wasm import modules, e.g. "wasi_snapshot_preview1"
	OutboundHosts []string `json:"outbound_hosts"`
	Env           []string `json:"env"`    // env keys a guest may be given
	Files         bool     `json:"files"`  // whether read-only mounts are allowed
	Memory        int64    `json:"memory"` // most bytes per instance
}
