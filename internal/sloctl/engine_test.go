package sloctl

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/notify"
	"fermion.dev/fermion/internal/slo"
)

const nodeSLO = `name: hello-availability
app: hello
sli: availability
objective: 99.9
scope: node
runbook: https://runbooks.example/hello
`

const globalSLO = `name: hello-global
app: hello
sli: availability
objective: 99.9
`

// feed records one 10 s interval ending at end for each node: 600 requests, bad of
// them failed.
func feed(t *testing.T, src *lockedSource, per slo.ScopeKind, end time.Time, bad map[string]int64, scopes ...string) {
	t.Helper()
	for _, sc := range scopes {
		src.add(t, slo.Series{App: "hello", Version: "1.0.0", Scope: sc}, per, end, slo.Counts{Good: 600 - bad[sc], Total: 600})
	}
}

func pagesFired(tr []slo.Transition, to slo.Phase) []slo.Alert {
	var out []slo.Alert
	for _, x := range tr {
		if x.To == to && x.Alert.Severity == slo.Page {
			out = append(out, x.Alert)
		}
	}
	return out
}

// TestPageAt1000xReachesAlertmanager: a node-scoped 99.9 % SLO, one node of two failing
// every request (a 1000× burn). The page fires at the first tick at which the SLIs
// show the workbook's 14.4× condition on both windows (under a minute of errors), only
// for that node; it reaches a real Alertmanager; it resolves after the errors stop and
// Alertmanager hears of that too.
func TestPageAt1000xReachesAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Alertmanager")
	}
	hook := newHook(t)
	am := alertmanager(t, hook.srv.URL)
	b := startJetStream(t)
	src := &lockedSource{iv: slo.NewIntervals()}
	t0 := time.Now().Add(-24 * time.Hour).Truncate(10 * time.Second)
	n := startNotifier(t, notify.Receiver{Name: "am", Kind: notify.Alertmanager, URL: am})
	r := newRig(t, b, src, t0, n, App{Name: "hello"})
	r.apply(t, nodeSLO)
	r.lease.lead(7)
	sp, _ := r.c.specs.get("hello-availability")

	// Six hours of good traffic on both nodes (the longest page window), then node-a
	// fails everything.
	now := t0
	for range 2160 {
		now = now.Add(10 * time.Second)
		feed(t, src, slo.ScopeNode, now, nil, "node-a", "node-b")
	}
	r.clock.set(now)
	if tr := r.tick(t); len(tr) != 0 {
		t.Fatalf("healthy fleet: transitions %+v", tr)
	}
	errStart := now
	var paged time.Time
	for i := 0; paged.IsZero(); i++ {
		if i > 12 {
			t.Fatal("no page after 2 minutes of a 1000× burn")
		}
		now = now.Add(10 * time.Second)
		feed(t, src, slo.ScopeNode, now, map[string]int64{"node-a": 600}, "node-a", "node-b")
		r.clock.set(now)
		holds := func(w time.Duration, f slo.Ratio) bool {
			return slo.AtLeast(src.Counts(slo.Series{App: "hello", Version: "1.0.0", Scope: "node-a"}, sp.Spec.SLI, now.Add(-w), now), sp.Spec.Objective, f)
		}
		want := false
		for _, tier := range sp.Spec.Tiers {
			want = want || tier.Severity == slo.Page && holds(tier.Long, tier.Factor) && holds(tier.Short, tier.Factor)
		}
		fired := pagesFired(r.tick(t), slo.Firing)
		if len(fired) > 0 != want {
			t.Fatalf("at %s of errors: page fired %v, the SLIs say the condition holds %v", now.Sub(errStart), len(fired) > 0, want)
		}
		if len(fired) > 0 {
			if len(fired) != 1 || fired[0].Scope != "node-a" {
				t.Fatalf("fired %+v, want one page for node-a", fired)
			}
			paged = now
		}
	}
	if d := paged.Sub(errStart); d > time.Minute {
		t.Errorf("paged %s after the errors started, want under a minute", d)
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		if hook.count("node-a", "page", "firing") == 0 {
			return errors.New("Alertmanager has not notified of the node-a page yet")
		}
		return nil
	})
	if hook.count("node-b", "page", "firing") != 0 {
		t.Error("node-b paged")
	}
	al, e := r.c.Alerts(context.Background(), false)
	if e != nil || len(al.Incidents) != 1 || al.Incidents[0].Severity != "page" || al.Incidents[0].Runbooks[0] != "https://runbooks.example/hello" {
		t.Fatalf("alerts = %+v, %v", al, e)
	}
	if got := testutil.ToFloat64(r.c.m.alerts.WithLabelValues("page", "firing")); got != 1 {
		t.Errorf("fermion_slo_alerts{page,firing} = %v", got)
	}
	if got := testutil.ToFloat64(r.c.m.budget.WithLabelValues("hello-availability", "hello", "node-a")); got >= 1 {
		t.Errorf("node-a's budget remaining = %v, want spent", got)
	}

	// Errors stop: the short window forgets them within 5 minutes and the page resolves.
	var resolved bool
	for i := 0; !resolved; i++ {
		if i > 200 {
			t.Fatal("page not resolved 33 minutes after the errors stopped")
		}
		now = now.Add(10 * time.Second)
		feed(t, src, slo.ScopeNode, now, nil, "node-a", "node-b")
		r.clock.set(now)
		resolved = len(pagesFired(r.tick(t), slo.Resolved)) == 1
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		if hook.count("node-a", "page", "resolved") == 0 {
			return errors.New("Alertmanager has not notified of the resolution yet")
		}
		return nil
	})
}

