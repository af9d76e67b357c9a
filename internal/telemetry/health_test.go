package telemetry

import (
	"net/http"
	"strings"
	"testing"

	v1 "fermion.dev/fermion/api/v1"
)

// The health an agent reports follows the spool through an outage: ok, then spooling
// with the backlog and the collector's answer, drops counted past the cap, failing
// when an export cannot even be kept, and ok again once the backlog is replayed.
func TestSpoolHealthThroughAnOutage(t *testing.T) {
	c := newCollector(t)
	dir := t.TempDir()
	one := int64(len(spoolMagic) + len("application/x-protobuf\ngzip\n") + len("payload-0"))
	s := newTestSpool(t, dir, 2*one)

	if h := s.Health(); h.Exporter != v1.ExporterOK || h.BacklogPayloads != 0 || h.LastError != "" {
		t.Fatalf("a new spool: %+v, want ok and empty", h)
	}
	export(t, s, c.srv.URL, "payload-0")
	if h := s.Health(); h.Exporter != v1.ExporterOK || h.LastExportAt.IsZero() {
		t.Fatalf("after a sent export: %+v, want ok with the export's time", h)
	}

	c.status.Store(http.StatusServiceUnavailable)
	for _, p := range []string{"payload-1", "payload-2", "payload-3"} {
		export(t, s, c.srv.URL, p)
	}
	h := s.Health()
	if h.Exporter != v1.ExporterSpooling || h.BacklogPayloads != 2 || h.BacklogBytes != 2*one {
		t.Fatalf("during the outage: %+v, want spooling 2 payloads, %d bytes", h, 2*one)
	}
	if !strings.Contains(h.LastError, "503") || h.LastErrorAt.IsZero() {
		t.Fatalf("during the outage the last error is %q, want the collector's 503", h.LastError)
	}
	if h.Dropped[DropFull] != 1 {
		t.Fatalf("dropped %v, want 1 full past a cap of two payloads", h.Dropped)
	}
	if e := h.Validate(); e != nil {
		t.Fatalf("the report does not validate: %v", e)
	}

	// An export larger than the whole spool cannot be kept: failing, until one goes.
	req, _ := http.NewRequest(http.MethodPost, c.srv.URL+"/v1/traces", strings.NewReader(strings.Repeat("x", int(4*one))))
	(&http.Client{Transport: s}).Do(req)
	if h := s.Health(); !strings.Contains(h.LastError, "not spooled") {
		t.Fatalf("after an export too large to keep: %+v, want its reason", h)
	}

	c.status.Store(0)
	export(t, s, c.srv.URL, "payload-4") // a live success starts the replay
	waitUntil(t, "the backlog replayed", func() bool { return s.Health().BacklogPayloads == 0 })
	if h := s.Health(); h.Exporter != v1.ExporterOK || h.Dropped[DropFull] != 2 { // the one past the cap, the one too large
		t.Fatalf("after the outage: %+v, want ok with both drops still counted", h)
	}
}

func TestTracingHealthWithoutASpool(t *testing.T) {
	for _, tc := range []struct {
		name string
		tr   *Tracing
		want string
	}{
		{"nil", nil, v1.ExporterOff},
		{"no endpoint", &Tracing{}, v1.ExporterOff},
		{"no spool", &Tracing{Exporting: true}, v1.ExporterUnmonitored},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if h := tc.tr.Health(); h.Exporter != tc.want {
				t.Fatalf("%+v, want %s", h, tc.want)
			}
		})
	}
}
