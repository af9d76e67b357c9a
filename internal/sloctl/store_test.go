package sloctl

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/slo"
)

// TestApply covers the spec store: positioned refusals that write nothing, versions,
// the warning of a selector matching nothing, PUT-one's name check, and SLOs owned by
// a deployment's manifest.
func TestApply(t *testing.T) {
	b := startJetStream(t)
	r := newRig(t, b, &lockedSource{iv: slo.NewIntervals()}, time.Now(), nil, App{Name: "hello", Labels: map[string]string{"team": "edge"}})
	ctx := context.Background()
	for _, tc := range []struct {
		name, source, only string
		code               string
		want               []string
	}{
		{"unknown field", "name: a\napp: hello\nsli: availability\nobjective: 99.9\nwindw: 30d\n", "", v1.CodeBadRequest, []string{"f.yaml:5:1", `did you mean "window"`}},
		{"objective 100", "name: a\napp: hello\nsli: availability\nobjective: 100\n", "", v1.CodeBadRequest, []string{"f.yaml:4:12", "below 100 %"}},
		{"second doc bad", "name: a\napp: hello\nsli: availability\nobjective: 99\n---\nname: b\napp: hello\nsli: availibility\nobjective: 99\n", "", v1.CodeBadRequest, []string{"f.yaml:8", `did you mean "availability"`}},
		{"wrong name for PUT one", "name: a\napp: hello\nsli: availability\nobjective: 99\n", "b", v1.CodeBadRequest, []string{"request is for SLO b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, e := r.c.Apply(ctx, "f.yaml", tc.source, tc.only, "test")
			if e == nil || e.Code != tc.code {
				t.Fatalf("apply: %v, want %s", e, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(e.Message, w) {
					t.Errorf("message %q does not say %q", e.Message, w)
				}
			}
			if l := r.c.List(); len(l.SLOs) != 0 {
				t.Errorf("refused apply wrote %+v", l.SLOs)
			}
		})
	}

	out, created, e := r.c.Apply(ctx, "", "name: web\nselector: {team: web}\nsli: availability\nobjective: 99.5\n---\nname: edge\nselector: {team: edge}\nsli: {kind: latency, threshold: 250ms}\nobjective: 99\n", "", "test")
	if e != nil || !created || len(out) != 2 {
		t.Fatalf("apply: %+v %v %v", out, created, e)
	}
	if len(out[0].Warnings) != 1 || !strings.Contains(out[0].Warnings[0], "team=web matches no deployment") || len(out[1].Warnings) != 0 {
		t.Errorf("warnings %q / %q", out[0].Warnings, out[1].Warnings)
	}
	if out[1].SLI != "latency<250ms" || out[1].Objective != "99" || out[0].Objective != "99.5" || out[0].Window != "30d" {
		t.Errorf("views %+v", out)
	}
	// A change is a new version; the same file again is not.
	out, _, e = r.c.Apply(ctx, "", "name: web\nselector: {team: web}\nsli: availability\nobjective: 99.9\n", "web", "test")
	if e != nil || out[0].Version != 2 {
		t.Fatalf("changed apply: %+v %v", out, e)
	}
	out, created, _ = r.c.Apply(ctx, "", "name: web\nselector: {team: web}\nsli: availability\nobjective: 99.9\n", "web", "test")
	if created || out[0].Version != 2 {
		t.Errorf("same apply: version %d created %v", out[0].Version, created)
	}
	// Deleted and re-created, it continues its numbering.
	if e := r.c.Delete(ctx, "web", "", "test"); e != nil {
		t.Fatal(e)
	}
	out, _, _ = r.c.Apply(ctx, "", "name: web\nselector: {team: web}\nsli: availability\nobjective: 99\n", "", "test")
	if out[0].Version != 3 {
		t.Errorf("re-created at version %d, want 3", out[0].Version)
	}

	// Owned SLOs: only their owner changes or deletes them.
	specs, err := slo.Decode("m.toml", []byte("name: hello-owned\napp: hello\nsli: availability\nobjective: 99.9\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, e := r.c.ApplySpecs(ctx, specs, "hello", "deploy"); e != nil {
		t.Fatal(e)
	}
	if _, _, e := r.c.Apply(ctx, "", "name: hello-owned\napp: hello\nsli: availability\nobjective: 99\n", "", "test"); e == nil || e.Code != v1.CodeConflict || !strings.Contains(e.Message, "deployment hello declares it") {
		t.Errorf("apply over an owned SLO: %v", e)
	}
	if e := r.c.Delete(ctx, "hello-owned", "", "test"); e == nil || e.Code != v1.CodeConflict {
		t.Errorf("delete an owned SLO: %v", e)
	}
	if err := r.c.DeleteOwned(ctx, "hello", "deploy"); err != nil {
		t.Fatal(err)
	}
	if _, e := r.c.Get("hello-owned"); e == nil || e.Code != v1.CodeNotFound {
		t.Errorf("owned SLO after its deployment went: %v", e)
	}
	if _, e := r.c.Get("edge"); e != nil {
		t.Errorf("an SLO applied on its own went with the deployment: %v", e)
	}
}

// TestMarkExpected: a marked version's page fires without notifying (an expected
// incident is not raised); the mark is bounded and removable.
func TestMarkExpected(t *testing.T) {
	b := startJetStream(t)
	src := &lockedSource{iv: slo.NewIntervals()}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r := newRig(t, b, src, t0, nil, App{Name: "hello"})
	r.apply(t, globalSLO)
	r.lease.lead(1)
	ctx := context.Background()
	if e := r.c.Mark(ctx, v1.AlertMark{App: "hello", Version: "1.0.0", Until: t0.Add(48 * time.Hour)}); e == nil || e.Field != "until" {
		t.Errorf("mark two days ahead: %v", e)
	}
	if e := r.c.Mark(ctx, v1.AlertMark{App: "hello", Version: "1.0.0", Until: t0.Add(2 * time.Hour)}); e != nil {
		t.Fatal(e)
	}
	now := t0
	for i := range 400 {
		now = now.Add(10 * time.Second)
		bad := map[string]int64{}
		if i >= 360 {
			bad["global"] = 600
		}
		feed(t, src, slo.ScopeGlobal, now, bad, "global")
	}
	r.clock.set(now)
	fired := pagesFired(r.tick(t), slo.Firing)
	if len(fired) != 1 || !fired[0].Expected || fired[0].Notify() {
		t.Fatalf("fired %+v, want one expected page", fired)
	}
	al, _ := r.c.Alerts(ctx, false)
	if len(al.Marks) != 1 || len(al.Incidents) != 1 || al.Incidents[0].Severity != "pending" || !al.Incidents[0].Alerts[0].Expected {
		t.Errorf("alerts %+v", al)
	}
	// Unmarked, the next tick un-expects it.
	if e := r.c.Mark(ctx, v1.AlertMark{App: "hello", Version: "1.0.0"}); e != nil {
		t.Fatal(e)
	}
	r.tick(t)
	al, _ = r.c.Alerts(ctx, false)
	if len(al.Marks) != 0 || al.Incidents[0].Severity != "page" {
		t.Errorf("after unmark: %+v", al)
	}
}

// TestApplyUnchangedAfterRestart: a controller started on buckets that already hold a
// spec (a control plane restarted) answers an apply that changes nothing at once. It
// used to wait for a revision its cache had loaded but not counted, so the deploy of
// an app whose [[slo]] was unchanged hung after a restart.
func TestApplyUnchangedAfterRestart(t *testing.T) {
	b := startJetStream(t)
	const spec = "name: hello-availability\napp: hello\nsli: availability\nobjective: 99.9\n"
	first := newRig(t, b, &lockedSource{iv: slo.NewIntervals()}, time.Now(), nil, App{Name: "hello"})
	first.apply(t, spec)
	again := newRig(t, b, &lockedSource{iv: slo.NewIntervals()}, time.Now(), nil, App{Name: "hello"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, created, e := again.c.Apply(ctx, "", spec, "", "test")
	if ctx.Err() != nil {
		t.Fatal("an unchanged apply on a restarted controller waited until its context ended")
	}
	if e != nil || created || len(out) != 1 || out[0].Version != 1 {
		t.Fatalf("apply: %+v created=%v %v, want version 1 unchanged", out, created, e)
	}
}
