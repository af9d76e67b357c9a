package fleet

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sort"
	"sync"
	"time"

	"fermion.dev/fermion/internal/sli"
)

// Defaults for Config.
const (
	// DefaultWidth is the width of a local window and of a rollup.
	DefaultWidth = 5 * time.Minute
	// DefaultDetailRetention keeps raw intervals long enough for `fermion top`'s
	// default window and the SLO tiers' shortest window (5 min) with room to spare.
	DefaultDetailRetention = 15 * time.Minute
	// DefaultRawRetention matches the raw stream's MaxAge: after a restart every local
	// window younger than this is rebuilt from the stream.
	DefaultRawRetention = 6 * time.Hour
	// DefaultRollupRetention covers the longest SLO window.
	DefaultRollupRetention = 30 * 24 * time.Hour
	// DefaultMaxSkew is how far in the future a summary may end (agent clock ahead of
	// the server's) before it is refused.
	DefaultMaxSkew = 2 * time.Minute
)

// NodeInfo says where a node is: its region and zone (from its labels) and all its
// labels (for SLO node populations). ok is false for a node the server does not know;
// its data is kept and shows an empty region and zone.
type NodeInfo func(node string) (region, zone string, labels map[string]string, ok bool)

// Config configures a Store. Zero fields take the defaults above.
type Config struct {
	Width           time.Duration
	DetailRetention time.Duration
	RawRetention    time.Duration
	RollupRetention time.Duration
	MaxSkew         time.Duration
	// Nodes resolves a node's region, zone and labels; nil: every node is unknown.
	Nodes NodeInfo
	// AppLabels resolves a deployment's labels for SLO selectors; nil: selectors match
	// nothing.
	AppLabels func(app string) map[string]string
}

func (c *Config) defaults() error {
	if c.Width <= 0 {
		c.Width = DefaultWidth
	}
	if c.DetailRetention <= 0 {
		c.DetailRetention = DefaultDetailRetention
	}
	if c.RawRetention <= 0 {
		c.RawRetention = DefaultRawRetention
	}
	if c.RollupRetention <= 0 {
		c.RollupRetention = DefaultRollupRetention
	}
	if c.MaxSkew <= 0 {
		c.MaxSkew = DefaultMaxSkew
	}
	if c.Nodes == nil {
		c.Nodes = func(string) (string, string, map[string]string, bool) { return "", "", nil, false }
	}
	switch {
	case c.DetailRetention > c.RawRetention:
		return fmt.Errorf("new sli store: detail retention %v exceeds raw retention %v", c.DetailRetention, c.RawRetention)
	case c.RawRetention > c.RollupRetention:
		return fmt.Errorf("new sli store: raw retention %v exceeds rollup retention %v", c.RawRetention, c.RollupRetention)
	case c.RawRetention < 2*c.Width:
		return fmt.Errorf("new sli store: raw retention %v must hold at least two %v windows", c.RawRetention, c.Width)
	}
	return nil
}

// Outcome is what Add did with a summary.
type Outcome int

const (
	// Accepted: the summary was new and is counted.
	Accepted Outcome = iota
	// Duplicate: a summary with the same (node, seq, key) was counted before.
	Duplicate
	// TooOld: it ended before the local windows' horizon (a backfill older than
	// RawRetention); the rollups, if the leader wrote them before, still hold it.
	TooOld
	// FromFuture: it ends more than MaxSkew after now; the agent's clock is ahead.
	FromFuture
)

func (o Outcome) String() string {
	return [...]string{"accepted", "duplicate", "too_old", "future"}[o]
}

// Stats counts what the store was given, for metrics and tests.
type Stats struct {
	Raw     map[string]uint64 // by Outcome
	Rollups map[string]uint64 // accepted, too_old, bad
	Series  int               // (app, version, node) with any window
	Windows int
	Details int
}

// seriesKey is one stored population: an app's version on one node. Routes are folded
// together on arrival; nothing the store answers is per route.
type seriesKey struct {
	App, Version, Node string
}

type series struct {
	key     seriesKey
	windows []*window // ascending start
}

