package v1

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// --- Telemetry export health (issue 16: the debug view's exporter health) ---
//
// An agent reports its OTLP exporter's state with every heartbeat; the server keeps the
// latest with the node's lease (no extra write) and shows it on GET /v1/nodes as
// Node.Telemetry.

// Exporter states (TelemetryHealth.Exporter).
const (
	ExporterOK          = "ok"          // the last export went through, nothing waits
	ExporterSpooling    = "spooling"    // the collector is away: exports wait on disk
	ExporterFailing     = "failing"     // the last export failed and nothing could be kept
	ExporterOff         = "off"         // no OTLP endpoint configured: spans stay in-process
	ExporterUnmonitored = "unmonitored" // exporting without a spool, whose counts these are
)

// MaxTelemetryError bounds TelemetryHealth.LastError in bytes.
const MaxTelemetryError = 512

// TelemetryHealth is a node's span export as its agent last saw it.
type TelemetryHealth struct {
	Exporter        string            `json:"exporter"`
	LastError       string            `json:"lastError,omitempty"`
	LastErrorAt     time.Time         `json:"lastErrorAt,omitzero"`
	LastExportAt    time.Time         `json:"lastExportAt,omitzero"` // the last export the collector took
	BacklogBytes    int64             `json:"backlogBytes"`
	BacklogPayloads int               `json:"backlogPayloads"`
	Dropped         map[string]uint64 `json:"dropped,omitempty"` // payloads lost since the agent started, by reason
}

// Validate checks a report from an agent.
func (h *TelemetryHealth) Validate() *Error {
	bad := func(field, format string, args ...any) *Error {
		return &Error{Code: CodeBadRequest, Field: "telemetry." + field, Message: fmt.Sprintf(format, args...)}
	}
	switch h.Exporter {
	case ExporterOK, ExporterSpooling, ExporterFailing, ExporterOff, ExporterUnmonitored:
	default:
		return bad("exporter", "%q: want ok, spooling, failing, off or unmonitored", h.Exporter)
	}
	if len(h.LastError) > MaxTelemetryError || !utf8.ValidString(h.LastError) {
		return bad("lastError", "want UTF-8 of at most %d bytes", MaxTelemetryError)
	}
	if h.BacklogBytes < 0 {
		return bad("backlogBytes", "%d: a backlog is never negative", h.BacklogBytes)
	}
	if h.BacklogPayloads < 0 {
		return bad("backlogPayloads", "%d: a backlog is never negative", h.BacklogPayloads)
	}
	if len(h.Dropped) > 8 {
		return bad("dropped", "at most 8 reasons")
	}
	for r := range h.Dropped {
		if r == "" || len(r) > 32 {
			return bad("dropped", "reason %q: want 1 to 32 bytes", r)
		}
	}
	return nil
}
