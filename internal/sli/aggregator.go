package sli

import (
	"hash/maphash"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync"
	"time"
)

// DefaultInterval is how long an interval lasts unless Config.Interval says otherwise.
const DefaultInterval = 10 * time.Second

// idleFlushes is how many empty intervals a key's state is kept for before it is
// dropped, so a version that stopped serving frees its memory and a busy one never
// reallocates.
const idleFlushes = 6

// maxShards bounds the stripes: each key costs a series per stripe, and more stripes
// than a few per core buy nothing.
const maxShards = 256

// Config configures an Aggregator.
type Config struct {
	// Node names the node in every summary.
	Node string
	// Interval is the intended length of an interval (default 10 s); Flush does not
	// enforce it, but Boundary aligns to it.
	Interval time.Duration
	// Start is when the first interval begins; use Boundary(now, Interval) so every
	// node's intervals line up.
	Start time.Time
	// FirstSeq is the sequence number of the first interval. An agent that restarts
	// should start above the last sequence it sent (e.g. from the wall clock, as
	// SeqFor does) so receivers do not take new data for duplicates.
	FirstSeq uint64
	// Exemplars is how many of each key's slowest requests an interval keeps
	// (RecordRequest): DefaultExemplars when zero, none when negative, at most
	// MaxExemplars.
	Exemplars int
	// Shards is how many lock stripes Record spreads over (default 4 × GOMAXPROCS,
	// rounded up to a power of two, at most maxShards).
	Shards int
}

// Boundary returns the start of the interval of length iv that contains t, aligned to
// the Unix epoch so that all nodes agree.
func Boundary(t time.Time, iv time.Duration) time.Time {
	if iv <= 0 {
		iv = DefaultInterval
	}
	return t.Truncate(iv)
}

// SeqFor returns a sequence number for the interval starting at start: the count of
// whole intervals since the Unix epoch. It increases across restarts without stored
// state, as long as the interval length stays the same.
func SeqFor(start time.Time, iv time.Duration) uint64 {
	if iv <= 0 {
		iv = DefaultInterval
	}
	return uint64(start.UnixNano() / int64(iv))
}

// Aggregator accumulates SLIs per Key for the open interval. Record and the other
// Record/Observe methods are safe for concurrent use with each other and with Flush.
//
// Record picks a shard at random per call (per-P random source, no lock) rather than
// by key, so one hot version's requests spread over all stripes instead of queueing on
// one; Flush merges the shards. Lock order: Aggregator.flushMu, then a shard's mu (leaf).
type Aggregator struct {
	node     string
	interval time.Duration
	shards   []shard
	mask     uint32
	seed     maphash.Seed
	slowK    int // exemplars kept per key and interval

	flushMu sync.Mutex
	start   time.Time
	seq     uint64
	backlog uint64 // guarded by flushMu
}

type shard struct {
	mu     sync.Mutex
	series map[Key]*series
	_      [48]byte // keep neighbouring shards' locks off one cache line
}

// series is one key's state in one shard.
type series struct {
	status      [5]uint64
	otherStatus uint64
	latency     Sketch
	cold        uint64
	starts      map[string]uint64
	discards    map[string]uint64
	memMax      uint64
	cpu         time.Duration
	rejections  map[string]uint64
	outbound    uint64
	denials     uint64
	active      bool // anything recorded since the last flush
	idle        int  // consecutive flushes with nothing recorded
	pinned      int  // live Series handles; a pinned series is never dropped
	slow        slowHeap
}

// NewAggregator returns an Aggregator whose first interval starts at cfg.Start.
func NewAggregator(cfg Config) *Aggregator {
	iv := cfg.Interval
	if iv <= 0 {
		iv = DefaultInterval
	}
	n := cfg.Shards
	if n <= 0 {
		n = 4 * runtime.GOMAXPROCS(0)
	}
	n = min(n, maxShards)
	p := 1
	for p < n {
		p <<= 1
	}
	a := &Aggregator{node: cfg.Node, interval: iv, shards: make([]shard, p), mask: uint32(p - 1),
		start: cfg.Start, seq: cfg.FirstSeq, seed: maphash.MakeSeed()}
	switch {
	case cfg.Exemplars == 0:
		a.slowK = DefaultExemplars
	case cfg.Exemplars > 0:
		a.slowK = min(cfg.Exemplars, MaxExemplars)
	}
	for i := range a.shards {
		a.shards[i].series = make(map[Key]*series)
	}
	return a
}

// Interval is the aggregator's configured interval length.
func (a *Aggregator) Interval() time.Duration { return a.interval }

