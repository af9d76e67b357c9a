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

// BenchmarkCallTimes is the time arithmetic around a warm call, with its two clock
// readings: "time.Time" as sbtrim left it (the start from a base plus time.Since, the
// deadline, the watch's due time, the end, the guest CPU figure and the late check on
// time.Time values), against "mono", integers with one time.Time made for the end
// (callReactor and endCall now). Both in one run, for a ratio on a shared machine.
func BenchmarkCallTimes(b *testing.B) {
	const timeout = 5 * time.Second
	var sinkT time.Time
	var sinkD time.Duration
	var sinkI int64
	var sinkB bool
	b.Run("time.Time", func(b *testing.B) {
		base := time.Now()
		for b.Loop() {
			now := base.Add(time.Since(base))
			deadline := now.Add(timeout)
			sinkI = int64(now.Add(min(timeout, cancelPoll)).Sub(monoBase))
			end := now.Add(time.Since(now))
			sinkT, sinkD, sinkB = end, end.Sub(now), !end.Before(deadline)
		}
	})
	b.Run("mono", func(b *testing.B) {
		for b.Loop() {
			start := monoNow()
			deadline := start + mono(timeout)
			sinkI = int64(start) + int64(min(timeout, cancelPoll))
			end := monoNow()
			sinkT, sinkD, sinkB = startClock.at(end), time.Duration(end-start), end >= deadline
		}
	})
	_, _, _, _ = sinkT, sinkD, sinkI, sinkB
}