// window is one Width-aligned window of one series.
type window struct {
	start int64 // unix ns
	// local is the merge of every raw summary received for the window; nil when none
	// (or pruned past RawRetention).
	local *stored
	// details are the raw intervals, one per interval start (routes merged),
	// ascending, kept for DetailRetention.
	details detailBuf
	// detailsFrom is the time (unix ns) from which details hold every interval of the
	// window: 0 until a summary skipped the details or pruning dropped some.
	detailsFrom int64
	// seen dedupes raw summaries while the window is local.
	seen []seenSet
	// rollup is the leader's downsample of the window, from the rollup stream.
	rollup *stored
	// rolled is the fingerprint of rollup; published what this replica last
	// published for the window (leader only): both stop re-publishing. Kept as
	// fingerprint.sum (8 bytes, not 56 each): a window record is held for every
	// series and 5-minute window of the 6-hour local tier.
	rolled, published uint64
}

// seenSet is the seqs of one route merged into a window, as a bitmap over a 64-aligned
// block of seqs. Agents number intervals since the epoch (sli.SeqFor), so a 5-minute
// window of 10-s intervals touches one or two blocks: 32 bytes per route and window,
// where a (seq, route) record per summary cost 24 bytes each and 720 per window, held
// for the 6-hour local tier. Any seq still gets an exact answer (a block of its own).
type seenSet struct {
	route string
	base  uint64
	bits  uint64
}

// markSeen records (seq, route) in seen and reports whether it was there already.
func markSeen(seen *[]seenSet, seq uint64, route string) bool {
	base, bit := seq&^63, uint64(1)<<(seq&63)
	for i := range *seen {
		if x := &(*seen)[i]; x.base == base && x.route == route {
			dup := x.bits&bit != 0
			x.bits |= bit
			return dup
		}
	}
	*seen = append(*seen, seenSet{route: route, base: base, bits: bit})
	return false
}

// fingerprint is enough of a summary to tell whether a rollup covers what the local
// window holds now: a late backfill changes at least the request count or an
// instance figure.
type fingerprint struct {
	requests, cold, starts, discards, rejections, mem uint64
	cpu                                               time.Duration
}

func fingerprintOf(s *sli.Summary) fingerprint {
	if s == nil {
		return fingerprint{}
	}
	sum := func(m map[string]uint64) (n uint64) {
		for _, v := range m {
			n += v
		}
		return n
	}
	return fingerprint{s.Requests(), s.ColdStarts, sum(s.InstanceStarts), sum(s.Discards), sum(s.LimitRejections), s.MemoryMaxBytes, s.CPUTime}
}

// fingerprintSeed keys fingerprint.sum; sums are only compared within one process.
var fingerprintSeed = maphash.MakeSeed()

// sum is a 64-bit hash of f, 0 for the zero fingerprint (an empty window, which
// needs no rollup, like a window with none recorded). Two different fingerprints
// share a sum with probability 2⁻⁶⁴; the cost would be one window's rollup not
// re-published after a backfill.
func (f fingerprint) sum() uint64 {
	if f == (fingerprint{}) {
		return 0
	}
	return maphash.Comparable(fingerprintSeed, f) | 1
}

// Store holds the fleet's SLIs. It is safe for concurrent use; one mutex guards
// everything (a leaf lock: nothing is called while it is held).
type Store struct {
	cfg Config

	mu      sync.RWMutex
	series  map[seriesKey]*series
	byApp   map[string][]*series
	stats   Stats
	kinds   map[sloSeriesKey]scopeSel // what Series handed out, for Counts
	lastNow int64                     // the latest now seen, for Prune's horizon
	scratch sli.Sketch                // for writers, under mu

	// The group tier (agg.go).
	agg    map[aggKey][]aggInterval
	unsafe map[string]int64 // app → end of the latest window holding a summary not in agg
	where  map[string]nodeWhere
	moved  int64 // end of the latest interval in agg under a node's former place
}

// New returns an empty store.
func New(cfg Config) (*Store, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return &Store{cfg: cfg, series: map[seriesKey]*series{}, byApp: map[string][]*series{},
		stats: Stats{Raw: map[string]uint64{}, Rollups: map[string]uint64{}}, kinds: map[sloSeriesKey]scopeSel{},
		agg: map[aggKey][]aggInterval{}, unsafe: map[string]int64{}, where: map[string]nodeWhere{}}, nil
}

// Config returns the store's configuration with defaults filled in.
func (st *Store) Config() Config { return st.cfg }

