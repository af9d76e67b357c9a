package sandbox

import (
	"context"
	"testing"
	"time"
)

// BenchmarkWatchCall is the watch's share of a warm call: startWatch and endWatch
// around nothing, the timer armed across calls as in a stream of short requests. It
// compiled against the sandbox before sbtrim too, for before/after pairs, until sbacq
// made a call's times integers.
func BenchmarkWatchCall(b *testing.B) {
	inst := &instance{cancel: func() {}}
	b.Cleanup(inst.stopWatch)
	now := monoNow()
	st := &callState{ctx: context.Background(), deadline: now + mono(time.Hour)}
	b.ReportAllocs()
	for b.Loop() {
		inst.startWatch(st, now, time.Hour)
		inst.endWatch()
	}
}

// BenchmarkCallClock is a call's start time: time.Now against startClock.now.
func BenchmarkCallClock(b *testing.B) {
	var sink time.Time
	b.Run("time.Now", func(b *testing.B) {
		for b.Loop() {
			sink = time.Now()
		}
	})
	b.Run("startClock", func(b *testing.B) {
		for b.Loop() {
			sink = startClock.now()
		}
	})
	_ = sink
}
