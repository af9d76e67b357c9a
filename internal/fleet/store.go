package fleet

import (
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sort"
	"sync"
	"time"

	"fermion.dev/fermion/internal/sli"
)

// Defaults for Config.
const (
	// DefaultWidth is the width of a window (the finest resolution past the detail
	// tier) and of a rollup.
	DefaultWidth = 5 * time.Minute
	// DefaultDetailRetention keeps raw intervals (and every per-node latency sketch)
	// long enough for `fermion top`'s default window and the SLO tiers' shortest
	// window (5 min) with room to spare.
	DefaultDetailRetention = 15 * time.Minute
	// DefaultRawRetention matches the raw stream's MaxAge: 5-minute windows are kept
	// this long, and after a restart every window younger than this is rebuilt from
	// the raw stream.
	DefaultRawRetention = 6 * time.Hour
	// DefaultHourRetention keeps hours up to the longest burn-rate window (the 3-day
	// ticket tier).
	DefaultHourRetention = 3 * 24 * time.Hour
	// DefaultRollupRetention covers the longest SLO window; past DefaultHourRetention
	// it is kept in days.
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
	HourRetention   time.Duration
	RollupRetention time.Duration
	MaxSkew         time.Duration
	// Nodes resolves a node's region, zone and labels; nil: every node is unknown.
	Nodes NodeInfo
	// AppLabels resolves a deployment's labels for SLO selectors; nil: selectors match
	// nothing.
	AppLabels func(app string) map[string]string
	// Thresholds lists the latency thresholds of the SLOs in force, read at every
	// Prune: past the detail tier the store keeps per node only the requests above
	// each tracked threshold, so a node-scoped latency SLO's history beyond 15
	// minutes starts when its threshold was first tracked (a restarted replica
	// tracks them from the start). nil: thresholds are tracked when Series is first
	// asked about a latency SLO.
	Thresholds func() []time.Duration
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
	if c.HourRetention <= 0 {
		c.HourRetention = min(DefaultHourRetention, c.RollupRetention)
	}
	if c.MaxSkew <= 0 {
		c.MaxSkew = DefaultMaxSkew
	}
	if c.Nodes == nil {
		c.Nodes = func(string) (string, string, map[string]string, bool) { return "", "", nil, false }
	}
	switch {
	case time.Hour%c.Width != 0:
		return fmt.Errorf("new sli store: width %v does not divide an hour", c.Width)
	case c.DetailRetention > c.RawRetention:
		return fmt.Errorf("new sli store: detail retention %v exceeds raw retention %v", c.DetailRetention, c.RawRetention)
	case c.RawRetention > c.HourRetention:
		return fmt.Errorf("new sli store: raw retention %v exceeds hour retention %v", c.RawRetention, c.HourRetention)
	case c.HourRetention > c.RollupRetention:
		return fmt.Errorf("new sli store: hour retention %v exceeds rollup retention %v", c.HourRetention, c.RollupRetention)
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
	Series  int               // (app, version, node) with any data
	Windows int               // per-node windows still in the detail tier
	Details int               // raw intervals in the detail tier
	Slots   int               // per-node tallies past the detail tier (windows, hours, days)
	Groups  int               // group windows, hours and days with sketches
	Staged  int               // rollups waiting to be applied (a rebuild reading old windows)
}

// seriesKey is one stored population: an app's version on one node. Routes are folded
// together on arrival; nothing the store answers is per route.
type seriesKey struct {
	App, Version, Node string
}

// nLevels is the number of per-node tally runs and group resolutions: windows
// (Width, kept RawRetention), hours (kept HourRetention) and days (kept
// RollupRetention).
const nLevels = 3

type series struct {
	key seriesKey
	// windows are the detail tier's windows, ascending: those that still hold raw
	// intervals (ending after now − DetailRetention).
	windows []*window
	// runs are the node's tallies past the detail tier, one run per level.
	runs [nLevels]run
	// seen dedupes raw summaries for RawRetention.
	seen []seenRun
	// rawFrom is the start of the earliest window raw summaries fed (0: none): a
	// rollup of a later window is already counted.
	rawFrom int64
}

// window is one Width-aligned window of one series while the detail tier holds it.
type window struct {
	start int64 // unix ns
	// cnt is the tally of every summary accepted for the window.
	cnt tally
	// details are the raw intervals, one per interval start (routes merged),
	// ascending.
	details detailBuf
	// local is the whole window's merge, made when details stop holding all of it
	// (its first interval pruned, or a summary older than the detail tier); nil while
	// details hold every summary.
	local *stored
	// detailsFrom is the time (unix ns) from which details hold every interval of the
	// window: 0 until a summary skipped the details or pruning dropped some.
	detailsFrom int64
	// rolled is the fingerprint of the rollup read back for the window; published
	// what this replica last published for it (leader only): both stop re-publishing.
	rolled, published uint64
	// ver counts changes; checked is the ver PendingRollups last found published, so
	// an unchanged window costs no merge.
	ver, checked uint32
}

// whole calls fn with the window's summaries as stored: local, or every detail.
func (w *window) whole(fn func(*stored)) {
	if w.local != nil {
		fn(w.local)
		return
	}
	var x stored
	w.details.each(w.start, func(e detailEntry) bool {
		x.b = e.b
		fn(&x)
		return true
	})
}

// materialise makes local from the details (which hold every summary until then).
func (w *window) materialise() {
	if w.local != nil {
		return
	}
	sum := sli.Summary{Latency: &sli.Sketch{}}
	w.whole(func(x *stored) { x.mergeTo(&sum) })
	p := pack(&sum)
	w.local = &p
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
// everything (a leaf lock: nothing is called while it is held but Config's lookups).
type Store struct {
	cfg Config

	mu      sync.RWMutex
	series  map[seriesKey]*series
	byApp   map[string][]*series
	stats   Stats
	kinds   map[sloSeriesKey]scopeSel // what Series handed out, for Counts
	lastNow int64                     // the latest now seen, for Prune's horizon
	scratch sli.Sketch                // for writers, under mu

	// thr are the tracked latency thresholds, append-only (tally.go).
	thr []time.Duration
	// foldedTo[l] is the horizon of level l's last fold: a window of level l whose
	// level-l+1 parent ends at or before it has moved up (days: was dropped).
	foldedTo [nLevels]int64

	// The group tier over the detail tier (agg.go).
	agg    map[aggKey][]aggInterval
	unsafe map[string]int64 // app → end of the latest window holding a summary not in agg
	where  map[string]nodeWhere
	moved  int64 // end of the latest interval in agg under a node's former place

	// placesMu guards the cached answer of nodesInPlace (taken under mu, read or
	// write; a leaf).
	placesMu sync.Mutex
	placesAt int64
	placesOK bool

	// The long group tier (groups.go).
	long      map[aggKey]*gseries
	longByApp map[string][]*gseries

	// Rollups of windows older than the raw stream, held until no re-published one
	// can follow (applyStagedLocked).
	staged    map[seriesKey]map[int64]stored
	watermark int64 // start of the latest rollup window read
}

// New returns an empty store.
func New(cfg Config) (*Store, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return &Store{cfg: cfg, series: map[seriesKey]*series{}, byApp: map[string][]*series{},
		stats: Stats{Raw: map[string]uint64{}, Rollups: map[string]uint64{}}, kinds: map[sloSeriesKey]scopeSel{},
		agg: map[aggKey][]aggInterval{}, unsafe: map[string]int64{}, where: map[string]nodeWhere{},
		long: map[aggKey]*gseries{}, longByApp: map[string][]*gseries{}, staged: map[seriesKey]map[int64]stored{}}, nil
}

// Config returns the store's configuration with defaults filled in.
func (st *Store) Config() Config { return st.cfg }

func (st *Store) levelWidth(l int) int64 {
	return [nLevels]int64{int64(st.cfg.Width), int64(time.Hour), int64(24 * time.Hour)}[l]
}

func (st *Store) levelKeep(l int) time.Duration {
	return [nLevels]time.Duration{st.cfg.RawRetention, st.cfg.HourRetention, st.cfg.RollupRetention}[l]
}

// foldsLocked reports whether a level-l window starting at start is past horizon:
// its parent (the level-l+1 window holding it) ends at or before it; for days, the
// day itself.
func (st *Store) foldsLocked(l int, start, horizon int64) bool {
	if l+1 < nLevels {
		pw := st.levelWidth(l + 1)
		return alignDown(start, pw)+pw <= horizon
	}
	return start+st.levelWidth(l) <= horizon
}

// levelOfLocked is the finest level still holding the window starting at ws.
func (st *Store) levelOfLocked(ws int64) int {
	for l := range nLevels - 1 {
		if !st.foldsLocked(l, alignDown(ws, st.levelWidth(l)), st.foldedTo[l]) {
			return l
		}
	}
	return nLevels - 1
}

// trackLocked starts tracking threshold d (a no-op when tracked or at MaxThresholds).
func (st *Store) trackLocked(d time.Duration) {
	if d <= 0 || len(st.thr) >= MaxThresholds || slices.Contains(st.thr, d) {
		return
	}
	st.thr = append(st.thr, d)
}

// thresholdIndex is d's index among the tracked thresholds, or -1.
func (st *Store) thresholdIndex(d time.Duration) int { return slices.Index(st.thr, d) }

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
	w := &window{start: start, ver: 1}
	s.windows = append(s.windows, nil)
	copy(s.windows[i+1:], s.windows[i:])
	s.windows[i] = w
	return w
}

func (s *series) findWindow(start int64) *window {
	i := sort.Search(len(s.windows), func(i int) bool { return s.windows[i].start >= start })
	if i < len(s.windows) && s.windows[i].start == start {
		return s.windows[i]
	}
	return nil
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
	width := int64(st.cfg.Width)
	ws := sli.Boundary(s.Start, st.cfg.Width).UnixNano()
	if ws < st.localFloor(now.UnixNano()) {
		// The window began before the raw stream's horizon: its rollup, not its
		// remaining summaries, is what every replica counts.
		return TooOld
	}
	k := seriesKey{s.Key.Deployment, s.Key.Version, s.Node}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.lastNow = max(st.lastNow, now.UnixNano())
	ser := st.seriesLocked(k)
	if markSeen(&ser.seen, s.Seq, s.Key.Route, int64(s.End.Sub(s.Start))) {
		return Duplicate
	}
	if ser.rawFrom == 0 || ws < ser.rawFrom {
		ser.rawFrom = ws
	}
	t := tallyOf(s, st.thr)
	detailFloor := now.UnixNano() - int64(st.cfg.DetailRetention)
	if ws+width > detailFloor {
		w := ser.windowLocked(ws)
		w.ver++
		w.cnt.merge(&t)
		if s.Start.UnixNano() > detailFloor {
			start := s.Start.UnixNano()
			w.details = w.details.put(w.start, start, s.End.UnixNano(), func(old []byte) []byte {
				if old == nil {
					return pack(s).b
				}
				p := stored{b: old}
				p.add(s, &st.scratch)
				return p.b
			})
			if w.local != nil {
				w.local.add(s, &st.scratch)
			}
			st.addGroupLocked(k, start, s.End.UnixNano(), w.start, w.start+width, s, &t)
		} else {
			w.materialise()
			w.local.add(s, &st.scratch)
			w.detailsFrom = max(w.detailsFrom, s.End.UnixNano())
			st.markUnsafeLocked(k.App, w.start+width)
		}
	} else {
		st.runAddLocked(ser, ws, &t)
	}
	st.addLongLocked(k, ws, s, &t)
	return Accepted
}

// runAddLocked adds a window's tally to the node's run at the finest level holding it.
func (st *Store) runAddLocked(ser *series, ws int64, t *tally) {
	l := st.levelOfLocked(ws)
	w := st.levelWidth(l)
	ser.runs[l].add(alignDown(ws, w), w, t)
}

// ErrRollupShape is returned for a rollup that does not span exactly one window.
var ErrRollupShape = errors.New("rollup does not span exactly one aligned window")

// AddRollup records the leader's downsample of one window. A window the raw stream
// still holds (younger than RawRetention) is counted from its raw summaries, so its
// rollup only tells the leader it was published. An older window's rollup is counted
// once no re-published one can follow it (the last word is the complete one): see
// applyStagedLocked and FlushRollups.
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
	n := now.UnixNano()
	st.lastNow = max(st.lastNow, n)
	st.stats.Rollups["accepted"]++
	k := seriesKey{s.Key.Deployment, s.Key.Version, s.Node}
	start := ws.UnixNano()
	fp := fingerprintOf(s).sum()
	if start >= st.localFloor(n) {
		ser := st.seriesLocked(k)
		w := ser.findWindow(start)
		if w == nil && start+int64(width) > n-int64(st.cfg.DetailRetention) {
			w = ser.windowLocked(start)
		}
		if w != nil {
			w.rolled, w.checked = fp, 0
		}
		return nil
	}
	if ser := st.series[k]; ser != nil && ser.rawFrom != 0 && start >= ser.rawFrom {
		return nil // counted from its raw summaries before they aged out
	}
	m := st.staged[k]
	if m == nil {
		m = map[int64]stored{}
		st.staged[k] = m
	}
	m[start] = pack(s)
	st.watermark = max(st.watermark, start)
	st.applyStagedLocked(false)
	return nil
}

