// Package v1 is the control plane's wire contract, version 1: the JSON bodies of the HTTP
// API under /v1, its stable error codes, the records the control plane keeps in its KV
// buckets, and the messages agents and servers exchange over NATS. It imports nothing of
// Fermion's, so the Go client, the CLI, the server and the agent all share one definition.
//
// Compatibility: fields are only ever added. A client ignores fields it does not know; a
// server refuses unknown fields in request bodies (so a typo is an error, not silence).
package v1

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Error codes. Clients match on these, never on message text.
const (
	CodeBadRequest   = "bad_request"   // the body or a parameter is malformed; fix the request
	CodeUnauthorized = "unauthorized"  // no token, or an unknown, revoked or expired one
	CodeForbidden    = "forbidden"     // the token's role may not do this
	CodeNotFound     = "not_found"     // no such deployment, node, token or route
	CodeConflict     = "conflict"      // a concurrent change won (compare-and-swap); re-read and retry
	CodeUnplaceable  = "unplaceable"   // no (or too few) nodes fit; the message counts why
	CodePolicyDenied = "policy_denied" // an admission policy in deny mode refused it
	CodeArtifact     = "artifact"      // the image could not be resolved, fetched or verified
	CodeTooLarge     = "too_large"     // the body exceeds the API's limit
	CodeUnavailable  = "unavailable"   // the state store is unreachable or has no quorum; retry
	CodeInternal     = "internal"      // a bug; the server logs it with the request id
)

