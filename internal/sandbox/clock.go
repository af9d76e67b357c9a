package sandbox

import (
	"sync/atomic"
	"time"
)

// callClock gives a request's start time from one reading of the monotonic clock.
//
// Why: time.Now reads two clocks (wall and monotonic), each a vDSO call of 30-100 ns on
// this kind of virtual machine (kvm-clock), and a call's start needs only the monotonic
// one: its deadline, the watch timer and the guest CPU figure compare monotonic
// readings. The wall part of the result, which reaches users only as the time of an
// instance's last request and for idle reaping, is base's wall time plus the monotonic
// time elapsed since base; base is read again with time.Now once it is older than
// clockRefresh, so a step of the wall clock shows within that, and slewing (at most
// 500 ppm) moves it by less than a millisecond in between.
type callClock struct {
	base atomic.Pointer[time.Time]
}

// clockRefresh is how old the base may get before time.Now is read again.
const clockRefresh = time.Second

// now returns the current time, wall and monotonic, from one monotonic reading (two,
// about once per clockRefresh).
func (c *callClock) now() time.Time {
	if b := c.base.Load(); b != nil {
		if d := time.Since(*b); d < clockRefresh {
			return b.Add(d)
		}
	}
	t := time.Now()
	c.base.Store(&t) // racing refreshes store equally good bases
	return t
}

// startClock is the clock of every call's start: the clocks it reads are the process's.
var startClock callClock
