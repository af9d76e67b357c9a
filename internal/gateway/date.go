package gateway

import (
	"net/http"
	"sync/atomic"
	"time"
)

// dateCache is the Date header value of the current second, formatted once per second
// however many responses carry it. net/http formats a Date for every response whose
// header map has none: a clock reading and the formatting, on every request. The
// gateway has a clock reading already, the guest call's end (sandbox.Response.End),
// and gives the response the cached value of that reading's second instead.
//
// Readers only load the pointer: the word is written once per second (by whichever
// request first sees the new second), not per request, so it stays in every core's
// cache.
type dateCache struct {
	p atomic.Pointer[dateValue]
}

// dateValue is a second's Date header value, as a header map holds it. The slice is
// shared by every response of that second; neither net/http nor the gateway writes to
// a header's value slice once set (an append to its capped slice copies).
type dateValue struct {
	sec int64
	v   []string
}

// dateSlack is how far behind the cached second a time may be and still get the cached
// value. Requests whose calls end around a change of second come in any order; giving
// the older ones the newer second (one that has begun, since a call ended in it)
// keeps the word from flipping back and forth. Farther behind than this, the wall
// clock has been set back, and the cache follows it.
const dateSlack = 2

// at returns the Date header value for a response made at t (a time the caller has
// read already; never the zero time).
func (c *dateCache) at(t time.Time) []string {
	sec := t.Unix()
	d := c.p.Load()
	for {
		if d != nil && sec <= d.sec && sec >= d.sec-dateSlack {
			return d.v
		}
		nd := &dateValue{sec: sec, v: []string{t.UTC().Format(http.TimeFormat)}}
		if c.p.CompareAndSwap(d, nd) {
			return nd.v
		}
		// Another request stored a second first: take its value if it fits t.
		d = c.p.Load()
	}
}