// Error is the body of every non-2xx response: {"error": {...}}.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the request field at fault, when there is one ("spec.nodes").
	Field string `json:"field,omitempty"`
	// RequestID matches the server's log line for this request.
	RequestID string `json:"requestId,omitempty"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Field, e.Message, e.Code)
	}
	return fmt.Sprintf("%s (%s)", e.Message, e.Code)
}

// ErrorBody wraps Error on the wire.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// Token roles.
const (
	RoleAdmin    = "admin"    // everything, including tokens
	RoleDeployer = "deployer" // deployments, drains, reads
	RoleViewer   = "viewer"   // reads only
	RoleNode     = "node"     // joins an agent; no API access
)

// Roles lists the roles in order of decreasing power.
var Roles = []string{RoleAdmin, RoleDeployer, RoleViewer, RoleNode}

// Info describes the control plane: GET /v1/info.
type Info struct {
	Version string `json:"version"`
	Server  string `json:"server"` // the replica that answered
	Leader  string `json:"leader"` // the replica running the controllers ("" while none)
	// Registry is the built-in registry's host:port for pushes ("" when none).
	Registry string `json:"registry,omitempty"`
	// NATS lists the client URLs agents connect to.
	NATS []string `json:"nats,omitempty"`
	// LeaseRenewSeconds and LeaseLostSeconds are the node lease timing.
	LeaseRenewSeconds float64 `json:"leaseRenewSeconds"`
	LeaseLostSeconds  float64 `json:"leaseLostSeconds"`
}

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	Role        string `json:"role"`
	Description string `json:"description,omitempty"`
	// TTL is a Go duration ("24h"); empty means the token does not expire.
	TTL string `json:"ttl,omitempty"`
}

// Token is an API or join token. Secret is set only in the reply to its creation; the
// server keeps only a hash.
type Token struct {
	ID          string     `json:"id"`
	Role        string     `json:"role"`
	Description string     `json:"description,omitempty"`
	Created     time.Time  `json:"created"`
	Expires     *time.Time `json:"expires,omitempty"`
	Secret      string     `json:"token,omitempty"`
}

// TokenList is the body of GET /v1/tokens.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

// Placement strategies.
const (
	StrategyBinpack = "binpack"
	StrategySpread  = "spread"
)

// Preference is a soft placement preference: nodes whose label Key equals Value score
// Weight more (a negative weight avoids them).
type Preference struct {
	Label  string  `json:"label"`
	Value  string  `json:"value"`
	Weight float64 `json:"weight"`
}

// DeploymentSpec is what a user asks for: PUT /v1/deployments/{name}.
type DeploymentSpec struct {
	// Image is the artifact: registry/repository:tag or registry/repository@sha256:….
	// A tag is resolved to a digest once, at deploy time; nodes run that digest.
	Image string `json:"image"`
	// Nodes is how many nodes run it. Ignored when Daemon is set.
	Nodes int `json:"nodes,omitempty"`
	// Daemon runs it on every node that matches.
	Daemon bool `json:"daemon,omitempty"`
	// Selector is a CEL expression over the node's labels, each label a string variable
	// (`region == "eu-west" && tier == "edge"`); a node without a label the expression
	// names does not match. Empty matches every node.
	Selector string `json:"selector,omitempty"`
	// Spread is a topology label (zone, region) to spread the nodes across.
	Spread string `json:"spread,omitempty"`
	// Strategy is binpack (default) or spread, for node resources.
	Strategy    string       `json:"strategy,omitempty"`
	Preferences []Preference `json:"preferences,omitempty"`
	// Rollout is how a change of version reaches the nodes (rollouts.go); nil is all
	// at once.
	Rollout *RolloutStrategy `json:"rollout,omitempty"`
}

// Version is an image resolved at deploy time: what every node runs.
type Version struct {
	App        string `json:"app"`
	Version    string `json:"version"`
	Repository string `json:"repository"` // registry/repository
	Digest     string `json:"digest"`     // manifest digest
	Size       int64  `json:"size"`       // module bytes
	// MemoryBytes is what one instance may use (the manifest's memory limit); placement
	// reserves MemoryBytes × Instances on the node.
	MemoryBytes int64 `json:"memoryBytes"`
	// Instances is the most instances a node runs (the manifest's max scale).
	Instances int      `json:"instances"`
	Signed    bool     `json:"signed"`
	Signer    string   `json:"signer,omitempty"` // key id
	Routes    []string `json:"routes,omitempty"`
	// Labels are the app's labels from its manifest ([app] labels in fermion.toml),
	// which placement policies see as app.labels.
	Labels map[string]string `json:"labels,omitempty"`
}

// Ref is Repository@Digest.
func (v Version) Ref() string { return v.Repository + "@" + v.Digest }

// Deployment is a deployment as the control plane records it: GET /v1/deployments/{name}.
type Deployment struct {
	Name    string         `json:"name"`
	Spec    DeploymentSpec `json:"spec"`
	Version Version        `json:"version"`
	// Generation increases with every change of Spec or Version.
	Generation int64     `json:"generation"`
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
	// Deleting is set by DELETE: nodes drain it, then the record goes.
	Deleting bool `json:"deleting,omitempty"`
	// Placement is the scheduler's latest decision.
	Placement Placement `json:"placement"`
	// Revision is the record's KV revision; send it back as If-Match to update only
	// what you read. Filled on reads, never stored.
	Revision uint64 `json:"revision,omitempty"`
	// Warnings are what admission policies in mode warn said about this PUT ("policy
	// require-signed: … (mode warn)"). Only in the PUT's response, never stored.
	Warnings []string `json:"warnings,omitempty"`
	// Change is the latest change and the revision it made (revisions.go).
	Change *Change `json:"change,omitempty"`
	// Stable is set when Change is rolled out by a strategy: the revision the nodes
	// ran before it, which keeps serving until the rollout moves them (rollouts.go).
	Stable *StableRevision `json:"stable,omitempty"`
	// RolloutStatus is where the deployment's rollout stands, while one governs it
	// and briefly after it ended (rolloutsummary.go). Filled on reads, never stored.
	RolloutStatus *RolloutSummary `json:"rolloutStatus,omitempty"`
}

// Placement is the scheduler's decision for one generation.
type Placement struct {
	ObservedGeneration int64     `json:"observedGeneration"`
	Nodes              []string  `json:"nodes,omitempty"`
	Message            string    `json:"message,omitempty"` // why too few nodes fit
	Time               time.Time `json:"time,omitzero"`
}

// DeploymentList is the body of GET /v1/deployments.
type DeploymentList struct {
	Deployments []Deployment `json:"deployments"`
}

// Resources is capacity or a reservation.
type Resources struct {
	MemoryBytes int64 `json:"memoryBytes"`
	MilliCPU    int64 `json:"milliCpu"`
	Instances   int   `json:"instances"`
}

// Node states.
const (
	NodeReady    = "ready"
	NodeDraining = "draining" // work is moving off
	NodeDrained  = "drained"  // no work, unschedulable until uncordoned
	NodeLost     = "lost"     // lease lapsed
)

// Node is an agent as the control plane records it: GET /v1/nodes/{name}.
type Node struct {
	Name           string            `json:"name"`
	Labels         map[string]string `json:"labels,omitempty"`
	Capacity       Resources         `json:"capacity"`
	State          string            `json:"state"`
	Schedulable    bool              `json:"schedulable"`
	RuntimeVersion string            `json:"runtimeVersion"`
	AgentVersion   string            `json:"agentVersion,omitempty"`
	GatewayURL     string            `json:"gatewayUrl,omitempty"`
	Joined         time.Time         `json:"joined"`
	StateChanged   time.Time         `json:"stateChanged,omitzero"`
	// Filled on reads, never stored:
	LeaseRenewed time.Time `json:"leaseRenewed,omitzero"`
	LeaseAge     float64   `json:"leaseAgeSeconds"`
	Allocated    Resources `json:"allocated"`
	Assignments  []string  `json:"assignments,omitempty"`
	Revision     uint64    `json:"revision,omitempty"`
	// Telemetry is the node's span export health from its last heartbeat (telemetry.go).
	Telemetry *TelemetryHealth `json:"telemetry,omitempty"`
}

// NodeList is the body of GET /v1/nodes.
type NodeList struct {
	Nodes []Node `json:"nodes"`
}

// Assignment tells one node to run one deployment's version.
type Assignment struct {
	Deployment string    `json:"deployment"`
	Node       string    `json:"node"`
	Generation int64     `json:"generation"`
	Version    Version   `json:"version"`
	Reserved   Resources `json:"reserved"`
	// Keep lists the manifest digests of the deployment's earlier revisions, the
	// newest first, for the node to keep pinned in its artifact cache (the agent's
	// --keep-revisions) so that a rollback starts without the registry. Filled in the
	// sets sent to nodes, never stored.
	Keep []string `json:"keep,omitempty"`
	// Canary, when set, runs a second version beside Version on the node and sends
	// it a weight of every route's requests (traffic split, canary.go).
	Canary *Canary `json:"canary,omitempty"`
}

// Instance states an agent reports.
const (
	InstancePulling  = "pulling"
	InstanceStarting = "starting"
	InstanceReady    = "ready"
	InstanceFailed   = "failed"
	// InstanceUnknown is never reported by a node: a deployment's status shows it for
	// an instance on a lost node (or one the control plane no longer knows), whose
	// last report can no longer be trusted.
	InstanceUnknown = "unknown"
)

// InstanceStatus is what a node reports for one deployment.
type InstanceStatus struct {
	Deployment string    `json:"deployment"`
	Node       string    `json:"node"`
	Generation int64     `json:"generation"`
	Digest     string    `json:"digest"`
	Version    string    `json:"version"`
	State      string    `json:"state"`
	Instances  int       `json:"instances"`
	LastError  string    `json:"lastError,omitempty"`
	Updated    time.Time `json:"updated"`
	// Canary is the canary the node runs beside this version, if any (canary.go).
	Canary *CanaryStatus `json:"canary,omitempty"`
}

// NodeStatus is one row of a deployment's status: desired vs actual on a node.
type NodeStatus struct {
	Node      string          `json:"node"`
	NodeState string          `json:"nodeState"`
	Desired   *Version        `json:"desired,omitempty"` // nil: the node should not run it
	Actual    *InstanceStatus `json:"actual,omitempty"`  // nil: nothing reported
}

// DeploymentStatus is the body of GET /v1/deployments/{name}/status.
type DeploymentStatus struct {
	Deployment Deployment   `json:"deployment"`
	Desired    int          `json:"desired"`
	Ready      int          `json:"ready"` // nodes running the desired digest, ready
	Nodes      []NodeStatus `json:"nodes"`
	// Converged: every desired node is ready on the desired digest and no other node
	// still runs it.
	Converged bool `json:"converged"`
}

// Event types.
const (
	EventDeployed     = "deployed"
	EventDeleted      = "deleted"
	EventPlaced       = "placed"
	EventUnplaceable  = "unplaceable"
	EventAssigned     = "assigned"
	EventUnassigned   = "unassigned"
	EventRescheduled  = "rescheduled"
	EventStarted      = "started"
	EventFailed       = "failed"
	EventNodeJoined   = "node_joined"
	EventNodeReady    = "node_ready"
	EventLeaseLost    = "lease_lost"
	EventDrainStarted = "drain_started"
	EventDrained      = "drained"
	EventUncordoned   = "uncordoned"
	EventNodeRemoved  = "node_removed"
	EventLeader       = "leader"
	// Policy decisions: a policy in mode deny refused a deployment (or, at placement,
	// excluded nodes), one in mode warn or audit objected. Their Violation says which.
	EventPolicyDenied  = "policy_denied"
	EventPolicyWarned  = "policy_warned"
	EventPolicyAudited = "policy_audited"
	// A policy was applied or deleted.
	EventPolicyApplied = "policy_applied"
	EventPolicyDeleted = "policy_deleted"
	// EventRollout is a rollout's progress: a step, a verdict with its numbers, the
	// outcome (rollouts.go).
	EventRollout = "rollout"
)

// EventTypes lists every event type above, for clients that check a filter before
// asking (the CLI's --type).
var EventTypes = []string{
	EventDeployed, EventDeleted, EventPlaced, EventUnplaceable, EventAssigned, EventUnassigned,
	EventRescheduled, EventStarted, EventFailed, EventNodeJoined, EventNodeReady, EventLeaseLost,
	EventDrainStarted, EventDrained, EventUncordoned, EventNodeRemoved, EventLeader,
	EventPolicyDenied, EventPolicyWarned, EventPolicyAudited, EventPolicyApplied, EventPolicyDeleted,
	EventRollout,
}

// Event is one lifecycle step. The history is bounded (the oldest go first).
type Event struct {
	Seq        uint64    `json:"seq"`
	Time       time.Time `json:"time"`
	Type       string    `json:"type"`
	Deployment string    `json:"deployment,omitempty"`
	Node       string    `json:"node,omitempty"`
	Message    string    `json:"message"`
	Server     string    `json:"server,omitempty"` // the replica that recorded it
	// Violation is set on policy_denied, policy_warned and policy_audited events.
	Violation *PolicyViolation `json:"violation,omitempty"`
}

// PolicyViolation is what a policy decision event records: which policy, at which
// version and in which mode, objected to whose request.
type PolicyViolation struct {
	Policy  string `json:"policy"`
	Version int    `json:"version"`
	Mode    string `json:"mode"`   // deny, warn or audit
	Target  string `json:"target"` // admission or placement
	// Subject is the id of the token that asked ("" for the controllers).
	Subject string `json:"subject,omitempty"`
	// Error is set when the policy failed to evaluate and its failurePolicy Fail made
	// the failure a violation.
	Error bool `json:"error,omitempty"`
}

// Policy modes: what a violation does. A policy is staged audit → warn → deny.
const (
	PolicyModeDeny  = "deny"  // refused (placement: the node is excluded)
	PolicyModeWarn  = "warn"  // allowed; the caller is shown a warning
	PolicyModeAudit = "audit" // allowed; recorded only
)

// PolicyModes lists the modes from the strictest.
var PolicyModes = []string{PolicyModeDeny, PolicyModeWarn, PolicyModeAudit}

// PolicyApply is the body of PUT /v1/policies/{name}: a policy file and how to apply it.
type PolicyApply struct {
	// Source is the policy file (YAML, apiVersion fermion.dev/v1, kind Policy); its
	// metadata.name must be the name in the path.
	Source string `json:"source"`
	// Mode overrides the file's spec.mode (audit, warn or deny); empty keeps it.
	Mode string `json:"mode,omitempty"`
	// File is where the source came from, used in error positions
	// ("policies/require-signed.yaml:12:7"); default <name>.yaml.
	File string `json:"file,omitempty"`
}

// Policy is a policy as the control plane records it: GET /v1/policies/{name}.
type Policy struct {
	Name string `json:"name"`
	// Version increases with every apply that changes the source or the mode.
	Version int       `json:"version"`
	Mode    string    `json:"mode"`   // in force: the file's spec.mode or the apply's override
	Target  string    `json:"target"` // admission, placement or runtime
	Source  string    `json:"source"` // the file as applied
	Applied time.Time `json:"applied"`
	// AppliedBy is the id of the token that applied this version.
	AppliedBy string `json:"appliedBy"`
	// Warnings are what is valid but suspicious in the policy (an expression that is
	// always true, a deny policy that fails open), with file:line positions.
	Warnings []string `json:"warnings,omitempty"`
	// Error is set on reads when the replica that answered could not compile this
	// version and keeps the previous one in force (it logs why).
	Error string `json:"error,omitempty"`
	// Revision is the record's KV revision. Filled on reads, never stored.
	Revision uint64 `json:"revision,omitempty"`
}

// PolicyList is the body of GET /v1/policies.
type PolicyList struct {
	Policies []Policy `json:"policies"`
}

// EventList is the body of GET /v1/events (without follow).
type EventList struct {
	Events []Event `json:"events"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidName checks a deployment or node name: a DNS label (lowercase letters, digits and
// hyphens, at most 63, starting and ending alphanumeric), so it is safe as a KV key and
// a NATS subject token.
func ValidName(kind, s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%s name %q: use lowercase letters, digits and '-' (at most 63, starting and ending with a letter or digit)", kind, s)
	}
	return nil
}

