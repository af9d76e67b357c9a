package sandbox

import (
	"sync/atomic"
	"time"
)

// mono is an instant of the monotonic clock, in nanoseconds after monoBase: what a
// call's start, end and deadline are kept as.
//
// Why an integer (see docs/RATIONALE.md, "Why does a call keep its times as
// integers (sbacq)?"): a call's deadline, the watch timer's due time, its guest CPU
// figure and the late-deadline check compare and subtract readings of one clock, and
// time.Time's Add, Sub and Before each branch on its wall and monotonic halves (an Add
// divides by 1e9 and checks for overflow). On integers they are single instructions;
// a time.Time is made only for what leaves the call (its end: Response.End and the
// instance's last use), once per call.
type mono int64

// monoBase is where mono counts from: a reading of both clocks at start-up.
var monoBase = time.Now()

// monoNow reads the monotonic clock: one vDSO call (time.Now makes two, wall and
// monotonic, each 30-100 ns on this kind of virtual machine, kvm-clock).
func monoNow() mono { return mono(time.Since(monoBase)) }

// monoOf is t's monotonic reading as a mono; t must carry one (time.Now's do).
func monoOf(t time.Time) mono { return mono(t.Sub(monoBase)) }

// callClock turns mono instants into time.Time values, wall and monotonic, without
// reading the wall clock each time.
//
// Why: the wall part of a call's times reaches users only as the time of an
// instance's last request, for idle reaping, and as the response's Date. It is a base's
// wall time plus the monotonic time elapsed since the base; the base is read again
// with time.Now once it is older than clockRefresh, so a step of the wall clock shows
// within that, and slewing (at most 500 ppm) moves it by less than a millisecond in
// between.
type callClock struct {
	base atomic.Pointer[clockBase]
}

// clockBase is one time.Now reading and its monotonic part as a mono.
type clockBase struct {
	t time.Time
	m mono
}

// clockRefresh is how old the base may get before time.Now is read again.
const clockRefresh = time.Second

// at returns m as a time.Time with a wall and a monotonic reading. It reads the
// clock only to refresh its base (about once per clockRefresh).
func (c *callClock) at(m mono) time.Time {
	if b := c.base.Load(); b != nil {
		if d := time.Duration(m - b.m); d < clockRefresh && d > -clockRefresh {
			return b.t.Add(d)
		}
	}
	t := time.Now()
	b := &clockBase{t: t, m: monoOf(t)}
	c.base.Store(b) // racing refreshes store equally good bases
	return t.Add(time.Duration(m - b.m))
}

// now returns the current time, wall and monotonic, from one monotonic reading (two,
// about once per clockRefresh).
func (c *callClock) now() time.Time { return c.at(monoNow()) }

// startClock is the clock of every call's times: the clocks it reads are the process's.
var startClock callClock
