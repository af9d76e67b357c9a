package v1_test

import (
	"strings"
	"testing"

	v1 "fermion.dev/fermion/api/v1"
)

func TestTelemetryHealthValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		h     v1.TelemetryHealth
		field string // "" when valid
	}{
		{"ok", v1.TelemetryHealth{Exporter: v1.ExporterOK}, ""},
		{"spooling with drops", v1.TelemetryHealth{Exporter: v1.ExporterSpooling, LastError: "503", BacklogBytes: 1 << 30, BacklogPayloads: 9,
			Dropped: map[string]uint64{"full": 1, "rejected": 2, "unreadable": 3}}, ""},
		{"off", v1.TelemetryHealth{Exporter: v1.ExporterOff}, ""},
		{"unmonitored", v1.TelemetryHealth{Exporter: v1.ExporterUnmonitored}, ""},
		{"no state", v1.TelemetryHealth{}, "telemetry.exporter"},
		{"unknown state", v1.TelemetryHealth{Exporter: "OK"}, "telemetry.exporter"},
		{"error at the bound", v1.TelemetryHealth{Exporter: v1.ExporterFailing, LastError: strings.Repeat("e", v1.MaxTelemetryError)}, ""},
		{"error past the bound", v1.TelemetryHealth{Exporter: v1.ExporterFailing, LastError: strings.Repeat("e", v1.MaxTelemetryError+1)}, "telemetry.lastError"},
		{"error not UTF-8", v1.TelemetryHealth{Exporter: v1.ExporterFailing, LastError: "\xff"}, "telemetry.lastError"},
		{"negative payloads", v1.TelemetryHealth{Exporter: v1.ExporterOK, BacklogPayloads: -1}, "telemetry.backlogPayloads"},
		{"too many reasons", v1.TelemetryHealth{Exporter: v1.ExporterOK, Dropped: map[string]uint64{"a": 1, "b": 1, "c": 1, "d": 1, "e": 1, "f": 1, "g": 1, "h": 1, "i": 1}}, "telemetry.dropped"},
		{"long reason", v1.TelemetryHealth{Exporter: v1.ExporterOK, Dropped: map[string]uint64{strings.Repeat("r", 33): 1}}, "telemetry.dropped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.h.Validate()
			switch {
			case tc.field == "" && e != nil:
				t.Fatalf("refused: %v", e)
			case tc.field != "" && (e == nil || e.Field != tc.field || e.Code != v1.CodeBadRequest):
				t.Fatalf("got %+v, want bad_request on %s", e, tc.field)
			}
		})
	}
}
