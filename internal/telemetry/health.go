package telemetry

import (
	"strings"
	"time"

	v1 "fermion.dev/fermion/api/v1"
)

// The exporter's health as the agent reports it with every heartbeat (api/v1
// TelemetryHealth): the spool's backlog, the last failure and the drops, read from
// what the spool tracks anyway.

// spoolHealth is guarded by Spool.mu.
type spoolHealth struct {
	lastErr   string
	lastErrAt time.Time
	lastOK    time.Time // the last export (live or replayed) the collector took
}

var dropReasons = [...]string{DropFull, DropRejected, DropUnreadable}

// drop counts a lost payload in the metric and in the health report.
func (s *Spool) drop(reason string) {
	s.dropped.WithLabelValues(reason).Inc()
	for i, r := range dropReasons {
		if r == reason {
			s.drops[i].Add(1)
		}
	}
}

// noteFailure records why an export (live or replayed) did not go through.
func (s *Spool) noteFailure(reason string) {
	if len(reason) > v1.MaxTelemetryError {
		reason = reason[:v1.MaxTelemetryError-3] + "..."
	}
	s.mu.Lock()
	s.health.lastErr, s.health.lastErrAt = reason, time.Now()
	s.mu.Unlock()
}

// Health is the spool's state now: spooling while anything waits on disk, failing
// when the last attempt failed and nothing waits (the payload could not be kept),
// ok otherwise.
func (s *Spool) Health() v1.TelemetryHealth {
	s.mu.Lock()
	h := v1.TelemetryHealth{BacklogBytes: s.bytes, BacklogPayloads: len(s.files),
		LastError: s.health.lastErr, LastErrorAt: s.health.lastErrAt, LastExportAt: s.health.lastOK}
	s.mu.Unlock()
	switch {
	case h.BacklogPayloads > 0:
		h.Exporter = v1.ExporterSpooling
	case !h.LastErrorAt.IsZero() && h.LastErrorAt.After(h.LastExportAt):
		h.Exporter = v1.ExporterFailing
	default:
		h.Exporter = v1.ExporterOK
	}
	h.LastError = toValidUTF8(h.LastError)
	for i, r := range dropReasons {
		if n := s.drops[i].Load(); n > 0 {
			if h.Dropped == nil {
				h.Dropped = map[string]uint64{}
			}
			h.Dropped[r] = uint64(n)
		}
	}
	return h
}

// Health is the span export's state for the agent's heartbeat: off without an OTLP
// endpoint, unmonitored when exporting without a spool (the SDK keeps its failures to
// itself), else the spool's.
func (t *Tracing) Health() *v1.TelemetryHealth {
	switch {
	case t == nil || !t.Exporting:
		return &v1.TelemetryHealth{Exporter: v1.ExporterOff}
	case t.spool == nil:
		return &v1.TelemetryHealth{Exporter: v1.ExporterUnmonitored}
	}
	h := t.spool.Health()
	return &h
}

// toValidUTF8 keeps an error (perhaps cut mid-rune above) valid for the API.
func toValidUTF8(s string) string { return strings.ToValidUTF8(s, "?") }
