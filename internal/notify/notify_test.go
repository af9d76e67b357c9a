package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/slo"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func sloAlert(sev slo.Severity, phase slo.Phase) slo.Alert {
	return slo.Alert{
		AlertID: slo.AlertID{Key: slo.Key{SLO: "hello-availability", App: "hello", Version: "v2", Scope: "node-1"}, Severity: sev},
		Phase:   phase, Since: t0, FiredAt: t0.Add(time.Minute),
		Tier: slo.Tier{Severity: sev, Factor: slo.Ratio{Num: 144, Den: 10}, Long: time.Hour, Short: 5 * time.Minute},
		Long: 1000, Short: 1000, Runbook: "https://runbooks.example/hello",
	}
}

func TestFromSLO(t *testing.T) {
	firing := sloAlert(slo.Page, slo.Firing)
	expected := firing
	expected.Expected = true
	resolved := sloAlert(slo.Ticket, slo.Resolved)
	resolved.ResolvedAt = t0.Add(time.Hour)
	noRunbook := firing
	noRunbook.Runbook = ""
	cases := []struct {
		name      string
		tr        slo.Transition
		ok        bool
		alertname string
		endsAt    time.Time
		runbook   string
	}{
		{"pending", slo.Transition{Alert: sloAlert(slo.Page, slo.Pending), From: slo.Inactive, To: slo.Pending}, false, "", time.Time{}, ""},
		{"pending to inactive", slo.Transition{Alert: sloAlert(slo.Page, slo.Inactive), From: slo.Pending, To: slo.Inactive}, false, "", time.Time{}, ""},
		{"page fires", slo.Transition{Alert: firing, From: slo.Pending, To: slo.Firing}, true, AlertNamePage, time.Time{}, "https://runbooks.example/hello"},
		{"expected page", slo.Transition{Alert: expected, From: slo.Pending, To: slo.Firing}, false, "", time.Time{}, ""},
		{"ticket resolves", slo.Transition{Alert: resolved, From: slo.Firing, To: slo.Resolved}, true, AlertNameTicket, t0.Add(time.Hour), "https://runbooks.example/hello"},
		{"no runbook", slo.Transition{Alert: noRunbook, From: slo.Pending, To: slo.Firing}, true, AlertNamePage, time.Time{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, ok := FromSLO(c.tr, "http://cp.example/slo")
			if ok != c.ok {
				t.Fatalf("ok = %v, want %v", ok, c.ok)
			}
			if !ok {
				return
			}
			want := map[string]string{"alertname": c.alertname, "severity": string(c.tr.Alert.Severity), "slo": "hello-availability", "function": "hello", "version": "v2", "scope": "node-1"}
			if fmt.Sprint(a.Labels) != fmt.Sprint(want) {
				t.Errorf("labels = %v, want %v", a.Labels, want)
			}
			if a.Annotations["runbook_url"] != c.runbook {
				t.Errorf("runbook_url = %q, want %q", a.Annotations["runbook_url"], c.runbook)
			}
			if !strings.Contains(a.Annotations["summary"], "hello-availability") {
				t.Errorf("summary = %q", a.Annotations["summary"])
			}
			if !a.StartsAt.Equal(t0.Add(time.Minute)) || !a.EndsAt.Equal(c.endsAt) || a.GeneratorURL != "http://cp.example/slo" {
				t.Errorf("startsAt %v endsAt %v generatorURL %q", a.StartsAt, a.EndsAt, a.GeneratorURL)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	ok := Receiver{Name: "am", Kind: Alertmanager, URL: "http://127.0.0.1:9093"}
	cases := []struct {
		name string
		rs   []Receiver
		want string
	}{
		{"none", nil, "no receivers"},
		{"bad name", []Receiver{{Name: "a b", Kind: Webhook, URL: "http://x"}}, "receiver name"},
		{"bad url", []Receiver{{Name: "w", Kind: Webhook, URL: "ftp://x"}}, "not an http(s) address"},
		{"no host", []Receiver{{Name: "w", Kind: Webhook, URL: "http://"}}, "not an http(s) address"},
		{"bad kind", []Receiver{{Name: "w", Kind: "pager", URL: "http://x"}}, `kind "pager"`},
		{"negative resend", []Receiver{{Name: "w", Kind: Webhook, URL: "http://x", ResendInterval: -1}}, "negative"},
		{"twice", []Receiver{ok, ok}, "given twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(Config{Receivers: c.rs})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

// recorder is a loopback HTTP receiver that keeps every request body and answers with
// status() (200 when nil).
type recorder struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	status func() int
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		st := http.StatusOK
		if r.status != nil {
			st = r.status()
		}
		r.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) setStatus(f func() int) {
	r.mu.Lock()
	r.status = f
	r.mu.Unlock()
}

func (r *recorder) requests() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bodies)
}

// start runs n until the test ends.
func start(t *testing.T, n *Notifier) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func testAlert(i int) Alert {
	return Alert{
		Labels:      map[string]string{"alertname": AlertNamePage, "function": "hello", "n": fmt.Sprint(i)},
		Annotations: map[string]string{"summary": "burning", "runbook_url": "https://runbooks.example/hello"},
		StartsAt:    t0,
	}
}

func TestWebhookGetsJSON(t *testing.T) {
	rec := newRecorder(t)
	n, err := New(Config{Receivers: []Receiver{{Name: "hook", Kind: Webhook, URL: rec.srv.URL + "/alerts"}}})
	if err != nil {
		t.Fatal(err)
	}
	start(t, n)
	// A resolution of an alert the webhook never heard of is not news: not sent.
	stale := testAlert(9)
	stale.EndsAt = t0
	n.Send(stale)
	n.Send(testAlert(1))
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if len(rec.requests()) < 1 {
			return fmt.Errorf("no request yet")
		}
		return nil
	})
	resolved := testAlert(1)
	resolved.EndsAt = t0.Add(time.Hour)
	n.Send(resolved)
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if got := len(rec.requests()); got < 2 {
			return fmt.Errorf("%d requests, want 2", got)
		}
		return nil
	})
	reqs := rec.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2 (the stale resolution must not be sent)", len(reqs))
	}
	for i, want := range []string{"firing", "resolved"} {
		var m WebhookMessage
		if err := json.Unmarshal(reqs[i], &m); err != nil {
			t.Fatalf("request %d: %v\n%s", i, err, reqs[i])
		}
		if m.Version != "1" || m.Receiver != "hook" || m.Status != want || len(m.Alerts) != 1 {
			t.Fatalf("request %d = %+v, want one %s alert", i, m, want)
		}
		a := m.Alerts[0]
		if a.Status != want || a.Labels["n"] != "1" || a.Annotations["runbook_url"] != "https://runbooks.example/hello" || !a.StartsAt.Equal(t0) {
			t.Errorf("request %d alert = %+v", i, a)
		}
		if want == "firing" && strings.Contains(string(reqs[i]), "endsAt") {
			t.Errorf("a firing webhook alert carries endsAt: %s", reqs[i])
		}
		if want == "resolved" && !a.EndsAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("resolved endsAt = %v", a.EndsAt)
		}
	}
	if got := testutil.ToFloat64(n.m.sent.WithLabelValues("hook")); got != 2 {
		t.Errorf("sent = %v, want 2", got)
	}
}

