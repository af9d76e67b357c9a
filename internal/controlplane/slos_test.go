package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/slo"
)

// sharedSLIs stands in for the SLI store every replica reads (fleetstore builds the
// real one): slo.Intervals behind a lock.
type sharedSLIs struct {
	mu sync.Mutex
	iv *slo.Intervals
}

func (s *sharedSLIs) Series(sp *slo.Spec, from, to time.Time) []slo.Series {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.iv.Series(sp, from, to)
}

func (s *sharedSLIs) Counts(se slo.Series, sli slo.SLI, from, to time.Time) slo.Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.iv.Counts(se, sli, from, to)
}

// burn records six hours of 10 s intervals of hello on node-a and node-b ending at end,
// node-a failing every request over the last errFor.
func (s *sharedSLIs) burn(t *testing.T, end time.Time, errFor time.Duration) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for at := end.Add(-6 * time.Hour); !at.After(end); at = at.Add(10 * time.Second) {
		for _, node := range []string{"node-a", "node-b"} {
			c := slo.Counts{Good: 600, Total: 600}
			if node == "node-a" && end.Sub(at) < errFor {
				c.Good = 0
			}
			if err := s.iv.Add(slo.Series{App: "hello", Version: "0.1.0", Scope: node}, slo.ScopeNode, slo.SLI{Kind: slo.Availability}, at, c); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// webhook records the JSON bodies POSTed to it.
type webhook struct {
	srv  *httptest.Server
	mu   sync.Mutex
	msgs []map[string]any
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		json.Unmarshal(b, &m)
		w.mu.Lock()
		w.msgs = append(w.msgs, m)
		w.mu.Unlock()
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) saw(status string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, m := range w.msgs {
		if m["status"] == status {
			n++
		}
	}
	return n
}

const helloSLO = `name: hello-availability
app: hello
sli: availability
objective: 99.9
scope: node
runbook: https://runbooks.example/hello
`

// TestSLOAPI: applying SLO files over the API (refused with positions when wrong,
// accepted with a warning when their selector matches nothing), roles, and a 1000×
// burn on one node paging through the real engine to a webhook, shown in status,
// alerts and events, resolved when the SLO is deleted.
func TestSLOAPI(t *testing.T) {
	src := &sharedSLIs{iv: slo.NewIntervals()}
	hook := newWebhook(t)
	p := cptest.Start(t, controlplane.Config{SLISource: src, SLOInterval: 100 * time.Millisecond, AlertWebhooks: []string{hook.srv.URL}})
	ctx := context.Background()
	cl, err := client.New(p.API, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if !p.Server.Acting() {
			return fmt.Errorf("not leading yet")
		}
		return nil
	})

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name, source string
			want         []string
		}{
			{"unknown field", "name: a\napp: hello\nsli: availability\nobjectiv: 99.9\n", []string{"bad.yaml:4:1", "did you mean", "objective"}},
			{"objective 100", "name: a\napp: hello\nsli: availability\nobjective: 100\n", []string{"bad.yaml:4", "below 100 %"}},
			{"objective above 100", "name: a\napp: hello\nsli: availability\nobjective: 100.5\n", []string{"bad.yaml:4", "below 100 %"}},
			{"empty", " \n", []string{"empty"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, _, err := cl.ApplySLOs(ctx, v1.SLOApply{File: "bad.yaml", Source: tc.source})
				if !client.IsCode(err, v1.CodeBadRequest) {
					t.Fatalf("apply: %v, want bad_request", err)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
			})
		}
		if l, err := cl.ListSLOs(ctx); err != nil || len(l.SLOs) != 0 {
			t.Fatalf("after refusals: %+v, %v; want nothing written", l, err)
		}
	})

	t.Run("selector matching nothing", func(t *testing.T) {
		l, created, err := cl.ApplySLOs(ctx, v1.SLOApply{Source: "name: team-web\nselector: {team: web}\nsli: availability\nobjective: 99\n"})
		if err != nil || !created || len(l.SLOs) != 1 {
			t.Fatalf("apply: %+v %v %v", l, created, err)
		}
		if w := l.SLOs[0].Warnings; len(w) != 1 || !strings.Contains(w[0], "matches no deployment") {
			t.Errorf("warnings %q", w)
		}
		st, err := cl.SLOStatus(ctx, "team-web")
		if err != nil || len(st.SLO.Warnings) != 1 || len(st.Series) != 0 {
			t.Errorf("status %+v, %v", st, err)
		}
		// Applying it again changes nothing: same version.
		l, created, err = cl.ApplySLOs(ctx, v1.SLOApply{Source: "name: team-web\nselector: {team: web}\nsli: availability\nobjective: 99\n"})
		if err != nil || created || l.SLOs[0].Version != 1 {
			t.Errorf("re-apply: %+v %v %v", l, created, err)
		}
		if err := cl.DeleteSLO(ctx, "team-web"); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.GetSLO(ctx, "team-web"); !client.IsCode(err, v1.CodeNotFound) {
			t.Errorf("get after delete: %v", err)
		}
	})

	t.Run("viewer may read, not change", func(t *testing.T) {
		tok, err := cl.CreateToken(ctx, v1.TokenRequest{Role: v1.RoleViewer})
		if err != nil {
			t.Fatal(err)
		}
		viewer, _ := client.New(p.API, tok.Secret)
		if _, _, err := viewer.ApplySLOs(ctx, v1.SLOApply{Source: helloSLO}); !client.IsCode(err, v1.CodeForbidden) {
			t.Errorf("viewer apply: %v", err)
		}
		if _, err := viewer.ListSLOs(ctx); err != nil {
			t.Errorf("viewer list: %v", err)
		}
		if _, err := viewer.Alerts(ctx, false); err != nil {
			t.Errorf("viewer alerts: %v", err)
		}
	})

	t.Run("page", func(t *testing.T) {
		src.burn(t, time.Now(), time.Minute)
		if _, _, err := cl.ApplySLOs(ctx, v1.SLOApply{Source: helloSLO}); err != nil {
			t.Fatal(err)
		}
		var al *v1.AlertList
		fermiontest.WaitFor(t, 20*time.Second, func() error {
			al, err = cl.Alerts(ctx, false)
			if err != nil {
				return err
			}
			if len(al.Incidents) != 1 || al.Incidents[0].Severity != "page" {
				return fmt.Errorf("incidents %+v", al.Incidents)
			}
			return nil
		})
		a := al.Incidents[0].Alerts[0]
		if a.Scope != "node-a" || a.Phase != "firing" || a.Runbook != "https://runbooks.example/hello" || a.LongRate < 14.4 {
			t.Errorf("alert %+v", a)
		}
		fermiontest.WaitFor(t, 20*time.Second, func() error {
			if hook.saw("firing") == 0 {
				return fmt.Errorf("webhook not told of the page yet")
			}
			return nil
		})
		st, err := cl.SLOStatus(ctx, "hello-availability")
		if err != nil || len(st.Series) != 2 {
			t.Fatalf("status %+v, %v", st, err)
		}
		if a, b := st.Series[0], st.Series[1]; a.Scope != "node-a" || a.BudgetRemaining >= 1 || b.BudgetRemaining != 1 || len(a.Alerts) == 0 || len(a.Burn) != 4 {
			t.Errorf("status series %+v", st.Series)
		}
		evs, err := cl.Events(ctx, client.EventFilter{Type: v1.EventAlert})
		if err != nil || len(evs.Events) == 0 || !strings.Contains(evs.Events[len(evs.Events)-1].Message, "node-a") {
			t.Errorf("alert events %+v, %v", evs, err)
		}

		// A controlled rollout marks the version expected: the mark shows.
		if err := cl.MarkAlertsExpected(ctx, v1.AlertMark{App: "hello", Version: "0.1.0", Until: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := cl.MarkAlertsExpected(ctx, v1.AlertMark{App: "hello", Version: "0.1.0", Until: time.Now().Add(48 * time.Hour)}); !client.IsCode(err, v1.CodeBadRequest) {
			t.Errorf("a mark two days ahead: %v, want bad_request", err)
		}
		fermiontest.WaitFor(t, 20*time.Second, func() error {
			al, err := cl.Alerts(ctx, false)
			if err != nil {
				return err
			}
			if len(al.Marks) != 1 || len(al.Incidents) != 1 || !al.Incidents[0].Alerts[0].Expected {
				return fmt.Errorf("alerts %+v", al)
			}
			return nil
		})

		// Deleting the SLO resolves its alerts.
		if err := cl.DeleteSLO(ctx, "hello-availability"); err != nil {
			t.Fatal(err)
		}
		fermiontest.WaitFor(t, 20*time.Second, func() error {
			al, err := cl.Alerts(ctx, true)
			if err != nil {
				return err
			}
			if len(al.Incidents) != 1 || al.Incidents[0].Alerts[0].Phase != "resolved" {
				return fmt.Errorf("incidents %+v", al.Incidents)
			}
			return nil
		})
		fermiontest.WaitFor(t, 20*time.Second, func() error {
			if hook.saw("resolved") == 0 {
				return fmt.Errorf("webhook not told of the resolution yet")
			}
			return nil
		})
	})
}

// TestSLOFailoverCluster: in a 3-server cluster the leader pages; it is killed
// mid-window; the new leader continues from the stored state: the page is recorded
// once, the budget is the same, and the alert still fires.
func TestSLOFailoverCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server cluster")
	}
	src := &sharedSLIs{iv: slo.NewIntervals()}
	c := cptest.StartCluster(t, controlplane.Config{SLISource: src, SLOInterval: 200 * time.Millisecond})
	ctx := context.Background()
	lead := c.Leader(t, 20*time.Second)
	other := (lead + 1) % 3
	cl, err := client.New(c.Planes[other].API, c.Planes[other].Token)
	if err != nil {
		t.Fatal(err)
	}
	src.burn(t, time.Now(), time.Minute)
	if _, _, err := cl.ApplySLOs(ctx, v1.SLOApply{Source: helloSLO}); err != nil {
		t.Fatal(err)
	}
	// firingEvents counts the page firing events; right after a kill the event stream
	// may be electing its leader, so a read error is for the caller to poll through.
	firingEvents := func() (int, error) {
		evs, err := cl.Events(ctx, client.EventFilter{Type: v1.EventAlert})
		if err != nil {
			return 0, err
		}
		n := 0
		for _, e := range evs.Events {
			if strings.HasPrefix(e.Message, "page firing") {
				n++
			}
		}
		return n, nil
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		if n, err := firingEvents(); err != nil || n != 1 {
			return fmt.Errorf("%d page firing events, want 1 (%v)", n, err)
		}
		return nil
	})
	before, err := cl.SLOStatus(ctx, "hello-availability")
	if err != nil {
		t.Fatal(err)
	}

	c.Kill(lead)
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		for i, p := range c.Planes {
			if p != nil && p.Server.Acting() {
				st, err := cl.SLOStatus(ctx, "hello-availability")
				if err != nil {
					return err
				}
				if !st.Evaluated.After(before.Evaluated) {
					return fmt.Errorf("replica %d leads but has not evaluated yet", i)
				}
				return nil
			}
		}
		return fmt.Errorf("no new leader yet")
	})
	var after *v1.SLOStatus
	n := 0
	fermiontest.WaitFor(t, 30*time.Second, func() (err error) {
		if after, err = cl.SLOStatus(ctx, "hello-availability"); err != nil {
			return err
		}
		n, err = firingEvents()
		return err
	})
	if n != 1 {
		t.Errorf("%d page firing events after the failover, want 1 (no second page)", n)
	}
	for i := range after.Series {
		a, b := after.Series[i], before.Series[i]
		if a.Good != b.Good || a.Total != b.Total || a.BudgetRemaining != b.BudgetRemaining {
			t.Errorf("series %s: budget before %+v, after %+v", a.Scope, b, a)
		}
		if a.Scope == "node-a" && (len(a.Alerts) != 1 || a.Alerts[0].Phase != "firing" || !a.Alerts[0].Fired.Equal(b.Alerts[0].Fired)) {
			t.Errorf("node-a alerts after failover %+v, want the same firing page", a.Alerts)
		}
	}
}