// TestTwentyXPagesAfter43Minutes: 2 % errors against 99.9 % (20×) page when the hour
// window's error ratio reaches 1.44 %: after 1 h × 14.4 / 20 = 43.2 min, and not a tick
// before. A fake clock, 10 s intervals and ticks.
func TestTwentyXPagesAfter43Minutes(t *testing.T) {
	b := startJetStream(t)
	src := &lockedSource{iv: slo.NewIntervals()}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r := newRig(t, b, src, t0, nil, App{Name: "hello"})
	r.apply(t, globalSLO)
	r.lease.lead(3)
	now := t0
	for range 2160 { // six hours: the 6× tier's long window holds no gap
		now = now.Add(10 * time.Second)
		feed(t, src, slo.ScopeGlobal, now, nil, "global")
	}
	errStart := now
	for {
		now = now.Add(10 * time.Second)
		if now.Sub(errStart) > time.Hour {
			t.Fatal("no page within an hour of a 20× burn")
		}
		feed(t, src, slo.ScopeGlobal, now, map[string]int64{"global": 12}, "global") // 2 %
		r.clock.set(now)
		if fired := pagesFired(r.tick(t), slo.Firing); len(fired) > 0 {
			d := now.Sub(errStart)
			// 43.2 min of errors is 259.2 intervals: the 260th brings the hour to 1.44 %.
			if d != 260*10*time.Second {
				t.Fatalf("paged after %s, want 43m20s (the first 10 s interval past 43.2 min)", d)
			}
			if fired[0].Tier.Factor != (slo.Ratio{Num: 144, Den: 10}) {
				t.Errorf("fired through tier %+v, want 14.4×", fired[0].Tier)
			}
			return
		}
	}
}

// TestFailoverNoDoublePage: the leader pages, dies; a successor with a newer term reads
// the stored state: no transition (no second page), the same budget, and Alertmanager
// notifies its receiver once. The deposed leader, back from a pause, cannot write.
func TestFailoverNoDoublePage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Alertmanager")
	}
	hook := newHook(t)
	am := alertmanager(t, hook.srv.URL)
	b := startJetStream(t)
	src := &lockedSource{iv: slo.NewIntervals()}
	t0 := time.Now().Add(-24 * time.Hour).Truncate(10 * time.Second)
	a := newRig(t, b, src, t0, startNotifier(t, notify.Receiver{Name: "am", Kind: notify.Alertmanager, URL: am}), App{Name: "hello"})
	a.apply(t, nodeSLO)
	a.lease.lead(5)
	now := t0
	for i := range 2200 {
		now = now.Add(10 * time.Second)
		bad := map[string]int64{}
		if i >= 2160 {
			bad["node-a"] = 600
		}
		feed(t, src, slo.ScopeNode, now, bad, "node-a", "node-b")
	}
	a.clock.set(now)
	if fired := pagesFired(a.tick(t), slo.Firing); len(fired) != 1 {
		t.Fatalf("leader fired %+v, want one page", fired)
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		if hook.count("node-a", "page", "firing") != 1 {
			return fmt.Errorf("%d firing notifications, want 1", hook.count("node-a", "page", "firing"))
		}
		return nil
	})
	before, e := a.c.Status(context.Background(), "hello-availability")
	if e != nil {
		t.Fatal(e)
	}

	// The leader dies mid-window; a successor takes over with a newer term.
	a.lease.acting.Store(false)
	bbN, bbReg := startNotifierReg(t, notify.Receiver{Name: "am", Kind: notify.Alertmanager, URL: am})
	bb := newRig(t, b, src, now, bbN, App{Name: "hello"})
	bb.lease.lead(9)
	now = now.Add(10 * time.Second)
	feed(t, src, slo.ScopeNode, now, map[string]int64{"node-a": 600}, "node-a", "node-b")
	bb.clock.set(now)
	if tr := bb.tick(t); len(tr) != 0 {
		t.Fatalf("successor's first tick: transitions %+v, want none (the page already fires)", tr)
	}
	after, e := bb.c.Status(context.Background(), "hello-availability")
	if e != nil {
		t.Fatal(e)
	}
	for i, s := range after.Series {
		p := before.Series[i]
		// One more interval: the same budget plus its 600 requests, nothing lost.
		if s.Scope != p.Scope || s.Total != p.Total+600 || len(s.Alerts) != len(p.Alerts) {
			t.Errorf("series %s: before %+v, after %+v", s.Scope, p, s)
		}
	}
	// The successor re-sent the page (its notifier delivered it); Alertmanager
	// deduplicates it by its labels. Once the errors stop and the page resolves, the
	// receiver has heard of it firing exactly once.
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		if got := sentCount(t, bbReg); got < 1 {
			return fmt.Errorf("successor's notifier sent %v alerts, want the re-sent page", got)
		}
		return nil
	})
	for i := 0; ; i++ {
		if i > 200 {
			t.Fatal("page not resolved 33 minutes after the errors stopped")
		}
		now = now.Add(10 * time.Second)
		feed(t, src, slo.ScopeNode, now, nil, "node-a", "node-b")
		bb.clock.set(now)
		if len(pagesFired(bb.tick(t), slo.Resolved)) == 1 {
			break
		}
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		if hook.count("node-a", "page", "resolved") == 0 {
			return errors.New("no resolution from Alertmanager yet")
		}
		return nil
	})
	if got := hook.count("node-a", "page", "firing"); got != 1 {
		hook.mu.Lock()
		t.Errorf("Alertmanager notified %d times of the node-a page, want 1: %+v", got, hook.msgs)
		hook.mu.Unlock()
	}

	// The old leader resumes believing it leads: its write is refused.
	a.lease.acting.Store(true)
	a.clock.set(now)
	_, err := a.c.Tick(context.Background())
	if !errors.Is(err, ErrDeposed) {
		t.Fatalf("deposed leader's tick: %v, want ErrDeposed", err)
	}
	rec, _, _ := bb.c.readState(context.Background())
	if rec.Term != 9 {
		t.Errorf("state term = %d, want the successor's 9", rec.Term)
	}
}