func (st *Store) seriesLocked(k seriesKey) *series {
	s := st.series[k]
	if s == nil {
		s = &series{key: k}
		st.series[k] = s
		st.byApp[k.App] = append(st.byApp[k.App], s)
	}
	return s
}

// windowLocked finds or inserts the window starting at start.
func (s *series) windowLocked(start int64) *window {
	i := sort.Search(len(s.windows), func(i int) bool { return s.windows[i].start >= start })
	if i < len(s.windows) && s.windows[i].start == start {
		return s.windows[i]
	}
	w := &window{start: start}
	s.windows = append(s.windows, nil)
	copy(s.windows[i+1:], s.windows[i:])
	s.windows[i] = w
	return w
}

// Add counts one raw summary received at now. Summaries come in any order; a re-sent
// one (same node, seq, key) is counted once.
func (st *Store) Add(s *sli.Summary, now time.Time) Outcome {
	o := st.add(s, now)
	st.mu.Lock()
	st.stats.Raw[o.String()]++
	st.mu.Unlock()
	return o
}

func (st *Store) add(s *sli.Summary, now time.Time) Outcome {
	if s.End.After(now.Add(st.cfg.MaxSkew)) {
		return FromFuture
	}
	if !s.End.After(now.Add(-st.cfg.RawRetention)) {
		return TooOld
	}
	width := st.cfg.Width
	ws := sli.Boundary(s.Start, width)
	k := seriesKey{s.Key.Deployment, s.Key.Version, s.Node}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.lastNow = max(st.lastNow, now.UnixNano())
	w := st.seriesLocked(k).windowLocked(ws.UnixNano())
	if markSeen(&w.seen, s.Seq, s.Key.Route) {
		return Duplicate
	}
	if w.local == nil {
		p := pack(s)
		w.local = &p
	} else {
		w.local.add(s, &st.scratch)
	}
	if s.Start.After(now.Add(-st.cfg.DetailRetention)) {
		start := s.Start.UnixNano()
		w.details = w.details.put(w.start, start, s.End.UnixNano(), func(old []byte) []byte {
			if old == nil {
				return pack(s).b
			}
			p := stored{b: old}
			p.add(s, &st.scratch)
			return p.b
		})
		st.addGroupLocked(k, start, s.End.UnixNano(), w.start, w.start+int64(width), s)
	} else {
		w.detailsFrom = max(w.detailsFrom, s.End.UnixNano())
		st.markUnsafeLocked(k.App, w.start+int64(width))
	}
	return Accepted
}

// ErrRollupShape is returned for a rollup that does not span exactly one window.
var ErrRollupShape = errors.New("rollup does not span exactly one aligned window")

// AddRollup records the leader's downsample of one window, replacing any earlier one
// for the same (app, version, node, window): the leader re-publishes a window when a
// late backfill changed it, and the last word is the complete one.
func (st *Store) AddRollup(s *sli.Summary, now time.Time) error {
	width := st.cfg.Width
	ws := sli.Boundary(s.Start, width)
	st.mu.Lock()
	defer st.mu.Unlock()
	if !ws.Equal(s.Start) || s.End.Sub(s.Start) != width {
		st.stats.Rollups["bad"]++
		return fmt.Errorf("add rollup %s/%s on %s at %s: %w (%v)", s.Key.Deployment, s.Key.Version, s.Node, s.Start.Format(time.RFC3339), ErrRollupShape, width)
	}
	if !s.End.After(now.Add(-st.cfg.RollupRetention)) {
		st.stats.Rollups["too_old"]++
		return nil
	}
	st.lastNow = max(st.lastNow, now.UnixNano())
	k := seriesKey{s.Key.Deployment, s.Key.Version, s.Node}
	w := st.seriesLocked(k).windowLocked(ws.UnixNano())
	p := pack(s)
	w.rollup = &p
	w.rolled = fingerprintOf(s).sum()
	st.stats.Rollups["accepted"]++
	return nil
}

