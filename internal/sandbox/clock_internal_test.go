package sandbox

import (
	"strings"
	"testing"
	"time"
)

func TestCallClock(t *testing.T) {
	for _, tc := range []struct {
		name    string
		base    func() *clockBase // nil: no base yet
		refresh bool              // now must read time.Now and replace the base
	}{
		{"first reading", nil, true},
		{"recent base", func() *clockBase { b := time.Now(); return &clockBase{b, monoOf(b)} }, false},
		{"stale base", func() *clockBase {
			b := time.Now().Add(-2 * clockRefresh)
			return &clockBase{b, monoOf(b)}
		}, true},
		{"base ahead", func() *clockBase { // a racing refresh stored a later base
			b := time.Now().Add(2 * clockRefresh)
			return &clockBase{b, monoOf(b)}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c callClock
			var base *clockBase
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

// TestCallClockAt: a mono instant becomes the time.Time of the same monotonic
// reading, whether the base serves it or is refreshed for it, and back.
func TestCallClockAt(t *testing.T) {
	var c callClock
	now := monoNow()
	for _, m := range []mono{now, now - mono(time.Millisecond), now + mono(time.Hour), now - mono(2*clockRefresh), now} {
		got := c.at(m)
		if back := monoOf(got); back != m {
			t.Fatalf("at(%d) = %v, whose mono is %d", m, got, back)
		}
		if d := got.Round(0).Sub(monoBase.Round(0).Add(time.Duration(m))); d > time.Second || d < -time.Second {
			t.Fatalf("at(%d)'s wall part is %v off the start-up base", m, d)
		}
	}
}