// lock returns a locked random shard's series for k, creating it on first use.
func (a *Aggregator) lock(k Key) (*shard, *series) {
	sh := &a.shards[rand.Uint32()&a.mask]
	sh.mu.Lock()
	s := sh.series[k]
	if s == nil {
		s = &series{}
		sh.series[k] = s
	}
	s.active = true
	return sh, s
}

// lockKeyed returns k's series in the shard chosen by k's hash. Rare events use it so
// they land in one place, which keeps the per-reason maps few.
func (a *Aggregator) lockKeyed(k Key) (*shard, *series) {
	h := maphash.Comparable(a.seed, k)
	sh := &a.shards[uint32(h)&a.mask]
	sh.mu.Lock()
	s := sh.series[k]
	if s == nil {
		s = &series{}
		sh.series[k] = s
	}
	s.active = true
	return sh, s
}

// Record counts one request answered with status after latency; cold says it waited
// for a new instance. It does not allocate once k has been seen and its latency range
// covered.
func (a *Aggregator) Record(k Key, status int, latency time.Duration, cold bool) {
	sh, s := a.lock(k)
	s.recordLocked(status, latency, cold)
	sh.mu.Unlock()
}

func (s *series) recordLocked(status int, latency time.Duration, cold bool) {
	if c := statusClass(status); c >= 0 {
		s.status[c]++
	} else {
		s.otherStatus++
	}
	s.latency.Add(latency)
	if cold {
		s.cold++
	}
	s.active = true
}

// Series is a handle on one key, resolved once (when a version's routes are set up)
// so that recording a request skips hashing the key, as a Prometheus counter curried
// with WithLabelValues does. A key's state is kept while any handle on it is live;
// Release the handle when the version stops serving.
type Series struct {
	a   *Aggregator
	per []*series // per[i] is the key's state in shard i
}

// Series returns a handle on k.
func (a *Aggregator) Series(k Key) *Series {
	h := &Series{a: a, per: make([]*series, len(a.shards))}
	for i := range a.shards {
		sh := &a.shards[i]
		sh.mu.Lock()
		s := sh.series[k]
		if s == nil {
			s = &series{}
			sh.series[k] = s
		}
		s.pinned++
		h.per[i] = s
		sh.mu.Unlock()
	}
	return h
}

// Record is Aggregator.Record for the handle's key.
func (h *Series) Record(status int, latency time.Duration, cold bool) {
	i := rand.Uint32() & h.a.mask
	sh := &h.a.shards[i]
	sh.mu.Lock()
	h.per[i].recordLocked(status, latency, cold)
	sh.mu.Unlock()
}

// RecordRequest is Record for a request that may be among the interval's slowest:
// ex.Duration is its latency and ex.Status its status. A request no slower than the
// key's kth slowest so far in its shard costs one comparison more than Record; a slower
// one is copied into a fixed-size heap (O(log k), no allocation: ex's strings are kept,
// the path cut to MaxExemplarPath). ex is read, not kept: the caller may reuse it.
func (h *Series) RecordRequest(ex *Exemplar, cold bool) {
	i := rand.Uint32() & h.a.mask
	sh := &h.a.shards[i]
	sh.mu.Lock()
	s := h.per[i]
	s.recordLocked(ex.Status, ex.Duration, cold)
	if h.a.slowK > 0 && (s.slow.n < h.a.slowK || ex.Duration > s.slow.e[0].Duration) {
		s.slow.offer(h.a.slowK, ex)
	}
	sh.mu.Unlock()
}

// Release lets the key's state be dropped once idle. Recording through a released
// handle is a bug: the data may be lost.
func (h *Series) Release() {
	for i := range h.a.shards {
		sh := &h.a.shards[i]
		sh.mu.Lock()
		h.per[i].pinned--
		sh.mu.Unlock()
	}
}

// RecordInstanceStart counts an instance of k's version started, for reason.
func (a *Aggregator) RecordInstanceStart(k Key, reason string) {
	sh, s := a.lockKeyed(k)
	s.starts = inc(s.starts, reason)
	sh.mu.Unlock()
}

// RecordDiscard counts an instance discarded (trap, timeout, idle, …).
func (a *Aggregator) RecordDiscard(k Key, reason string) {
	sh, s := a.lockKeyed(k)
	s.discards = inc(s.discards, reason)
	sh.mu.Unlock()
}

// RecordLimitRejection counts a request refused by a limit, for reason.
func (a *Aggregator) RecordLimitRejection(k Key, reason string) {
	sh, s := a.lockKeyed(k)
	s.rejections = inc(s.rejections, reason)
	sh.mu.Unlock()
}