// Validate checks a spec for what can be checked without the cluster.
func (s *DeploymentSpec) Validate() *Error {
	bad := func(field, format string, args ...any) *Error {
		return &Error{Code: CodeBadRequest, Field: "spec." + field, Message: fmt.Sprintf(format, args...)}
	}
	if strings.TrimSpace(s.Image) == "" {
		return bad("image", "an image is required (registry/repository:tag or @sha256:…)")
	}
	if s.Daemon && s.Nodes != 0 {
		return bad("nodes", "give either nodes or daemon, not both")
	}
	if !s.Daemon && s.Nodes <= 0 {
		return bad("nodes", "must be at least 1 (or set daemon to run on every matching node)")
	}
	if s.Nodes > 10000 {
		return bad("nodes", "%d is more than the 10000 a deployment may ask for", s.Nodes)
	}
	switch s.Strategy {
	case "", StrategyBinpack, StrategySpread:
	default:
		return bad("strategy", "%q: want binpack or spread", s.Strategy)
	}
	if len(s.Selector) > 4096 {
		return bad("selector", "longer than 4096 bytes")
	}
	if len(s.Preferences) > 32 {
		return bad("preferences", "at most 32")
	}
	for i, p := range s.Preferences {
		if p.Label == "" {
			return bad(fmt.Sprintf("preferences[%d].label", i), "a label is required")
		}
		if p.Weight < -100 || p.Weight > 100 || p.Weight != p.Weight {
			return bad(fmt.Sprintf("preferences[%d].weight", i), "must be within [-100, 100]")
		}
	}
	return nil
}

