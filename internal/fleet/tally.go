package fleet

import (
	"encoding/binary"
	"slices"
	"time"

	"fermion.dev/fermion/internal/sli"
)

// Tallies: what the SLO engine counts, kept without the latency sketch. Beyond the
// detail tier the store keeps no per-node sketch (docs/sli.md, "Tiers"): per node only
// a tally per window, per hour and per day, and the sketches per (app, version, region,
// zone) group (groups.go). A latency SLO's "requests under the threshold" per node is
// then read from the tally, which counts, for every threshold the store tracks, the
// requests above it (CountAtMost of the interval's sketch, so the same bucket rule and
// the same exact merged counts as the sketch would give).

// MaxThresholds bounds the latency thresholds the store tracks. A threshold beyond it
// (or one first asked for after the data aged out of the sketch tiers) has no per-node
// history beyond the detail tier.
const MaxThresholds = 32

// tally is one interval's (or window's, hour's, day's) SLO counts: requests, 5xx, and
// for the first len(over) tracked thresholds the requests above each. A tally knows
// the thresholds that were tracked when its first summary arrived; merging keeps the
// thresholds both sides know.
type tally struct {
	req, errs uint64
	over      []uint64
}

// merge adds o to t.
func (t *tally) merge(o *tally) {
	if o.req == 0 && o.errs == 0 {
		return
	}
	if t.req == 0 && t.errs == 0 {
		t.req, t.errs = o.req, o.errs
		t.over = append(t.over[:0], o.over...)
		return
	}
	t.req += o.req
	t.errs += o.errs
	n := min(len(t.over), len(o.over))
	t.over = t.over[:n]
	for i := range n {
		t.over[i] += o.over[i]
	}
}

// good is the requests at or under tracked threshold i, and whether t knows it.
func (t *tally) good(i int) (uint64, bool) {
	if t.req == 0 {
		return 0, true // nothing to know
	}
	if i < 0 || i >= len(t.over) {
		return 0, false
	}
	return t.req - min(t.over[i], t.req), true
}

// tallyOf is s's tally for the thresholds thr.
func tallyOf(s *sli.Summary, thr []time.Duration) tally {
	t := tally{req: s.Requests(), errs: s.Errors()}
	if t.req == 0 {
		return t
	}
	t.over = make([]uint64, len(thr))
	for i, d := range thr {
		var good uint64
		if s.Latency != nil {
			good = s.Latency.CountAtMost(d)
		}
		t.over[i] = t.req - min(good, t.req)
	}
	return t
}

// appendTally appends t's packed form: uvarint requests, and when there are any, 5xx,
// the number of thresholds and the requests above each. An empty slot is one zero
// byte.
func appendTally(b []byte, t *tally) []byte {
	b = binary.AppendUvarint(b, t.req)
	if t.req == 0 && t.errs == 0 {
		return b
	}
	if t.req == 0 { // 5xx without requests cannot come from a validated summary
		b[len(b)-1] = 0
		return b
	}
	b = binary.AppendUvarint(b, t.errs)
	b = binary.AppendUvarint(b, uint64(len(t.over)))
	for _, o := range t.over {
		b = binary.AppendUvarint(b, o)
	}
	return b
}

// readTally decodes one packed tally from b into t (reusing t.over) and returns the
// bytes read (0 on a malformed buffer, which only a bug writes).
func readTally(b []byte, t *tally) int {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0
	}
	t.req, t.errs, t.over = v, 0, t.over[:0]
	if v == 0 {
		return n
	}
	var h [2]uint64
	rest := uvarints(b[n:], h[:])
	if rest == nil && len(b) > n && h[1] > 0 {
		return 0
	}
	t.errs = h[0]
	read := len(b) - len(rest)
	if h[1] > MaxThresholds {
		return 0
	}
	for range h[1] {
		o, k := binary.Uvarint(b[read:])
		if k <= 0 {
			return 0
		}
		t.over = append(t.over, o)
		read += k
	}
	return read
}

// run is one series' tallies at one resolution: consecutive slots of width from base,
// packed (appendTally each), so an idle slot costs one byte and a series' day of
// 5-minute windows a few hundred bytes. Slots are added in time order almost always
// (a window's tally arrives when the window leaves the detail tier), which appends;
// a late backfill rewrites the run.
type run struct {
	base    int64 // start of slot 0 (unix ns), aligned to the run's width
	n       int32 // slots
	lastOff int32 // offset of the last slot
	b       []byte
}

// add merges t into the slot starting at start.
func (r *run) add(start, width int64, t *tally) {
	if t.req == 0 && t.errs == 0 {
		return
	}
	if r.n == 0 {
		r.base, r.n, r.lastOff = start, 1, 0
		r.b = appendTally(r.b[:0], t)
		return
	}
	k := (start - r.base) / width
	switch {
	case k >= int64(r.n):
		for range k - int64(r.n) {
			r.b = append(r.b, 0)
		}
		r.lastOff = int32(len(r.b))
		r.b = appendTally(r.b, t)
		r.n = int32(k) + 1
	case k == int64(r.n)-1:
		var last tally
		readTally(r.b[r.lastOff:], &last)
		last.merge(t)
		r.b = appendTally(r.b[:r.lastOff], &last)
	default:
		slots := r.slots()
		if k < 0 {
			slots = append(make([]tally, -k), slots...)
			r.base = start
			k = 0
		}
		slots[k].merge(t)
		r.set(slots, width)
	}
}

