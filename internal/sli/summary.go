package sli

import (
	"maps"
	"slices"
	"time"
)

// Key names what a summary describes: one route of one version of a deployment.
// Route is the manifest's route pattern, never the request's path: the aggregator keeps
// state per key, so its cardinality must be that of the configuration.
type Key struct {
	Deployment string
	Version    string
	Route      string
}

// Summary is one interval's SLIs for one Key on one node. Counts cover [Start, End).
// A receiver dedupes backfilled or re-sent summaries by (Node, Seq, Key): Seq numbers a
// node's intervals and is the same for every summary flushed together.
type Summary struct {
	Node  string
	Key   Key
	Seq   uint64
	Start time.Time
	End   time.Time

	// Status counts responses by class: Status[0] is 1xx … Status[4] is 5xx. Codes
	// outside 100–599 are counted in OtherStatus.
	Status      [5]uint64
	OtherStatus uint64
	// Latency holds every request's latency; its Count equals Requests().
	Latency *Sketch
	// ColdStarts counts requests that waited for a new instance.
	ColdStarts uint64
	// InstanceStarts and Discards count instances started and thrown away, by reason
	// (e.g. "scale", "prewarm"; "trap", "timeout", "idle").
	InstanceStarts map[string]uint64
	Discards       map[string]uint64
	// MemoryMaxBytes is the most linear memory the version's instances held in the
	// interval (the agent samples its pool's total at each flush).
	MemoryMaxBytes uint64
	// CPUTime is the time the version's guests ran on a CPU.
	CPUTime time.Duration
	// LimitRejections counts requests refused by a limit, by reason
	// (e.g. "concurrency", "body_size", "rate").
	LimitRejections map[string]uint64
	OutboundErrors  uint64
	PolicyDenials   uint64
	// TelemetryBacklog is the node's telemetry spool depth (items) at the interval's
	// end; the same in every summary of one flush.
	TelemetryBacklog uint64
	// Slowest are the interval's slowest requests, slowest first (at most
	// Config.Exemplars, and what fits in MaxExemplarBytes on the wire).
	Slowest []Exemplar
}

// Requests is the number of requests answered in the interval.
func (s *Summary) Requests() uint64 {
	var n uint64 = s.OtherStatus
	for _, c := range s.Status {
		n += c
	}
	return n
}

// Errors is the number of 5xx responses: the availability SLI's bad events.
func (s *Summary) Errors() uint64 { return s.Status[4] }

// Clone returns a deep copy of s.
func (s *Summary) Clone() Summary {
	c := *s
	if s.Latency != nil {
		c.Latency = s.Latency.Clone()
	}
	c.InstanceStarts = maps.Clone(s.InstanceStarts)
	c.Discards = maps.Clone(s.Discards)
	c.LimitRejections = maps.Clone(s.LimitRejections)
	c.Slowest = slices.Clone(s.Slowest)
	return c
}

// statusClass maps an HTTP status to its index in Summary.Status, or -1.
func statusClass(code int) int {
	if code < 100 || code > 599 {
		return -1
	}
	return code/100 - 1
}
