package v1

// The agent protocol: request/reply over NATS, JSON bodies. Any server replica answers
// (queue group QueueServers); agents never touch the KV buckets themselves, so a node's
// NATS credentials can be limited to its own subjects.
//
//	fermion.join                        JoinRequest → JoinReply       (join token)
//	fermion.agent.<node>.register       Register → RegisterReply      (node credentials)
//	fermion.agent.<node>.heartbeat      Heartbeat → HeartbeatReply
//	fermion.node.<node>.assignments     AssignmentSet, pushed by the leader on change
const (
	SubjectJoin    = "fermion.join"
	QueueServers   = "fermion-servers"
	JoinUser       = "join"  // NATS user name an agent joins with; the password is the join token
	NodeUserPrefix = "node:" // NATS user name of a joined node: "node:<name>"
)

// SubjectRegister is the subject a node registers on.
func SubjectRegister(node string) string { return "fermion.agent." + node + ".register" }

// SubjectHeartbeat is the subject a node renews its lease on.
func SubjectHeartbeat(node string) string { return "fermion.agent." + node + ".heartbeat" }

// SubjectAssignments is the subject a node hears its assignments on.
func SubjectAssignments(node string) string { return "fermion.node." + node + ".assignments" }

// JoinRequest asks for a node's credentials.
type JoinRequest struct {
	Node string `json:"node"`
}

// JoinReply carries the node's credentials: NATS user NodeUserPrefix+Node with Secret
// as the password. The agent keeps them in its data directory.
type JoinReply struct {
	Error  *Error `json:"error,omitempty"`
	Node   string `json:"node"`
	Secret string `json:"secret"`
}

// Register announces (or re-announces) a node.
type Register struct {
	Labels         map[string]string `json:"labels,omitempty"`
	Capacity       Resources         `json:"capacity"`
	RuntimeVersion string            `json:"runtimeVersion"`
	AgentVersion   string            `json:"agentVersion,omitempty"`
	GatewayURL     string            `json:"gatewayUrl,omitempty"`
}

// RegisterReply tells the agent the lease timing, trust roots and its assignments.
type RegisterReply struct {
	Error             *Error   `json:"error,omitempty"`
	LeaseRenewSeconds float64  `json:"leaseRenewSeconds"`
	LeaseLostSeconds  float64  `json:"leaseLostSeconds"`
	TrustedKeys       []string `json:"trustedKeys,omitempty"` // PEM public keys signatures are checked against
	// RequireSignatures: refuse artifacts without a signature by a trusted key. Off, a
	// bad signature is still refused, and policies decide about unsigned artifacts.
	RequireSignatures bool `json:"requireSignatures,omitempty"`
	// MatchRepository: a signature must also name the repository the artifact is
	// pulled from (its docker-reference). Off, it binds the manifest digest only, as
	// cosign's key-based verification does, so mirrors and other host names verify.
	MatchRepository bool          `json:"matchRepository,omitempty"`
	Assignments     AssignmentSet `json:"assignments"`
	// RuntimePolicies are the runtime policies in force (see RuntimePolicy).
	RuntimePolicies []RuntimePolicy `json:"runtimePolicies"`
	// Registry is the control plane's built-in registry, if it serves one.
	Registry *RegistryInfo `json:"registry,omitempty"`
	// SLIExemplars: the server reads SLI summaries' extension sections (the slowest
	// requests). A server that predates them omits it and refuses trailing bytes, so
	// the agent strips them (sli.WithoutExtensions) before sending to it.
	SLIExemplars bool `json:"sliExemplars,omitempty"`
}

// RegistryInfo tells agents how to reach the built-in registry: whether the host:port
// in image references speaks TLS (an agent cannot tell from the address: a loopback or
// private address may be either).
type RegistryInfo struct {
	Host string `json:"host"`
	TLS  bool   `json:"tls"`
}

// Heartbeat renews the node's lease and reports what it runs.
type Heartbeat struct {
	Statuses []InstanceStatus `json:"statuses,omitempty"`
	// Telemetry is the agent's span export health; nil from agents that predate it.
	Telemetry *TelemetryHealth `json:"telemetry,omitempty"`
}

// HeartbeatReply carries the node's current assignments.
type HeartbeatReply struct {
	Error       *Error        `json:"error,omitempty"`
	Assignments AssignmentSet `json:"assignments"`
	// RuntimePolicies are the runtime policies in force (see RuntimePolicy).
	RuntimePolicies []RuntimePolicy `json:"runtimePolicies"`
}

// RuntimePolicy is a runtime-target policy in force, which the agent checks before it
// starts a version (defence in depth: the node refuses what its policy forbids even
// when the control plane is stale or compromised). A server always sends the full
// list, empty when there are none; a reply without the field (nil) comes from a server
// that predates policies, and the agent keeps what it has.
type RuntimePolicy struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	// Mode is the mode in force, which an apply may have set over the source's
	// spec.mode: parse the source with policy.ParseApplied(Name, Source, Mode, Version).
	Mode   string `json:"mode"`
	Source string `json:"source"` // the policy file (YAML)
}

// AssignmentSet is everything one node should run. Revision increases with every change
// to the node's assignments; an agent ignores a set older than one it has applied.
type AssignmentSet struct {
	Node        string       `json:"node"`
	Revision    uint64       `json:"revision"`
	Assignments []Assignment `json:"assignments"`
}