// slots decodes every slot, empty ones included (slot i starts at base + i×width).
func (r *run) slots() []tally {
	out := make([]tally, r.n)
	off := 0
	for i := range out {
		k := readTally(r.b[off:], &out[i])
		if k == 0 {
			return out[:i] // not written by add: a bug; keep what precedes it
		}
		out[i].over = slices.Clone(out[i].over)
		off += k
	}
	return out
}

// set re-encodes the run from slots (slot 0 at r.base), trimming empty ends.
func (r *run) set(slots []tally, width int64) {
	for len(slots) > 0 && slots[len(slots)-1].req == 0 {
		slots = slots[:len(slots)-1]
	}
	lead := 0
	for lead < len(slots) && slots[lead].req == 0 {
		lead++
	}
	if lead == len(slots) {
		*r = run{}
		return
	}
	slots = slots[lead:]
	var b []byte
	for i := range slots {
		if i == len(slots)-1 {
			r.lastOff = int32(len(b))
		}
		b = appendTally(b, &slots[i])
	}
	r.base += int64(lead) * width
	r.n = int32(len(slots))
	r.b = exact(b)
}

// each calls fn with every non-empty slot in order (t is reused between calls) until
// fn returns false.
func (r *run) each(width int64, fn func(start int64, t *tally) bool) {
	var t tally
	off := 0
	for i := range r.n {
		k := readTally(r.b[off:], &t)
		if k == 0 {
			return
		}
		off += k
		if t.req == 0 {
			continue
		}
		if !fn(r.base+int64(i)*width, &t) {
			return
		}
	}
}

// takeBefore removes the slots that start before until, calling fn with each
// non-empty one in order.
func (r *run) takeBefore(width, until int64, fn func(start int64, t *tally)) {
	if r.n == 0 || r.base >= until {
		return
	}
	var t tally
	off, i := 0, int32(0)
	for ; i < r.n; i++ {
		start := r.base + int64(i)*width
		if start >= until {
			break
		}
		k := readTally(r.b[off:], &t)
		if k == 0 {
			*r = run{}
			return
		}
		off += k
		if t.req > 0 {
			fn(start, &t)
		}
	}
	if i == r.n {
		*r = run{}
		return
	}
	r.base += int64(i) * width
	r.n -= i
	r.lastOff -= int32(off)
	r.b = exact(r.b[off:])
}

// seenRun dedupes one route's raw summaries in a series: a bitmap of seqs from base
// (a multiple of 64), for agents whose intervals last ivl. Agents number intervals
// since the epoch (sli.SeqFor), so seq×ivl is the interval's start and the bitmap's
// front ages out with the local horizon: 6 hours of 10-s intervals are 34 words, where
// a (seq, route) record per summary would be 2,160.
type seenRun struct {
	route string
	ivl   int64
	base  uint64
	words []uint64
}

// maxSeenGap bounds how far (in 64-seq words) a seq may jump from a route's bitmap
// before it gets a bitmap of its own: an agent whose interval changed numbers its
// intervals on another scale.
const maxSeenGap = 256

// markSeen records (seq, route) of an agent with intervals of ivl and reports whether
// it was there already.
func markSeen(seen *[]seenRun, seq uint64, route string, ivl int64) bool {
	blk, bit := seq&^63, uint64(1)<<(seq&63)
	for i := range *seen {
		x := &(*seen)[i]
		if x.route != route || x.ivl != ivl {
			continue
		}
		if blk < x.base {
			n := (x.base - blk) / 64
			if n > maxSeenGap {
				continue
			}
			x.words = append(make([]uint64, n, n+uint64(len(x.words))), x.words...)
			x.base = blk
		}
		w := (blk - x.base) / 64
		if w >= uint64(len(x.words)) {
			if w-uint64(len(x.words)) > maxSeenGap {
				continue
			}
			x.words = append(x.words, make([]uint64, w+1-uint64(len(x.words)))...)
		}
		dup := x.words[w]&bit != 0
		x.words[w] |= bit
		return dup
	}
	*seen = append(*seen, seenRun{route: route, ivl: ivl, base: blk, words: []uint64{bit}})
	return false
}

// pruneSeen drops the words whose intervals all ended at or before floor (unix ns).
func pruneSeen(seen []seenRun, floor int64) []seenRun {
	kept := seen[:0]
	for _, x := range seen {
		drop := 0
		for drop < len(x.words) && int64(x.base+uint64(drop+1)*64)*x.ivl <= floor {
			drop++
		}
		if drop == len(x.words) {
			continue
		}
		if drop > 0 {
			x.words = slices.Clone(x.words[drop:])
			x.base += uint64(drop) * 64
		}
		kept = append(kept, x)
	}
	clear(seen[len(kept):])
	return kept
}
