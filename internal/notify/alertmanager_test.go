package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/slo"
)

// startAlertmanager runs Alertmanager on a loopback port (0: a free one), routing every
// alert to webhookURL within a second; it skips the test when Alertmanager is absent.
func startAlertmanager(t *testing.T, webhookURL string, port int) string {
	t.Helper()
	return fermiontest.StartAlertmanagerAt(t, fermiontest.NeedAlertmanager(t), webhookURL, port)
}

// gettableAlert is the part of Alertmanager's GET /api/v2/alerts answer the test reads.
type gettableAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

func listAlerts(base string) ([]gettableAlert, error) {
	resp, err := http.Get(base + "/api/v2/alerts")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var as []gettableAlert
	if err := json.NewDecoder(resp.Body).Decode(&as); err != nil {
		return nil, fmt.Errorf("decode alerts: %w", err)
	}
	return as, nil
}

// TestAlertmanager sends an SLO page to a real Alertmanager through the v2 API, sees it
// active with its labels, annotations and runbook, resolves it, and sees Alertmanager
// drop it from its active alerts and notify its own webhook of the resolution.
func TestAlertmanager(t *testing.T) {
	hook := newRecorder(t)
	base := startAlertmanager(t, hook.srv.URL, 0)
	n, err := New(Config{Receivers: []Receiver{{Name: "am", Kind: Alertmanager, URL: base}}, MinBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	now := time.Now().UTC().Truncate(time.Second)
	sa := sloAlert(slo.Page, slo.Firing)
	sa.Since, sa.FiredAt = now.Add(-time.Minute), now
	fire, ok := FromSLO(slo.Transition{Alert: sa, From: slo.Pending, To: slo.Firing}, "http://127.0.0.1/slo")
	if !ok {
		t.Fatal("firing page not notified")
	}
	n.Send(fire)
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		as, err := listAlerts(base)
		if err != nil {
			return err
		}
		if len(as) != 1 {
			return fmt.Errorf("%d alerts in Alertmanager, want 1", len(as))
		}
		a := as[0]
		if a.Labels["alertname"] != AlertNamePage || a.Labels["scope"] != "node-1" || a.Labels["function"] != "hello" || a.Status.State != "active" {
			return fmt.Errorf("alert = %+v", a)
		}
		if a.Annotations["runbook_url"] != "https://runbooks.example/hello" || !a.StartsAt.Equal(now) || !a.EndsAt.After(time.Now()) {
			return fmt.Errorf("alert = %+v", a)
		}
		return nil
	})
	fermiontest.WaitFor(t, 30*time.Second, func() error { return hookSaw(hook, "firing") })

	sa.Phase, sa.ResolvedAt = slo.Resolved, time.Now().UTC()
	res, ok := FromSLO(slo.Transition{Alert: sa, From: slo.Firing, To: slo.Resolved}, "http://127.0.0.1/slo")
	if !ok || !res.Resolved() {
		t.Fatal("resolution not notified")
	}
	n.Send(res)
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		as, err := listAlerts(base)
		if err != nil {
			return err
		}
		if len(as) != 0 {
			return fmt.Errorf("%d alerts still active", len(as))
		}
		return nil
	})
	fermiontest.WaitFor(t, 30*time.Second, func() error { return hookSaw(hook, "resolved") })
}

// hookSaw checks that Alertmanager's own webhook got a notification with status.
func hookSaw(r *recorder, status string) error {
	for _, b := range r.requests() {
		var m struct {
			Status string `json:"status"`
			Alerts []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		if json.Unmarshal(b, &m) == nil && m.Status == status && len(m.Alerts) == 1 && m.Alerts[0].Labels["slo"] == "hello-availability" {
			return nil
		}
	}
	return fmt.Errorf("Alertmanager has not notified its webhook of a %s alert yet (%d notifications)", status, len(r.requests()))
}

// TestAlertmanagerDown: alerts sent while Alertmanager is not running stay queued and
// are retried; once it starts, they arrive.
func TestAlertmanagerDown(t *testing.T) {
	fermiontest.NeedAlertmanager(t)
	hook := newRecorder(t)
	port := fermiontest.Ports(t, 1)[0]
	n, err := New(Config{
		Receivers:  []Receiver{{Name: "am", Kind: Alertmanager, URL: fmt.Sprintf("http://127.0.0.1:%d", port)}},
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, n)
	a := testAlert(1)
	a.StartsAt = time.Now().UTC()
	n.Send(a)
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if got := testutil.ToFloat64(n.m.failed.WithLabelValues("am")); got < 2 {
			return fmt.Errorf("failed = %v, want retries", got)
		}
		return nil
	})
	if got := testutil.ToFloat64(n.m.queued.WithLabelValues("am")); got != 1 {
		t.Errorf("queue length while down = %v, want 1", got)
	}
	base := startAlertmanager(t, hook.srv.URL, port)
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		as, err := listAlerts(base)
		if err != nil {
			return err
		}
		if len(as) != 1 || as[0].Labels["n"] != "1" {
			return fmt.Errorf("alerts in Alertmanager: %+v", as)
		}
		return nil
	})
	if got := testutil.ToFloat64(n.m.dropped.WithLabelValues("am")); got != 0 {
		t.Errorf("dropped = %v, want 0", got)
	}
}
