package controlplane_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/fermiontest"
)

// A node's span export health travels with its heartbeats and shows on the node in
// the API; a malformed report is refused with the field at fault, and the node keeps
// the last good one.
func TestNodeTelemetryHealthFromHeartbeats(t *testing.T) {
	f := newFleet(t, map[string]map[string]string{"edge-1": nil})
	ctx := context.Background()
	a := f.agents["edge-1"]

	n, err := f.c.GetNode(ctx, "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	if n.Telemetry != nil {
		t.Fatalf("a node that never reported its telemetry shows %+v", n.Telemetry)
	}

	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	want := &v1.TelemetryHealth{Exporter: v1.ExporterSpooling, LastError: "collector answered 503 Service Unavailable",
		LastErrorAt: at, LastExportAt: at.Add(-time.Minute), BacklogBytes: 12 << 20, BacklogPayloads: 340,
		Dropped: map[string]uint64{"full": 7}}
	a.SetTelemetry(want)
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		l, err := f.c.ListNodes(ctx)
		if err != nil {
			return err
		}
		for _, n := range l.Nodes {
			if n.Name == "edge-1" && reflect.DeepEqual(n.Telemetry, want) {
				return nil
			}
		}
		return fmt.Errorf("edge-1's telemetry in the node list: %+v", l.Nodes)
	})

	for _, tc := range []struct {
		name  string
		h     v1.TelemetryHealth
		field string
	}{
		{"unknown state", v1.TelemetryHealth{Exporter: "sulking"}, "telemetry.exporter"},
		{"negative backlog", v1.TelemetryHealth{Exporter: v1.ExporterOK, BacklogBytes: -1}, "telemetry.backlogBytes"},
		{"long error", v1.TelemetryHealth{Exporter: v1.ExporterFailing, LastError: string(make([]byte, 600))}, "telemetry.lastError"},
		{"empty drop reason", v1.TelemetryHealth{Exporter: v1.ExporterOK, Dropped: map[string]uint64{"": 1}}, "telemetry.dropped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reply, err := a.Heartbeat(ctx, v1.Heartbeat{Telemetry: &tc.h})
			if err != nil {
				t.Fatal(err)
			}
			if reply.Error == nil || reply.Error.Code != v1.CodeBadRequest || reply.Error.Field != tc.field {
				t.Fatalf("reply error %+v, want bad_request on %s", reply.Error, tc.field)
			}
		})
	}
	n, err = f.c.GetNode(ctx, "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(n.Telemetry, want) {
		t.Fatalf("after refused reports edge-1 shows %+v, want the last good one", n.Telemetry)
	}
}
