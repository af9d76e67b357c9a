package agent

import (
	"errors"
	"fmt"
	"testing"

	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// TestWarmupLoadReason: a load that failed on its warmup hook is counted and reported
// under reason warmup, retried like a transient failure (the hook's backend may come
// back), and its message starts with the reason.
func TestWarmupLoadReason(t *testing.T) {
	werr := fmt.Errorf("load hello@2: prewarm: %w", &sandbox.WarmupError{Path: "/warmup", Status: 503})
	if got := moduleLoadReason(werr); got != telemetry.LoadWarmup {
		t.Fatalf("reason %q, want warmup", got)
	}
	if got := moduleLoadReason(errors.New("load hello@2: compile: bad")); got != telemetry.LoadModule {
		t.Fatalf("reason %q for a module error, want module", got)
	}
	le := loadFailed(nil, moduleLoadReason(werr), werr)
	if LoadReason(le) != telemetry.LoadWarmup || startRetryCap(telemetry.LoadWarmup) != startRetryMax {
		t.Fatalf("reason %q, cap %s", LoadReason(le), startRetryCap(telemetry.LoadWarmup))
	}
	if want := "warmup: load hello@2: prewarm: GET /warmup answered 503, not 2xx"; le.Error() != want {
		t.Fatalf("message %q, want %q", le.Error(), want)
	}
}
