package sandbox_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

const guestStatus = "examples/testdata/faults/status"

// warmups scrapes fermion_instance_warmups_total{function=name,result=result}; 0 when
// the series does not exist.
func warmups(m *telemetry.Metrics, name, result string) float64 {
	mfs, err := m.Registry.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "fermion_instance_warmups_total" {
			continue
		}
	series:
		for _, s := range mf.GetMetric() {
			for _, lp := range s.GetLabel() {
				if map[string]string{"function": name, "version": version, "result": result}[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			return s.GetCounter().GetValue()
		}
	}
	return 0
}

// TestWarmupOnEveryNewInstance: the hook runs on the instances Load prewarms and on the
// replacement of one discarded after a request, and the instances it warmed serve.
func TestWarmupOnEveryNewInstance(t *testing.T) {
	e, m := newEngine(t)
	s := spec("warm", reactor(t, guestPanic))
	s.Warmup, s.WarmupTimeout = "/warmup", 2*time.Second
	s.Scaling.MinWarm = 2
	f := load(t, e, s)
	wantMetric(t, "warmups ok after load", warmups(m, "warm", telemetry.WarmupOK), 2)
	wantOK(t, f, get("/hello"), "ok")
	resp, err := invoke(t, f, get("/?panic=1"))
	wantError(t, resp, err, 500, telemetry.ReasonPanic)
	// The discarded instance is replaced in the background, warmed first.
	fermiontest.WaitFor(t, 5*time.Second, func() error {
		if n := warmups(m, "warm", telemetry.WarmupOK); n != 3 {
			return errors.New("replacement not warmed yet")
		}
		return nil
	})
	wantStats(t, f, sandbox.Stats{Warm: 2, Total: 2})
	wantMetric(t, "warmup discards", discards(m, "warm", telemetry.ReasonWarmup), 0)
	if f.WarmupFailing() != nil {
		t.Error("WarmupFailing after successes")
	}
}

// TestWarmupMinWarmZero: a hook makes Load start one instance even with min_warm 0, so
// the hook is tried before any traffic.
func TestWarmupMinWarmZero(t *testing.T) {
	e, m := newEngine(t)
	s := spec("warm0", reactor(t, guestStatus))
	s.Warmup = "/warmup?status=204"
	f := load(t, e, s)
	wantMetric(t, "warmups ok", warmups(m, "warm0", telemetry.WarmupOK), 1)
	wantStats(t, f, sandbox.Stats{Warm: 1, Total: 1})
	wantOK(t, f, get("/?status=200"), "200")
}

// TestWarmupFailureFailsLoad: a non-2xx answer, a trap and a hook past its timeout each
// fail the load with a *WarmupError saying which, and discard the instance.
func TestWarmupFailureFailsLoad(t *testing.T) {
	for _, tc := range []struct {
		name, guest, path string
		timeout           time.Duration
		want              string
		status            int
	}{
		{"non-2xx", guestStatus, "/warmup?status=500", time.Second, "GET /warmup?status=500 answered 500, not 2xx: 500", 500},
		{"redirect", guestStatus, "/warmup?status=302", time.Second, "answered 302", 302},
		{"trap", guestPanic, "/warmup?panic=1", time.Second, "GET /warmup?panic=1 failed: function panicked", 0},
		{"timeout", guestSlow, "/warmup?d=30s", 200 * time.Millisecond, "GET /warmup?d=30s did not answer within warmup_timeout 200ms", 0},
		{"spinning past the timeout", guestSlow, "/warmup?spin=30s", 200 * time.Millisecond, "did not answer within warmup_timeout 200ms", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _, logs := newEngineWithLogs(t)
			s := spec("bad", reactor(t, tc.guest))
			if tc.timeout < time.Second {
				// Compile the module first (a load without the hook), so that the time
				// below is the hook's: a cold compile under -race on a busy machine
				// took minutes and failed this check for no fault of the timeout.
				f, err := e.Load(context.Background(), s)
				if err != nil {
					t.Fatal(err)
				}
				f.Close(context.Background())
			}
			s.Warmup, s.WarmupTimeout = tc.path, tc.timeout
			s.Scaling.MinWarm = 1
			start := time.Now()
			_, err := e.Load(context.Background(), s)
			var we *sandbox.WarmupError
			if !errors.As(err, &we) {
				t.Fatalf("Load: %v, want a *WarmupError", err)
			}
			if !strings.Contains(err.Error(), tc.want) || we.Status != tc.status {
				t.Fatalf("Load: %v (status %d), want %q (status %d)", err, we.Status, tc.want, tc.status)
			}
			if tc.timeout < time.Second && time.Since(start) > 20*time.Second {
				t.Errorf("a 200ms warmup timeout took %s to fail the load", time.Since(start))
			}
			// The failed load forgets the version's series; the log keeps the reason.
			if !strings.Contains(logs.String(), "instance failed its warmup hook; discarded") {
				t.Errorf("no warmup failure logged:\n%s", logs.String())
			}
		})
	}
}

// TestWarmupOnCommandModule: a command module has no instance to warm; Load says so.
func TestWarmupOnCommandModule(t *testing.T) {
	e, _ := newEngine(t)
	s := spec("cmd", command(t, guestCGI))
	s.Warmup = "/warmup"
	_, err := e.Load(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "needs a reactor module") {
		t.Fatalf("Load: %v, want a refusal naming the reactor ABI", err)
	}
}