// TestManifestSLOs: the [[slo]] of examples/hello is applied with its deployment, owned
// by it (refused to a standalone apply or delete), and deleted with it.
func TestManifestSLOs(t *testing.T) {
	p := cptest.Start(t, controlplane.Config{})
	ctx := context.Background()
	a, err := cptest.JoinSimAgent(ctx, p.NATSURL(), p.NodeToken(t), "edge-1", v1.Register{Capacity: v1.Resources{MemoryBytes: 4 << 30, MilliCPU: 2000, Instances: 64}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	cptest.WaitNodes(t, p.Server, 1, v1.NodeReady, 10*time.Second)
	image := p.PushExample(t, "hello", "v1", artifact.Meta{})
	cl, _ := client.New(p.API, p.Token)
	if _, _, err := cl.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Nodes: 1}, client.CreateOnly()); err != nil {
		t.Fatal(err)
	}
	s, err := cl.GetSLO(ctx, "hello-availability")
	if err != nil || s.Owner != "hello" || s.App != "hello" || s.Scope != "node" || s.Objective != "99.9" || len(s.Warnings) != 0 {
		t.Fatalf("SLO %+v, %v", s, err)
	}
	if _, _, err := cl.ApplySLOs(ctx, v1.SLOApply{Source: "name: hello-availability\napp: hello\nsli: availability\nobjective: 99\n"}); !client.IsCode(err, v1.CodeConflict) {
		t.Errorf("standalone apply over an owned SLO: %v", err)
	}
	if err := cl.DeleteSLO(ctx, "hello-availability"); !client.IsCode(err, v1.CodeConflict) {
		t.Errorf("standalone delete of an owned SLO: %v", err)
	}
	// Deploying the same image again changes nothing.
	if _, _, err := cl.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Nodes: 1}, client.Unconditional()); err != nil {
		t.Fatal(err)
	}
	if s, _ := cl.GetSLO(ctx, "hello-availability"); s == nil || s.Version != 1 {
		t.Errorf("after a re-deploy: %+v", s)
	}
	if _, err := cl.DeleteDeployment(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.GetSLO(ctx, "hello-availability"); !client.IsCode(err, v1.CodeNotFound) {
		t.Errorf("SLO after its deployment was deleted: %v", err)
	}
}