// metricValue reads one series of a metric from reg (labels as name=value pairs).
func metricValue(t *testing.T, reg interface {
	Gather() ([]*dto.MetricFamily, error)
}, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// TestAlertmanagerDown: pages raised while Alertmanager is down are queued and retried;
// past the queue's bound the oldest are dropped and counted; once Alertmanager is up,
// what is queued arrives.
func TestAlertmanagerDown(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Alertmanager")
	}
	fermiontest.NeedAlertmanager(t)
	port := fermiontest.Ports(t, 1)[0]
	reg := prometheus.NewRegistry()
	n, err := notify.New(notify.Config{
		Receivers: []notify.Receiver{{Name: "am", Kind: notify.Alertmanager, URL: fmt.Sprintf("http://127.0.0.1:%d", port)}},
		QueueSize: 2, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	b := startJetStream(t)
	src := &lockedSource{iv: slo.NewIntervals()}
	t0 := time.Now().Add(-24 * time.Hour).Truncate(10 * time.Second)
	r := newRig(t, b, src, t0, n, App{Name: "hello"})
	r.apply(t, nodeSLO)
	r.lease.lead(1)
	nodes := []string{"node-a", "node-b", "node-c"}
	now := t0
	for i := range 2200 {
		now = now.Add(10 * time.Second)
		bad := map[string]int64{}
		if i >= 2160 {
			bad = map[string]int64{"node-a": 600, "node-b": 600, "node-c": 600}
		}
		feed(t, src, slo.ScopeNode, now, bad, nodes...)
	}
	r.clock.set(now)
	if fired := pagesFired(r.tick(t), slo.Firing); len(fired) != 3 {
		t.Fatalf("fired %d pages, want 3", len(fired))
	}
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if got := metricValue(t, reg, "fermion_notify_alerts_failed_total", "receiver", "am"); got < 2 {
			return fmt.Errorf("failed = %v, want retries", got)
		}
		return nil
	})
	if got := metricValue(t, reg, "fermion_notify_alerts_dropped_total", "receiver", "am"); got != 1 {
		t.Errorf("dropped = %v, want 1 (three pages, a queue of two)", got)
	}
	if got := metricValue(t, reg, "fermion_notify_queue_length", "receiver", "am"); got != 2 {
		t.Errorf("queue length = %v, want 2", got)
	}
	hook := newHook(t)
	am := alertmanagerAt(t, hook.srv.URL, port)
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		if hook.count("node-b", "page", "firing") == 0 || hook.count("node-c", "page", "firing") == 0 {
			return fmt.Errorf("the queued pages have not arrived at %s yet", am)
		}
		return nil
	})
}