// --- SLOs and alerts (issue 14) ---

// EventAlert is an SLO alert changing phase (pending, firing, resolved); its Message
// names the SLO, app, version, scope and burn rates.
const EventAlert = "alert"

// EventSLOApplied and EventSLODeleted record changes to the SLO specs.
const (
	EventSLOApplied = "slo_applied"
	EventSLODeleted = "slo_deleted"
)

func init() { EventTypes = append(EventTypes, EventAlert, EventSLOApplied, EventSLODeleted) }

// SLOApply is the body of PUT /v1/slos (every SLO of a file) and PUT /v1/slos/{name}
// (a file holding exactly that SLO): the YAML file as written (see docs/slo.md).
type SLOApply struct {
	// File names the file in error positions (default: <name>.yaml, or slos.yaml).
	File   string `json:"file,omitempty"`
	Source string `json:"source"`
}

// SLO is one stored SLO spec.
type SLO struct {
	Name string `json:"name"`
	// Version increases with every apply that changes the spec.
	Version int `json:"version"`
	// App or Selector (deployment labels) says what the SLO is about.
	App       string            `json:"app,omitempty"`
	Selector  map[string]string `json:"selector,omitempty"`
	SLI       string            `json:"sli"`       // availability, or latency<250ms
	Objective string            `json:"objective"` // percent, as written: "99.9"
	Window    string            `json:"window"`    // 30d
	Scope     string            `json:"scope"`     // global, region or node
	Preset    string            `json:"preset,omitempty"`
	Runbook   string            `json:"runbook,omitempty"`
	// Owner is the deployment whose manifest declared the SLO ([[slo]]); it is
	// deleted with it. Empty for SLOs applied on their own.
	Owner string `json:"owner,omitempty"`
	// Source is the SLO's spec as stored (JSON of the decoded spec).
	Source    string    `json:"source"`
	Applied   time.Time `json:"applied"`
	AppliedBy string    `json:"appliedBy"`
	// Warnings are what is valid but suspicious, such as an app or selector that
	// matches no deployment. Recomputed on reads.
	Warnings []string `json:"warnings,omitempty"`
	Revision uint64   `json:"revision,omitempty"`
}

