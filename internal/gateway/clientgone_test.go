package gateway_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// TestClientGoneCancelsGuest: a client that closes its connection while a guest runs
// ends that guest, end to end through the gateway's own server (whose background read
// waits off the socket for a grace period first): the request is counted as canceled
// (499) and the guest's slot is freed.
func TestClientGoneCancelsGuest(t *testing.T) {
	t.Parallel() // mostly waits for a sleeping guest
	metrics := telemetry.NewMetrics("test")
	e := sharedEngine(t)
	slow := loadGuest(t, e, "examples/testdata/faults/slow", func(s *sandbox.Spec) {
		s.Name = "gone"
		s.Limits.Timeout = 10 * time.Minute // only the client's leaving can end it
	})
	g := gateway.New(gateway.Config{Metrics: metrics, Telemetry: true, DrainTimeout: 5 * time.Second})
	setRoutes(t, g, gateway.Route{Prefix: "/slow", Target: slow})
	ln := gateway.ServeListening(t, g)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /slow?d=1h HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		if slow.Stats().Busy != 1 {
			return errors.New("request not in flight yet")
		}
		return nil
	})
	c.Close()
	waitMetric(t, metrics, "fermion_request_errors_total", map[string]string{"function": "gone", "reason": telemetry.ReasonCanceled}, 1)
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		if st := slow.Stats(); st.Busy != 0 {
			return errors.New("guest still busy")
		}
		return nil
	})
}
