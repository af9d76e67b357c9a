package sandbox

import (
	"strings"
	"testing"
	"time"
)

func TestCallClock(t *testing.T) {
	for _, tc := range []struct {
		name    string
		base    func() *time.Time // nil: no base yet
		refresh bool              // now must read time.Now and replace the base
	}{
		{"first reading", nil, true},
		{"recent base", func() *time.Time { b := time.Now(); return &b }, false},
		{"stale base", func() *time.Time { b := time.Now().Add(-2 * clockRefresh); return &b }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c callClock
			var base *time.Time
			if tc.base != nil {
				base = tc.base()
				c.base.Store(base)
			}
			before := time.Now()
			got := c.now()
			after := time.Now()
			if !strings.Contains(got.String(), "m=") {
				t.Fatalf("now() = %v has no monotonic reading", got)
			}
			if got.Before(before) || got.After(after) {
				t.Fatalf("now() = %v, not between %v and %v", got, before, after)
			}
			// The wall part, compared without the monotonic readings.
			if d := got.Round(0).Sub(after.Round(0)); d > time.Millisecond || d < -time.Millisecond-after.Sub(before) {
				t.Fatalf("now()'s wall part is %v off", d)
			}
			if refreshed := c.base.Load() != base; refreshed != tc.refresh {
				t.Fatalf("base refreshed = %v, want %v", refreshed, tc.refresh)
			}
		})
	}
}