// SLOList is the body of GET /v1/slos and of PUT /v1/slos.
type SLOList struct {
	SLOs []SLO `json:"slos"`
}

// SLOStatus is the body of GET /v1/slos/{name}/status: the SLO's budget and alerts per
// series (an app's version in one scope member).
type SLOStatus struct {
	SLO    SLO               `json:"slo"`
	Series []SLOSeriesStatus `json:"series"`
	// Evaluated is when the engine last evaluated the SLOs (zero: never).
	Evaluated time.Time `json:"evaluated,omitzero"`
}

// SLOSeriesStatus is one series of an SLO.
type SLOSeriesStatus struct {
	App     string `json:"app"`
	Version string `json:"version"`
	Scope   string `json:"scope"` // global, a region's or a node's name
	Good    int64  `json:"good"`
	Total   int64  `json:"total"`
	// BudgetRemaining is the unspent share of the error budget over the window: 1 at
	// no errors, 0 when spent, negative when overspent.
	BudgetRemaining float64 `json:"budgetRemaining"`
	// Burn rates per alert tier, over its long and short windows.
	Burn []SLOBurn `json:"burn"`
	// Alerts are the series' alerts that are pending, firing or recently resolved.
	Alerts []Alert `json:"alerts,omitempty"`
}

// SLOBurn is a tier's burn rates now.
type SLOBurn struct {
	Severity string  `json:"severity"`
	Factor   string  `json:"factor"` // the tier's threshold, e.g. "14.4"
	Long     string  `json:"long"`   // window, e.g. "1h"
	Short    string  `json:"short"`
	LongRate float64 `json:"longRate"`
	// ShortRate is the burn over the short window.
	ShortRate float64 `json:"shortRate"`
}