// settleLocked is how long after a window starts a re-published rollup of it can
// still be written: the leader re-publishes a window only while its details hold it.
func (st *Store) settleLocked() int64 {
	return int64(st.cfg.DetailRetention + 3*st.cfg.Width)
}

// applyStagedLocked counts the staged rollups no re-published one can follow: those
// a rollup at least settle later has been read after (the rollup stream is read in
// order), or all of them.
func (st *Store) applyStagedLocked(all bool) {
	for k, m := range st.staged {
		for ws, p := range m {
			if !all && ws+st.settleLocked() > st.watermark {
				continue
			}
			sum := p.summary(sli.Key{Deployment: k.App, Version: k.Version}, k.Node, time.Unix(0, ws), time.Unix(0, ws).Add(st.cfg.Width))
			t := tallyOf(&sum, st.thr)
			st.runAddLocked(st.seriesLocked(k), ws, &t)
			st.addLongLocked(k, ws, &sum, &t)
			delete(m, ws)
		}
		if len(m) == 0 {
			delete(st.staged, k)
		}
	}
}

// FlushRollups counts every staged rollup: the caller has read the rollup stream to
// its end, so any re-published window has been read too.
func (st *Store) FlushRollups() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.applyStagedLocked(true)
}

// Prune drops what has aged out of each tier at now: the detail tier's intervals
// (their windows' tallies move to the node's runs), windows past RawRetention into
// hours, hours past HourRetention into days, days past RollupRetention, and empty
// series.
func (st *Store) Prune(now time.Time) {
	n := now.UnixNano()
	detailFloor := n - int64(st.cfg.DetailRetention)
	width := int64(st.cfg.Width)
	var thr []time.Duration
	if st.cfg.Thresholds != nil {
		thr = st.cfg.Thresholds()
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, d := range thr {
		st.trackLocked(d)
	}
	st.lastNow = max(st.lastNow, n)
	for l := range nLevels {
		st.foldedTo[l] = max(st.foldedTo[l], n-int64(st.levelKeep(l)))
	}
	st.pruneGroupsLocked(detailFloor)
	rawFloor := n - int64(st.cfg.RawRetention)
	for k, s := range st.series {
		kept := s.windows[:0]
		for _, w := range s.windows {
			if w.details != nil && w.start <= detailFloor {
				w.materialise()
				var lastEnd int64
				w.details, lastEnd = w.details.dropThrough(w.start, detailFloor)
				w.detailsFrom = max(w.detailsFrom, lastEnd)
			}
			if w.start+width <= detailFloor {
				st.runAddLocked(s, w.start, &w.cnt)
				continue
			}
			if w.start+width <= n && cap(w.details) > len(w.details) {
				w.details = detailBuf(exact(w.details)) // closed: no room needed any more
			}
			kept = append(kept, w)
		}
		clear(s.windows[len(kept):])
		s.windows = kept
		st.foldRunsLocked(s)
		s.seen = pruneSeen(s.seen, rawFloor)
		if len(s.windows) > 0 || len(s.seen) > 0 || s.runs[0].n+s.runs[1].n+s.runs[2].n > 0 {
			continue
		}
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
	st.pruneLongLocked(n)
	st.applyStagedLocked(false)
}

// foldRunsLocked moves the node's windows past RawRetention into hours and hours past
// HourRetention into days, and drops days past RollupRetention.
func (st *Store) foldRunsLocked(s *series) {
	for l := range nLevels {
		r := &s.runs[l]
		if r.n == 0 || !st.foldsLocked(l, r.base, st.foldedTo[l]) {
			continue
		}
		w := st.levelWidth(l)
		until := r.base
		for st.foldsLocked(l, until, st.foldedTo[l]) {
			until += w
		}
		r.takeBefore(w, until, func(start int64, t *tally) {
			if l+1 < nLevels {
				pw := st.levelWidth(l + 1)
				s.runs[l+1].add(alignDown(start, pw), pw, t)
			}
		})
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
		for l := range s.runs {
			s.runs[l].each(st.levelWidth(l), func(int64, *tally) bool { out.Slots++; return true })
		}
	}
	for _, g := range st.long {
		for l := range g.levels {
			out.Groups += len(g.levels[l])
		}
	}
	for _, m := range st.staged {
		out.Staged += len(m)
	}
	return out
}

// PendingRollups returns the windows the leader should publish as rollups at now:
// closed for at least grace (room for stragglers), still held by the detail tier
// (wholly: its details, or the merge made when they began to age out), and changed
// since the last rollup this replica saw or published for them. Each is a copy
// spanning exactly its window, its Route empty.
func (st *Store) PendingRollups(now time.Time, grace time.Duration) []sli.Summary {
	n := now.UnixNano()
	width := int64(st.cfg.Width)
	floor := st.localFloor(n)
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []sli.Summary
	for _, s := range st.series {
		for _, w := range s.windows {
			if w.ver == w.checked || w.start < floor || w.start+width+int64(grace) > n {
				continue
			}
			start := time.Unix(0, w.start).UTC()
			sum := sli.Summary{Key: sli.Key{Deployment: s.key.App, Version: s.key.Version}, Node: s.key.Node,
				Start: start, End: start.Add(st.cfg.Width), Latency: &sli.Sketch{}}
			w.whole(func(x *stored) { x.mergeTo(&sum) })
			fp := fingerprintOf(&sum).sum()
			if fp == w.rolled || fp == w.published {
				w.checked = w.ver
				continue
			}
			out = append(out, sum)
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
	if s := st.series[k]; s != nil {
		if w := s.findWindow(r.Start.UnixNano()); w != nil {
			w.published = fingerprintOf(r).sum()
		}
	}
}

// localFloor is the start of the oldest window the raw stream still holds whole:
// windows from here on are counted from raw summaries, older ones from rollups.
func (st *Store) localFloor(now int64) int64 {
	width := int64(st.cfg.Width)
	f := now - int64(st.cfg.RawRetention)
	return alignDown(f, width) + width
}
