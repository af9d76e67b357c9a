package agent

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"fermion.dev/fermion/internal/nodecache"
	"fermion.dev/fermion/internal/telemetry"
)

// TestLoadFailureReasons: each failure gets its step as reason, and failures that the
// same digest meets again back off to minutes, the others to 30 s.
func TestLoadFailureReasons(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		pull       bool // classified as a pull failure
		wantReason string
		wantCap    time.Duration
	}{
		{name: "registry away", pull: true, err: fmt.Errorf("get: %w", &nodecache.Error{Code: nodecache.CodeUnavailable, Msg: "x"}), wantReason: telemetry.LoadUnavailable, wantCap: startRetryMax},
		{name: "tampered", pull: true, err: &nodecache.Error{Code: nodecache.CodeRejected, Reason: nodecache.ReasonDigestMismatch, Msg: "x"}, wantReason: telemetry.LoadRejected, wantCap: startRetryMax},
		{name: "not found", pull: true, err: errors.New("manifest unknown"), wantReason: telemetry.LoadPull, wantCap: startRetryMax},
		{name: "untrusted signer", pull: true, err: &LoadError{Reason: telemetry.LoadRejected, Err: errors.New("x")}, wantReason: telemetry.LoadRejected, wantCap: startRetryMax},
		{name: "module refused", err: fmt.Errorf("start: %w", &LoadError{Reason: telemetry.LoadModule, Err: errors.New("x")}), wantReason: telemetry.LoadModule, wantCap: startRetryMaxSame},
		{name: "bad manifest", err: &LoadError{Reason: telemetry.LoadManifest, Err: errors.New("x")}, wantReason: telemetry.LoadManifest, wantCap: startRetryMaxSame},
		{name: "policy", err: &LoadError{Reason: telemetry.LoadPolicy, Err: errors.New("x")}, wantReason: telemetry.LoadPolicy, wantCap: startRetryMaxSame},
		{name: "routes taken", err: &LoadError{Reason: telemetry.LoadRoutes, Err: errors.New("x")}, wantReason: telemetry.LoadRoutes, wantCap: startRetryMax},
		{name: "unclassified", err: errors.New("x"), wantReason: telemetry.LoadModule, wantCap: startRetryMaxSame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reason := LoadReason(tt.err)
			if tt.pull {
				reason = pullReason(tt.err)
			}
			if reason != tt.wantReason {
				t.Fatalf("reason %q, want %q", reason, tt.wantReason)
			}
			if got := startRetryCap(reason); got != tt.wantCap {
				t.Fatalf("retry cap %v, want %v", got, tt.wantCap)
			}
			// loadFailed keeps the reason of an error that has one.
			want := telemetry.LoadPull
			var le *LoadError
			if errors.As(tt.err, &le) {
				want = le.Reason
			}
			if got := LoadReason(loadFailed(nil, telemetry.LoadPull, tt.err)); got != want {
				t.Fatalf("loadFailed gave reason %q, want %q", got, want)
			}
		})
	}
	// The backoff reaches the cap and never passes it.
	for attempt := 1; attempt < 40; attempt++ {
		if d := backoff(attempt, startRetryBase, startRetryMaxSame); d > startRetryMaxSame || d < startRetryBase/2 {
			t.Fatalf("attempt %d waits %v", attempt, d)
		}
	}
}
