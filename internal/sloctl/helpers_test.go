package sloctl

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/notify"
	"fermion.dev/fermion/internal/slo"
)

// lockedSource makes slo.Intervals safe for the controller's concurrent reads.
type lockedSource struct {
	mu sync.Mutex
	iv *slo.Intervals
}

func (l *lockedSource) Series(sp *slo.Spec, from, to time.Time) []slo.Series {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.iv.Series(sp, from, to)
}

func (l *lockedSource) Counts(s slo.Series, sli slo.SLI, from, to time.Time) slo.Counts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.iv.Counts(s, sli, from, to)
}

func (l *lockedSource) add(t *testing.T, s slo.Series, per slo.ScopeKind, end time.Time, c slo.Counts) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.iv.Add(s, per, slo.SLI{Kind: slo.Availability}, end, c); err != nil {
		t.Fatal(err)
	}
}

// clock is a fake clock the tests move.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// lease is a leadership the tests hand over.
type lease struct {
	term   atomic.Uint64
	acting atomic.Bool
}

func (l *lease) get() (uint64, bool) { return l.term.Load(), l.acting.Load() }

func (l *lease) lead(term uint64) { l.term.Store(term); l.acting.Store(true) }

// startJetStream runs an embedded NATS server with JetStream and opens the buckets.
func startJetStream(t *testing.T) Buckets {
	t.Helper()
	ctx := context.Background()
	eng, err := engine.Start(ctx, engine.Config{DataDir: t.TempDir(), SyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	b, err := OpenBuckets(ctx, eng.JetStream(), 1)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type rig struct {
	c     *Controller
	src   *lockedSource
	clock *clock
	lease *lease
	reg   *prometheus.Registry
}

// newRig starts a controller over buckets (shared by the controllers of one test) with
// a fake clock at t0 and an optional notifier, running until the test ends.
func newRig(t *testing.T, b Buckets, src *lockedSource, t0 time.Time, n *notify.Notifier, apps ...App) *rig {
	t.Helper()
	r := &rig{src: src, clock: &clock{now: t0}, lease: &lease{}, reg: prometheus.NewRegistry()}
	c, err := New(Config{Buckets: b, Source: src, Lead: r.lease.get, Notifier: n, Now: r.clock.Now,
		Interval: time.Hour, Registerer: r.reg, Apps: func() []App { return apps }, Server: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	r.c = c
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := c.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) apply(t *testing.T, yaml string) {
	t.Helper()
	if _, _, e := r.c.Apply(context.Background(), "test.yaml", yaml, "", "test"); e != nil {
		t.Fatalf("apply: %v", e)
	}
}

func (r *rig) tick(t *testing.T) []slo.Transition {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := r.c.Tick(ctx)
	if err != nil {
		t.Fatalf("tick at %s: %v", r.clock.Now().Format(time.TimeOnly), err)
	}
	return tr
}

// alertmanager runs Debian's prometheus-alertmanager on a loopback port, routing every
// alert at once to hook, and returns its base URL; it skips the test when absent.
func alertmanager(t *testing.T, hook string) string { return alertmanagerAt(t, hook, 0) }

// alertmanagerAt is alertmanager on a given port (0: a free one).
func alertmanagerAt(t *testing.T, hook string, port int) string {
	t.Helper()
	return fermiontest.StartAlertmanagerAt(t, fermiontest.NeedAlertmanager(t), hook, port)
}

// hookRecorder is Alertmanager's (or Fermion's) webhook receiver.
type hookRecorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	msgs []hookMsg
}

type hookMsg struct {
	Status string `json:"status"`
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

func newHook(t *testing.T) *hookRecorder {
	h := &hookRecorder{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m hookMsg
		json.Unmarshal(b, &m)
		h.mu.Lock()
		h.msgs = append(h.msgs, m)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// count is how many notifications carried an alert of scope and severity in status.
func (h *hookRecorder) count(scope, severity, status string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		for _, a := range m.Alerts {
			if a.Labels["scope"] == scope && a.Labels["severity"] == severity && a.Status == status {
				n++
			}
		}
	}
	return n
}

func startNotifier(t *testing.T, receivers ...notify.Receiver) *notify.Notifier {
	t.Helper()
	n, err := notify.New(notify.Config{Receivers: receivers, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func startNotifierReg(t *testing.T, receivers ...notify.Receiver) (*notify.Notifier, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	n, err := notify.New(notify.Config{Receivers: receivers, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return n, reg
}

// sentCount reads fermion_notify_alerts_sent_total summed over receivers.
func sentCount(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == "fermion_notify_alerts_sent_total" {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