// Alert is one SLO alert.
type Alert struct {
	SLO      string `json:"slo"`
	App      string `json:"app"`
	Version  string `json:"version"`
	Scope    string `json:"scope"`
	Severity string `json:"severity"` // page or ticket
	Phase    string `json:"phase"`    // pending, firing or resolved
	// Since is when the condition started holding; Fired when it fired; Resolved when
	// it stopped.
	Since    time.Time `json:"since"`
	Fired    time.Time `json:"fired,omitzero"`
	Resolved time.Time `json:"resolved,omitzero"`
	// Factor, Long and Short are the tier that held; LongRate and ShortRate the burn
	// rates over its windows.
	Factor    string  `json:"factor"`
	Long      string  `json:"long"`
	Short     string  `json:"short"`
	LongRate  float64 `json:"longRate"`
	ShortRate float64 `json:"shortRate"`
	Runbook   string  `json:"runbook,omitempty"`
	// Expected: the app's version is marked expected (a controlled rollout); its pages
	// do not notify.
	Expected bool   `json:"expected,omitempty"`
	Summary  string `json:"summary"`
}

// Incident is one app's alerts, grouped so a person gets one page per app.
type Incident struct {
	App      string   `json:"app"`
	Severity string   `json:"severity"` // the most urgent firing severity, or pending
	Alerts   []Alert  `json:"alerts"`
	Runbooks []string `json:"runbooks,omitempty"`
}

