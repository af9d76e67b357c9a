package v1

import (
	"encoding/json"
	"slices"
	"time"
)

// The per-instance timeline (issue 16, the console's Debug view): each agent keeps a
// bounded record of its recent instances per deployment version (live ones and the
// last discarded ones), and the control plane asks the node for it on demand:
//
//	fermion.node.<node>.instances   InstancesRequest → InstancesReply   (request/reply,
//	                                the server asks, the agent answers)
//
// served to API clients as GET /v1/nodes/{node}/instances?deployment=NAME (viewer role),
// and, over every node the deployment is placed on, GET /v1/deployments/{name}/instances.

// SubjectInstances is the subject a node answers instance timeline requests on.
func SubjectInstances(node string) string { return "fermion.node." + node + ".instances" }

// InstancesRequest asks a node for its instances' timelines; an empty Deployment means
// every deployment on the node.
type InstancesRequest struct {
	Deployment string `json:"deployment,omitempty"`
}

// InstancesReply is a node's answer.
type InstancesReply struct {
	Error     *Error             `json:"error,omitempty"`
	Node      string             `json:"node"`
	Time      time.Time          `json:"time"` // the node's clock when it answered
	Instances []InstanceTimeline `json:"instances"`
	// Dropped counts discarded instances no longer held (the record is bounded).
	Dropped int `json:"dropped,omitempty"`
}

// InstanceTimeline is one instance's life on a node, oldest first in Events.
type InstanceTimeline struct {
	Node       string `json:"node"`
	Deployment string `json:"deployment"`
	Version    string `json:"version"`
	// ID numbers the instance within its version on the node, in creation order; the
	// same number the slowest-requests exemplars carry (SlowRequest.Instance).
	ID uint64 `json:"id"`
	// State: "starting", "idle", "busy" or "discarded".
	State   string    `json:"state"`
	Created time.Time `json:"created"`
	// Start is how the instance was made: "snapshot" or "initialize" (the guest's
	// _initialize ran), or "command" (a command module instantiated for one request,
	// whose _start serves it), and Reason why: "prewarm", "scale", "request", "replace" …
	Start  string `json:"start,omitempty"`
	Reason string `json:"reason,omitempty"`
	// InitMillis is the time from creation to ready (instantiation, init or snapshot
	// restore, and the warmup hook when there is one).
	InitMillis  float64   `json:"initMillis"`
	Requests    uint64    `json:"requests"`
	Errors      uint64    `json:"errors"` // requests answered 5xx or failed
	LastRequest time.Time `json:"lastRequest,omitzero"`
	MemoryBytes uint64    `json:"memoryBytes,omitempty"` // linear memory now (or when discarded)
	Discarded   time.Time `json:"discarded,omitzero"`
	// DiscardReason says why it was discarded: "idle", "trap", "panic", "timeout",
	// "oom", "recycled", "canceled", "warmup", "start" (failed to start), "closed"
	// (undeployed or replaced), "exited" (a command module's run that ended as commands
	// do) … and DiscardDetail the error, if any.
	DiscardReason string          `json:"discardReason,omitempty"`
	DiscardDetail string          `json:"discardDetail,omitempty"`
	Events        []InstanceEvent `json:"events,omitempty"`
}

// InstanceEvent is one point on an instance's timeline (created, initialised, warmed,
// first request, a failed request, discarded …); bounded per instance.
type InstanceEvent struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`
	Detail string    `json:"detail,omitempty"`
}

// InstancesList answers GET /v1/nodes/{node}/instances and
// GET /v1/deployments/{name}/instances: the timelines of every node asked, and the nodes
// that did not answer (offline, timed out, an agent too old to serve the request) with
// why, so a partial answer says it is partial.
type InstancesList struct {
	Instances   []InstanceTimeline `json:"instances"`
	Unreachable []NodeError        `json:"unreachable,omitempty"`
	Dropped     int                `json:"dropped,omitempty"`
}

// NodeError names a node that could not answer and why.
type NodeError struct {
	Node  string `json:"node"`
	Error string `json:"error"`
}

// MarshalWithin encodes reply as JSON within max bytes (a NATS payload limit): when its timelines do not fit, the
// discarded instances longest gone are left out first, then the live ones, newest
// first, each counted in Dropped.
func (reply InstancesReply) MarshalWithin(max int) []byte {
	if reply.Instances == nil {
		reply.Instances = []InstanceTimeline{}
	}
	b, err := json.Marshal(reply)
	if err != nil || len(b) <= max {
		return b
	}
	// Too large: size each timeline once, and leave out until the rest fits.
	tls := reply.Instances
	size := make([]int, len(tls))
	total := len(b)
	for i := range tls {
		s, _ := json.Marshal(tls[i])
		size[i] = len(s) + 1 // and its comma
	}
	order := make([]int, len(tls)) // the order to leave them out in
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		da, db := tls[a].Discarded, tls[b].Discarded
		switch {
		case da.IsZero() != db.IsZero(): // discarded ones first
			if da.IsZero() {
				return 1
			}
			return -1
		case !da.IsZero():
			return da.Compare(db) // the longest gone first
		}
		return tls[b].Created.Compare(tls[a].Created) // live: the newest first
	})
	drop := make([]bool, len(tls))
	for _, i := range order {
		if total <= max-32 { // room for Dropped's own digits
			break
		}
		drop[i] = true
		total -= size[i]
		reply.Dropped++
	}
	kept := make([]InstanceTimeline, 0, len(tls))
	for i, tl := range tls {
		if !drop[i] {
			kept = append(kept, tl)
		}
	}
	reply.Instances = kept
	b, _ = json.Marshal(reply)
	return b
}
