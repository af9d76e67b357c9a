package notify

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"fermion.dev/fermion/internal/fermiontest"
)

// TestHammerSend sends from many goroutines while the receiver delivers: every alert's
// last delivered state is the last one sent, and the sent metric matches what arrived.
func TestHammerSend(t *testing.T) {
	rec := newRecorder(t)
	n, err := New(Config{Receivers: []Receiver{{Name: "am", Kind: Alertmanager, URL: rec.srv.URL, ResendInterval: time.Hour}}, BatchSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	start(t, n)
	const senders, rounds, alerts = 8, 100, 5
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for i := range rounds {
				a := testAlert(g*alerts + i%alerts)
				if i >= rounds-alerts || i%2 == 1 {
					a.EndsAt = t0.Add(time.Duration(i) * time.Second)
				}
				n.Send(a)
			}
		})
	}
	wg.Wait()
	fermiontest.WaitFor(t, 20*time.Second, func() error {
		last := map[string]Alert{}
		count := 0
		for _, b := range rec.requests() {
			var as []Alert
			if err := json.Unmarshal(b, &as); err != nil {
				return err
			}
			count += len(as)
			for _, a := range as {
				last[a.Labels["n"]] = a
			}
		}
		if len(last) != senders*alerts {
			return fmt.Errorf("%d alerts delivered, want %d", len(last), senders*alerts)
		}
		for k, a := range last {
			// Alert k's final state is the resolution sent in round rounds-alerts+k%alerts.
			var num int
			fmt.Sscan(k, &num)
			if want := t0.Add(time.Duration(rounds-alerts+num%alerts) * time.Second); !a.EndsAt.Equal(want) {
				return fmt.Errorf("alert %s: last delivered endsAt %v, want its final resolution at %v", k, a.EndsAt, want)
			}
		}
		if sent := testutil.ToFloat64(n.m.sent.WithLabelValues("am")); int(sent) != count {
			return fmt.Errorf("sent metric %v, %d alerts arrived", sent, count)
		}
		return nil
	})
}