// Prune drops what has aged out of each tier at now: details past DetailRetention,
// local windows past RawRetention, rollups past RollupRetention, and empty series.
func (st *Store) Prune(now time.Time) {
	n := now.UnixNano()
	detailFloor := n - int64(st.cfg.DetailRetention)
	rawFloor := n - int64(st.cfg.RawRetention)
	rollFloor := n - int64(st.cfg.RollupRetention)
	width := int64(st.cfg.Width)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.lastNow = max(st.lastNow, n)
	st.pruneGroupsLocked(detailFloor)
	for k, s := range st.series {
		kept := s.windows[:0]
		for _, w := range s.windows {
			if w.details != nil && w.start <= detailFloor {
				var lastEnd int64
				w.details, lastEnd = w.details.dropThrough(w.start, detailFloor)
				w.detailsFrom = max(w.detailsFrom, lastEnd)
			}
			if w.start+width <= rawFloor {
				w.local, w.details, w.seen = nil, nil, nil
			}
			if w.start+width <= rollFloor {
				w.rollup = nil
			}
			if w.local != nil || w.rollup != nil {
				kept = append(kept, w)
			}
		}
		clear(s.windows[len(kept):])
		s.windows = kept
		if len(kept) == 0 {
			delete(st.series, k)
			list := st.byApp[k.App]
			for i, x := range list {
				if x == s {
					list = append(list[:i], list[i+1:]...)
					break
				}
			}
			if len(list) == 0 {
				delete(st.byApp, k.App)
				for ss := range st.kinds {
					if ss.App == k.App {
						delete(st.kinds, ss)
					}
				}
			} else {
				st.byApp[k.App] = list
			}
		}
	}
}

// Stats returns a copy of the counters and the current sizes.
func (st *Store) Stats() Stats {
	st.mu.RLock()
	defer st.mu.RUnlock()
	out := Stats{Raw: map[string]uint64{}, Rollups: map[string]uint64{}, Series: len(st.series)}
	for k, v := range st.stats.Raw {
		out.Raw[k] = v
	}
	for k, v := range st.stats.Rollups {
		out.Rollups[k] = v
	}
	for _, s := range st.series {
		out.Windows += len(s.windows)
		for _, w := range s.windows {
			out.Details += w.details.len(w.start)
		}
	}
	return out
}

// PendingRollups returns the local windows the leader should publish as rollups at
// now: closed for at least grace (room for stragglers), still fully held locally, and
// changed since the last rollup this replica saw or published for them. Each is a
// copy spanning exactly its window, its Route empty.
func (st *Store) PendingRollups(now time.Time, grace time.Duration) []sli.Summary {
	n := now.UnixNano()
	width := int64(st.cfg.Width)
	floor := st.localFloor(n)
	st.mu.RLock()
	defer st.mu.RUnlock()
	var out []sli.Summary
	for _, s := range st.series {
		for _, w := range s.windows {
			if w.local == nil || w.start < floor || w.start+width+int64(grace) > n {
				continue
			}
			fp := w.local.fingerprint().sum()
			if fp == w.rolled || fp == w.published {
				continue
			}
			start := time.Unix(0, w.start).UTC()
			out = append(out, w.local.summary(sli.Key{Deployment: s.key.App, Version: s.key.Version}, s.key.Node, start, start.Add(st.cfg.Width)))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if !a.Start.Equal(b.Start) {
			return a.Start.Before(b.Start)
		}
		if a.Node != b.Node {
			return a.Node < b.Node
		}
		if a.Key.Deployment != b.Key.Deployment {
			return a.Key.Deployment < b.Key.Deployment
		}
		return a.Key.Version < b.Key.Version
	})
	return out
}

// MarkPublished records that r (from PendingRollups) was published, so it is not
// offered again until the window changes.
func (st *Store) MarkPublished(r *sli.Summary) {
	k := seriesKey{r.Key.Deployment, r.Key.Version, r.Node}
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.series[k]
	if s == nil {
		return
	}
	start := r.Start.UnixNano()
	i := sort.Search(len(s.windows), func(i int) bool { return s.windows[i].start >= start })
	if i < len(s.windows) && s.windows[i].start == start {
		s.windows[i].published = fingerprintOf(r).sum()
	}
}

// localFloor is the start of the oldest window local data still holds whole: windows
// from here on answer from local data, older ones from rollups.
func (st *Store) localFloor(now int64) int64 {
	width := int64(st.cfg.Width)
	f := now - int64(st.cfg.RawRetention)
	return f - f%width + width
}
