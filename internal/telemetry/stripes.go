package telemetry

import (
	"math/bits"
	"runtime"
	"sync/atomic"
)

// StripedCount is a count that requests on many cores change at once, split into
// stripes on cache lines of their own: a request adds to its stripe only (the gateway
// gives each connection one), so two cores serving two connections write different
// lines, where one shared word would move between the cores at every request (~150 ns
// each time with two cores serving; bench/RESULTS.md, "Gateway server step
// (connstep)"). Reading the count sums the stripes, which only scrapes and draining
// route tables do.
//
// A stripe is never negative as long as every add is undone on the same stripe (a
// request keeps its stripe from start to end): a sum then counts every adder whose
// stripe it read between its add and the undoing one.
type StripedCount []paddedInt64

// paddedInt64 is one stripe: 128 bytes, so that two stripes are never on one 64-byte
// line nor on one pair of lines that the CPU's adjacent-line prefetcher fetches
// together.
type paddedInt64 struct {
	n atomic.Int64
	_ [120]byte
}

// Stripe counts of NewStripedCount: twice the cores (connections are given stripes
// round robin, so two busy connections on two cores rarely meet), a power of two (a
// mask picks the stripe), at least 8 and at most 128 (16 KiB per count).
const minStripes, maxStripes = 8, 128

// NewStripedCount returns a count at zero with twice as many stripes as cores (see
// minStripes).
func NewStripedCount() StripedCount { return make(StripedCount, stripeCount(minStripes, maxStripes)) }

// stripeCount is twice the cores rounded up to a power of two, between lo and hi
// (powers of two themselves).
func stripeCount(lo, hi int) int {
	n := 1 << bits.Len(uint(2*runtime.GOMAXPROCS(0)-1))
	return min(max(n, lo), hi)
}

// Add adds d to stripe s (any value: it is reduced to the stripes there are).
func (c StripedCount) Add(s uint32, d int64) {
	c[s&uint32(len(c)-1)].n.Add(d)
}

// Sum is the count: the sum of the stripes, each read once, in order.
func (c StripedCount) Sum() int64 {
	var n int64
	for i := range c {
		n += c[i].n.Load()
	}
	return n
}
