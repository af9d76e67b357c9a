package v1

import (
	"strconv"
	"time"
)

// SLI transport (issue 14): every agent flushes its SLI summaries (internal/sli) each
// interval and sends them, oldest first, on its own SubjectSLIs; any server replica
// checks them and publishes each accepted summary into the StreamSLIs stream, on
// SubjectSLIStream(node), with header Nats-Msg-Id = SLIMsgID(…) so that backfill re-sent
// after a lost reply is stored once.
//
//	fermion.agent.<node>.slis     SLIBatch → SLIBatchReply        (node credentials)
//	fermion.slis.<node>           one sli.EncodeSummary'd summary  (stream FERMION_SLIS)
const (
	// StreamSLIs is the JetStream stream holding accepted summaries, one per message.
	StreamSLIs = "FERMION_SLIS"
	// SubjectSLIStreamAll matches every node's subject in StreamSLIs.
	SubjectSLIStreamAll = "fermion.slis.>"
	// SLIStreamMaxAge is how long raw summaries are kept in StreamSLIs.
	SLIStreamMaxAge = 6 * time.Hour
	// SLIStreamDuplicates is StreamSLIs' duplicate window: a summary re-sent within it
	// (a backfill whose reply was lost) is stored once.
	SLIStreamDuplicates = 2 * time.Minute
	// MaxSLIBatchSummaries bounds the summaries of one SLIBatch.
	MaxSLIBatchSummaries = 4096
)

// SubjectSLIs is the subject a node sends its SLI summaries on.
func SubjectSLIs(node string) string { return "fermion.agent." + node + ".slis" }

// SubjectSLIStream is the StreamSLIs subject a node's accepted summaries are stored on.
func SubjectSLIStream(node string) string { return "fermion.slis." + node }

// SLIMsgID is the Nats-Msg-Id of a stored summary: node/seq/deployment/version/route,
// the key receivers dedupe summaries by (the route, which may contain slashes, is last).
func SLIMsgID(node string, seq uint64, deployment, version, route string) string {
	return node + "/" + strconv.FormatUint(seq, 10) + "/" + deployment + "/" + version + "/" + route
}

// SLIBatch carries a node's summaries, oldest first: usually one flush's (one per
// deployment, version and route that saw anything), more while a backlog drains.
type SLIBatch struct {
	// SentAt is the agent's clock when it sent the batch; the server compares it with
	// its own to tell a skewed clock from backfill.
	SentAt time.Time `json:"sentAt"`
	// Summaries are sli.EncodeSummary'd summaries (base64 in JSON).
	Summaries [][]byte `json:"summaries"`
}

// Reasons a server refuses one summary of a batch. A refused summary is never worth
// sending again: the agent drops it and counts it.
const (
	SLIRefusedMalformed      = "malformed"       // does not decode or validate (see Message)
	SLIRefusedTooLarge       = "too_large"       // over sli.MaxSummaryBytes
	SLIRefusedForeignNode    = "foreign_node"    // its Node is not the sending node
	SLIRefusedUnknownVersion = "unknown_version" // the node does not run (and did not lately run) that version
	SLIRefusedClockSkew      = "clock_skew"      // the node's clock, or the summary's interval, is too far from the server's
	SLIRefusedTooOld         = "too_old"         // ended longer ago than the stream keeps summaries
)

// SLIRefusedReasons lists every refusal reason (for zero-initialised metrics).
var SLIRefusedReasons = []string{SLIRefusedMalformed, SLIRefusedTooLarge, SLIRefusedForeignNode,
	SLIRefusedUnknownVersion, SLIRefusedClockSkew, SLIRefusedTooOld}

// SLIRefusal says why the summary at Index of the batch was refused.
type SLIRefusal struct {
	Index   int    `json:"index"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// SLIBatchReply answers an SLIBatch. Done is how many of the batch's leading summaries
// the server is finished with, stored or refused; the agent removes exactly those from
// its buffer and sends the rest again later. Done is less than the batch's length only
// with an Error (the stream was unavailable part-way).
type SLIBatchReply struct {
	Error    *Error       `json:"error,omitempty"`
	Done     int          `json:"done"`
	Accepted int          `json:"accepted"`
	Refused  []SLIRefusal `json:"refused,omitempty"`
}

// Slowest requests (GET /v1/slis/slowest): the fleet's slowest recent requests, as the
// agents report them with their SLI summaries (the few slowest per version, route and
// interval), with their trace ids.
const (
	// SlowestWindowMax is the longest window /v1/slis/slowest answers for: what the
	// control plane keeps.
	SlowestWindowMax = 15 * time.Minute
	// SlowestLimitDefault and SlowestLimitMax bound how many requests it returns.
	SlowestLimitDefault = 20
	SlowestLimitMax     = 100
)

// SlowRequest is one slow request.
type SlowRequest struct {
	App     string `json:"app"` // the deployment
	Version string `json:"version"`
	Node    string `json:"node"`
	// Route is the manifest's route pattern that served it; Path is the request's own
	// path (query dropped at the source, cut at 64 bytes).
	Route  string `json:"route"`
	Method string `json:"method"`
	Path   string `json:"path"`
	Status int    `json:"status"`
	// DurationMs is how long it took, to the microsecond.
	DurationMs float64   `json:"durationMs"`
	Start      time.Time `json:"start"` // to the millisecond
	// TraceID is its W3C trace id (32 hex digits). Sampled says the gateway recorded
	// its span, so the trace backend has it; unsampled requests still carry the id
	// (their log lines have it).
	TraceID string `json:"traceId"`
	Sampled bool   `json:"sampled"`
	// Instance numbers the sandbox instance that served it on its node (per version,
	// in creation order; 0: none).
	Instance uint64 `json:"instance,omitempty"`
}

// SlowestRequests answers GET /v1/slis/slowest: slowest first.
type SlowestRequests struct {
	Window   string        `json:"window"` // e.g. "15m"
	Requests []SlowRequest `json:"requests"`
}