// TestReceiverDown: while the receiver answers 503, alerts stay queued and are retried
// with backoff; past the queue's bound the oldest are dropped and counted; when it
// recovers, the newest are delivered.
func TestReceiverDown(t *testing.T) {
	rec := newRecorder(t)
	rec.setStatus(func() int { return http.StatusServiceUnavailable })
	reg := prometheus.NewRegistry()
	n, err := New(Config{
		Receivers:  []Receiver{{Name: "am", Kind: Alertmanager, URL: rec.srv.URL, ResendInterval: time.Hour}},
		QueueSize:  2,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(n.m.dropped.WithLabelValues("am")); got != 0 {
		t.Fatalf("dropped starts at %v", got)
	}
	start(t, n)
	n.Send(testAlert(1))
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if got := len(rec.requests()); got < 3 {
			return fmt.Errorf("%d attempts, want retries", got)
		}
		return nil
	})
	n.Send(testAlert(2), testAlert(3), testAlert(4), testAlert(5))
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if got := testutil.ToFloat64(n.m.dropped.WithLabelValues("am")); got != 3 {
			return fmt.Errorf("dropped = %v, want 3", got)
		}
		return nil
	})
	if got := testutil.ToFloat64(n.m.failed.WithLabelValues("am")); got < 2 {
		t.Errorf("failed = %v, want at least 2", got)
	}
	attempts := len(rec.requests())
	rec.setStatus(nil)
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if got := testutil.ToFloat64(n.m.sent.WithLabelValues("am")); got != 2 {
			return fmt.Errorf("sent = %v, want 2", got)
		}
		return nil
	})
	delivered := map[string]bool{}
	for _, b := range rec.requests()[attempts:] {
		var as []Alert
		if err := json.Unmarshal(b, &as); err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			delivered[a.Labels["n"]] = true
		}
	}
	if fmt.Sprint(delivered) != "map[4:true 5:true]" {
		t.Errorf("delivered after recovery: %v, want the newest two (4 and 5)", delivered)
	}
	if got := testutil.ToFloat64(n.m.queued.WithLabelValues("am")); got != 0 {
		t.Errorf("queue length = %v, want 0", got)
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 4 {
		t.Errorf("registered metric families: %d, %v; want 4", len(mfs), err)
	}
}