// RecordOutboundError counts a failed outbound call by k's guest.
func (a *Aggregator) RecordOutboundError(k Key) {
	sh, s := a.lockKeyed(k)
	s.outbound++
	sh.mu.Unlock()
}

// RecordPolicyDenial counts a request or call denied by policy.
func (a *Aggregator) RecordPolicyDenial(k Key) {
	sh, s := a.lockKeyed(k)
	s.denials++
	sh.mu.Unlock()
}

// ObserveInstance records an instance's linear memory (the interval keeps the
// maximum) and the CPU time it used since last observed.
func (a *Aggregator) ObserveInstance(k Key, memoryBytes uint64, cpu time.Duration) {
	sh, s := a.lockKeyed(k)
	s.memMax = max(s.memMax, memoryBytes)
	if cpu > 0 {
		s.cpu += cpu
	}
	sh.mu.Unlock()
}

// SetTelemetryBacklog sets the node's telemetry spool depth reported with the next
// flush.
func (a *Aggregator) SetTelemetryBacklog(items uint64) {
	a.flushMu.Lock()
	a.backlog = items
	a.flushMu.Unlock()
}

func inc(m map[string]uint64, reason string) map[string]uint64 {
	if m == nil {
		m = make(map[string]uint64, 2)
	}
	if reason == "" {
		reason = "unknown"
	}
	m[reason]++
	return m
}

// Flush closes the open interval, which ends at end, and opens the next one starting
// there. It returns one Summary per key that saw anything in the interval, sorted by
// key, all with the same Seq; keys with nothing to report are left out.
//
// If end is not after the interval's start (the node's clock stepped back), the
// interval is closed at start + Interval instead, so that summaries stay valid and
// intervals never overlap; the intervals realign at the next Boundary the caller passes
// after the clock has caught up.
func (a *Aggregator) Flush(end time.Time) []Summary {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	if !end.After(a.start) {
		end = a.start.Add(a.interval)
	}
	out := map[Key]*Summary{}
	for i := range a.shards {
		sh := &a.shards[i]
		sh.mu.Lock()
		a.drainLocked(sh, out)
		sh.mu.Unlock()
	}
	res := make([]Summary, 0, len(out))
	for _, s := range out {
		if len(s.Slowest) > 0 {
			s.Slowest = sortSlowest(s.Slowest, a.slowK)
		}
		s.Start, s.End, s.Seq, s.TelemetryBacklog = a.start, end, a.seq, a.backlog
		res = append(res, *s)
	}
	sort.Slice(res, func(i, j int) bool { return keyLess(res[i].Key, res[j].Key) })
	a.start = end
	a.seq++
	return res
}

// drainLocked moves sh's active series into out and resets them; sh.mu is held.
func (a *Aggregator) drainLocked(sh *shard, out map[Key]*Summary) {
	for k, s := range sh.series {
		if !s.active {
			s.idle++
			if s.idle >= idleFlushes && s.pinned == 0 {
				delete(sh.series, k)
			}
			continue
		}
		sum := out[k]
		if sum == nil {
			sum = &Summary{Node: a.node, Key: k, Latency: &Sketch{}}
			out[k] = sum
		}
		for c := range s.status {
			sum.Status[c] += s.status[c]
		}
		sum.OtherStatus += s.otherStatus
		sum.Latency.Merge(&s.latency)
		sum.ColdStarts += s.cold
		sum.InstanceStarts = addAll(sum.InstanceStarts, s.starts)
		sum.Discards = addAll(sum.Discards, s.discards)
		sum.LimitRejections = addAll(sum.LimitRejections, s.rejections)
		sum.MemoryMaxBytes = max(sum.MemoryMaxBytes, s.memMax)
		sum.CPUTime += s.cpu
		sum.OutboundErrors += s.outbound
		sum.PolicyDenials += s.denials
		sum.Slowest = append(sum.Slowest, s.slow.e[:s.slow.n]...)

		s.status, s.otherStatus, s.cold = [5]uint64{}, 0, 0
		s.latency.Reset()
		clear(s.starts)
		clear(s.discards)
		clear(s.rejections)
		s.memMax, s.cpu, s.outbound, s.denials = 0, 0, 0, 0
		s.slow.reset()
		s.active, s.idle = false, 0
	}
}

func addAll(dst, src map[string]uint64) map[string]uint64 {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = make(map[string]uint64, len(src))
	}
	for r, n := range src {
		dst[r] += n
	}
	return dst
}

func keyLess(a, b Key) bool {
	if a.Deployment != b.Deployment {
		return a.Deployment < b.Deployment
	}
	if a.Version != b.Version {
		return a.Version < b.Version
	}
	return a.Route < b.Route
}