// AlertList is the body of GET /v1/alerts: pending and firing alerts grouped by app
// (with ?all=true, recently resolved ones too).
type AlertList struct {
	Incidents []Incident `json:"incidents"`
	// Marks are the versions whose alerts are expected now.
	Marks     []AlertMark `json:"marks,omitempty"`
	Evaluated time.Time   `json:"evaluated,omitzero"`
}

// AlertMark is the body of POST /v1/alerts/expected: the app's version's pages are
// expected (a controlled rollout judges it) until Until; a zero Until removes the mark.
type AlertMark struct {
	App     string    `json:"app"`
	Version string    `json:"version"`
	Until   time.Time `json:"until,omitzero"`
}

// ---- Fleet SLIs (GET /v1/slis) ----

// SLIDimensions are the names /v1/slis accepts in by=, in the order rows are sorted.
var SLIDimensions = []string{"app", "version", "node", "region", "zone"}

// SLIGroup is one row of GET /v1/slis: the SLIs of every series whose dimensions
// equal the row's (those not grouped by are empty) over the window. Quantiles come
// from the merge of every node's latency sketch (within 1 % of the exact quantile).
type SLIGroup struct {
	App     string `json:"app,omitempty"`
	Version string `json:"version,omitempty"`
	Node    string `json:"node,omitempty"`
	Region  string `json:"region,omitempty"`
	Zone    string `json:"zone,omitempty"`

	Requests          uint64  `json:"requests"`
	RequestsPerSecond float64 `json:"requestsPerSecond"`
	// Errors are 5xx responses; ErrorRatio is Errors / Requests (0 without requests).
	Errors     uint64  `json:"errors"`
	ErrorRatio float64 `json:"errorRatio"`
	// P50Ms, P95Ms and P99Ms are latency quantiles in milliseconds.
	P50Ms          float64 `json:"p50Ms"`
	P95Ms          float64 `json:"p95Ms"`
	P99Ms          float64 `json:"p99Ms"`
	ColdStarts     uint64  `json:"coldStarts"`
	ColdStartRatio float64 `json:"coldStartRatio"`
	// Instances is the sum of the instances the nodes last reported (their status),
	// not a figure of the window.
	Instances      int    `json:"instances"`
	MemoryMaxBytes uint64 `json:"memoryMaxBytes"`
	// CPUCores is the guests' CPU time over the window divided by its length.
	CPUCores        float64           `json:"cpuCores"`
	Discards        map[string]uint64 `json:"discards,omitempty"`
	LimitRejections map[string]uint64 `json:"limitRejections,omitempty"`
}

// SLIList is the body of GET /v1/slis.
type SLIList struct {
	// From and To bound the window: intervals ending in (From, To] are counted.
	From          time.Time  `json:"from"`
	To            time.Time  `json:"to"`
	WindowSeconds float64    `json:"windowSeconds"`
	By            []string   `json:"by"`
	Groups        []SLIGroup `json:"groups"`
}

// Backup and restore (opsurface): GET /v1/backup streams an archive of the state;
// PUT /v1/restore loads one into a fresh control plane.

// BackupSummary counts what a backup archive holds; PUT /v1/restore answers with it.
type BackupSummary struct {
	Buckets int   `json:"buckets"`
	Keys    int   `json:"keys"`
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
}