// TestRefusedIsDropped: a 400 means the request itself is wrong; it is dropped, not
// retried forever.
func TestRefusedIsDropped(t *testing.T) {
	rec := newRecorder(t)
	rec.setStatus(func() int { return http.StatusBadRequest })
	n, err := New(Config{Receivers: []Receiver{{Name: "am", Kind: Alertmanager, URL: rec.srv.URL}}, MinBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start(t, n)
	n.Send(testAlert(1))
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if got := testutil.ToFloat64(n.m.dropped.WithLabelValues("am")); got != 1 {
			return fmt.Errorf("dropped = %v, want 1", got)
		}
		return nil
	})
	if got := len(rec.requests()); got != 1 {
		t.Errorf("%d attempts, want 1", got)
	}
}

// TestResendWhileFiring: an Alertmanager receiver gets a firing alert again every
// ResendInterval, with endsAt four intervals after now; a resolution stops the re-sends.
func TestResendWhileFiring(t *testing.T) {
	rec := newRecorder(t)
	const every = 20 * time.Millisecond
	n, err := New(Config{
		Receivers: []Receiver{{Name: "am", Kind: Alertmanager, URL: rec.srv.URL, ResendInterval: every}},
		Now:       func() time.Time { return t0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, n)
	n.Send(testAlert(1))
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if got := len(rec.requests()); got < 3 {
			return fmt.Errorf("%d posts, want the first and two re-sends", got)
		}
		return nil
	})
	for _, b := range rec.requests() {
		var as []Alert
		if err := json.Unmarshal(b, &as); err != nil || len(as) != 1 {
			t.Fatalf("body %s: %v", b, err)
		}
		if !as[0].EndsAt.Equal(t0.Add(4 * every)) {
			t.Errorf("endsAt = %v, want now + 4 × resend interval", as[0].EndsAt)
		}
	}
	resolved := testAlert(1)
	resolved.EndsAt = t0.Add(time.Minute)
	n.Send(resolved)
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		reqs := rec.requests()
		if !strings.Contains(string(reqs[len(reqs)-1]), t0.Add(time.Minute).Format(time.RFC3339)) {
			return fmt.Errorf("resolution not sent yet")
		}
		return nil
	})
	n.receivers[0].mu.Lock()
	active := len(n.receivers[0].active)
	n.receivers[0].mu.Unlock()
	if active != 0 {
		t.Errorf("%d alerts still active after resolution: they would be re-sent", active)
	}
}

func TestCloseStopsRun(t *testing.T) {
	n, err := New(Config{Receivers: []Receiver{{Name: "w", Kind: Webhook, URL: "http://127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(context.Background()) }()
	n.Close()
	n.Close() // idempotent
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestTimeoutRetried: a receiver that never answers costs one Timeout, then the alert
// is retried.
func TestTimeoutRetried(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			// Hang until the notifier gives up; the server notices the closed
			// connection only once the body has been read.
			io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	n, err := New(Config{Receivers: []Receiver{{Name: "w", Kind: Webhook, URL: srv.URL}}, Timeout: 50 * time.Millisecond, MinBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start(t, n)
	n.Send(testAlert(1))
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if got := testutil.ToFloat64(n.m.sent.WithLabelValues("w")); got != 1 {
			return fmt.Errorf("sent = %v, want 1", got)
		}
		return nil
	})
	if got := testutil.ToFloat64(n.m.failed.WithLabelValues("w")); got != 1 {
		t.Errorf("failed = %v, want 1 (the timed-out attempt)", got)
	}
}

// TestDocWebhookExample keeps the webhook body in docs/slo.md what Fermion sends.
func TestDocWebhookExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/slo.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "## Notifications")
	_, rest, ok2 := strings.Cut(rest, "```json\n")
	block, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/slo.md has no json block under Notifications")
	}
	dec := json.NewDecoder(strings.NewReader(block))
	dec.DisallowUnknownFields()
	var m WebhookMessage
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("docs/slo.md webhook example: %v", err)
	}
	if m.Version != "1" || len(m.Alerts) != 1 || m.Alerts[0].Labels["alertname"] != AlertNamePage || m.Alerts[0].Annotations["runbook_url"] == "" {
		t.Errorf("docs example = %+v", m)
	}
}
