package fleet

import (
	"sort"
	"time"

	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/slo"
)

// The store as the SLO engine's slo.Source.

// NoRegion is the scope name of nodes without a region label in a per-region SLO.
const NoRegion = "(no region)"

var _ slo.Source = (*Store)(nil)

// sloSeriesKey is slo.Series as a map key.
type sloSeriesKey = slo.Series

// scopeSel is how a series Series handed out selects nodes: Counts needs it, and
// slo.Series carries only the scope member's name (a region and a node may share one).
type scopeSel struct {
	per   slo.ScopeKind
	nodes map[string]string
}

// matchApp reports whether spec covers app: by name, or by its selector against the
// deployment's labels.
func (st *Store) matchApp(spec *slo.Spec, app string) bool {
	if spec.App != "" {
		return spec.App == app
	}
	if st.cfg.AppLabels == nil || len(spec.Selector) == 0 {
		return false
	}
	return contains(st.cfg.AppLabels(app), spec.Selector)
}

func contains(labels, want map[string]string) bool {
	for k, v := range want {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// member is the scope member a node belongs to for sel, and whether the node is in
// the SLO's population at all.
func (st *Store) member(sel scopeSel, node string) (string, bool) {
	region, _, labels, _ := st.cfg.Nodes(node)
	if len(sel.nodes) > 0 && !contains(labels, sel.nodes) {
		return "", false
	}
	switch sel.per {
	case slo.ScopeRegion:
		if region == "" {
			return NoRegion, true
		}
		return region, true
	case slo.ScopeNode:
		return node, true
	}
	return string(slo.ScopeGlobal), true
}

// byGroups reports whether sel's counts come from the group tiers: a global or
// per-region scope over every node (no node population), whose members are unions of
// (region, zone) groups.
func (sel scopeSel) byGroups() bool { return sel.per != slo.ScopeNode && len(sel.nodes) == 0 }

// groupMember is the scope member of a group for a by-groups scope.
func groupMember(sel scopeSel, region string) string {
	if sel.per == slo.ScopeRegion {
		if region == "" {
			return NoRegion
		}
		return region
	}
	return string(slo.ScopeGlobal)
}

// Series implements slo.Source: the spec's apps by version, split by its scope, with
// requests in the span. A global or per-region scope over every node reads the group
// tiers (regions as the nodes had when their summaries arrived); a per-node scope or
// a node population reads each node's data.
func (st *Store) Series(spec *slo.Spec, from, to time.Time) []slo.Series {
	sel := scopeSel{per: spec.Scope.Per, nodes: spec.Scope.Nodes}
	if sel.per == "" {
		sel.per = slo.ScopeGlobal
	}
	f, t := from.UnixNano(), to.UnixNano()
	if spec.SLI.Kind == slo.Latency {
		st.mu.Lock()
		st.trackLocked(spec.SLI.Threshold)
		st.mu.Unlock()
	}
	seen := map[slo.Series]bool{}
	var out []slo.Series
	st.mu.RLock()
	var apps []string
	if spec.App != "" {
		apps = []string{spec.App}
	} else {
		for app := range st.longByApp {
			if st.matchApp(spec, app) {
				apps = append(apps, app)
			}
		}
		for app := range st.byApp {
			if _, ok := st.longByApp[app]; !ok && st.matchApp(spec, app) {
				apps = append(apps, app)
			}
		}
	}
	for _, app := range apps {
		if sel.byGroups() {
			for _, g := range st.longByApp[app] {
				ss := slo.Series{App: g.key.App, Version: g.key.Version, Scope: groupMember(sel, g.key.Region)}
				if !seen[ss] && st.longHasLocked(g, f, t) {
					seen[ss] = true
					out = append(out, ss)
				}
			}
			continue
		}
		for _, s := range st.byApp[app] {
			m, ok := st.member(sel, s.key.Node)
			if !ok {
				continue
			}
			ss := slo.Series{App: s.key.App, Version: s.key.Version, Scope: m}
			if seen[ss] {
				continue
			}
			var c slo.Counts
			st.countNodeLocked(s, slo.SLI{Kind: slo.Availability}, f, t, &c)
			if c.Total > 0 {
				seen[ss] = true
				out = append(out, ss)
			}
		}
	}
	st.mu.RUnlock()
	st.mu.Lock()
	for _, ss := range out {
		st.kinds[ss] = sel
	}
	st.mu.Unlock()
	return out
}

// longHasLocked reports whether group g has requests in a window overlapping (f, t].
func (st *Store) longHasLocked(g *gseries, f, t int64) bool {
	for l := range nLevels {
		w := st.levelWidth(l)
		for i := range g.levels[l] {
			x := &g.levels[l][i]
			if x.start < t && x.start+w > f && x.t.req > 0 {
				return true
			}
		}
	}
	return false
}

// Counts implements slo.Source: availability counts non-5xx responses as good;
// latency counts the requests in buckets at or below the threshold's bucket
// (sli.Sketch.CountAtMost: up to γ ≈ 1.02 × threshold may count as good). Past the
// detail tier a node's latency counts exist for tracked thresholds only; windows
// without them are left out of both counts (docs/sli.md, "Tiers").
func (st *Store) Counts(ser slo.Series, sl slo.SLI, from, to time.Time) slo.Counts {
	f, t := from.UnixNano(), to.UnixNano()
	now := max(t, st.nowHint())
	st.mu.RLock()
	defer st.mu.RUnlock()
	sel, ok := st.kinds[ser]
	if !ok {
		// Not handed out by Series: read the scope from its name.
		sel = scopeSel{per: slo.ScopeRegion}
		switch {
		case ser.Scope == string(slo.ScopeGlobal):
			sel.per = slo.ScopeGlobal
		case st.series[seriesKey{ser.App, ser.Version, ser.Scope}] != nil:
			sel.per = slo.ScopeNode
		}
	}
	var c slo.Counts
	if sel.byGroups() {
		st.countGroupsLocked(ser, sel, sl, f, t, now, &c)
		return c
	}
	cands := st.byApp[ser.App]
	if sel.per == slo.ScopeNode {
		// A node scope's member is the node itself: one series at most, found without
		// scanning the app's (a 1,000-node fleet has thousands per app).
		cands = nil
		if s := st.series[seriesKey{ser.App, ser.Version, ser.Scope}]; s != nil {
			cands = []*series{s}
		}
	}
	for _, s := range cands {
		if s.key.Version != ser.Version {
			continue
		}
		if m, ok := st.member(sel, s.key.Node); !ok || m != ser.Scope {
			continue
		}
		st.countNodeLocked(s, sl, f, t, &c)
	}
	return c
}

// addCounts adds one stored interval's counts for sl to c.
func (st *Store) addCounts(x *stored, sl slo.SLI, c *slo.Counts) {
	n, errs := x.requestsErrors()
	c.Total += int64(n)
	if sl.Kind == slo.Latency {
		var scratch sli.Sketch
		c.Good += int64(x.countAtMost(sl.Threshold, &scratch))
	} else {
		c.Good += int64(n - errs)
	}
}

// addTally adds a tally's counts for sl to c, or reports that it does not know them
// (a latency threshold it was not tracking); idx is the threshold's index.
func addTally(x *tally, sl slo.SLI, idx int, c *slo.Counts) bool {
	good := x.req - x.errs
	if sl.Kind == slo.Latency {
		var ok bool
		if good, ok = x.good(idx); !ok {
			return false
		}
	}
	c.Total += int64(x.req)
	c.Good += int64(good)
	return true
}

// countNodeLocked adds series s's counts over intervals ending in (f, t]: its detail
// tier as collectLocked reads it (whole windows from their tallies), then its runs'
// windows, hours and days ending in range.
func (st *Store) countNodeLocked(s *series, sl slo.SLI, f, t int64, c *slo.Counts) {
	idx := -1
	if sl.Kind == slo.Latency {
		idx = st.thresholdIndex(sl.Threshold)
	}
	width := int64(st.cfg.Width)
	i := sort.Search(len(s.windows), func(i int) bool { return s.windows[i].start+width > f })
	for ; i < len(s.windows); i++ {
		w := s.windows[i]
		ws, we := w.start, w.start+width
		if ws >= t {
			break
		}
		whole := func() {
			if !addTally(&w.cnt, sl, idx, c) {
				w.whole(func(x *stored) { st.addCounts(x, sl, c) })
			}
		}
		switch {
		case f <= ws && we <= t:
			whole()
		case w.detailsFrom <= max(f, ws):
			var x stored
			w.details.each(ws, func(e detailEntry) bool {
				if e.end > f && e.end <= t {
					x.b = e.b
					st.addCounts(&x, sl, c)
				}
				return true
			})
		case we > f && we <= t:
			whole()
		}
	}
	for l := range nLevels {
		lw := st.levelWidth(l)
		r := &s.runs[l]
		if r.n == 0 || r.base >= t || r.base+int64(r.n)*lw <= f {
			continue
		}
		r.each(lw, func(start int64, x *tally) bool {
			if end := start + lw; end > f && end <= t {
				addTally(x, sl, idx, c)
			}
			return start+lw <= t
		})
	}
}

// countGroupsLocked adds a by-groups series' counts over (f, t] at now: whole group
// windows, hours and days ending before the detail tier's first whole window, then the
// detail tier from the group index over it when that answers as the nodes' data
// would (groupTierCovers), else from the member nodes' detail tier.
func (st *Store) countGroupsLocked(ser slo.Series, sel scopeSel, sl slo.SLI, f, t, now int64, c *slo.Counts) {
	idx := -1
	if sl.Kind == slo.Latency {
		idx = st.thresholdIndex(sl.Threshold)
	}
	b := st.recentFrom(now)
	if f < b {
		for _, g := range st.longByApp[ser.App] {
			if g.key.Version != ser.Version || groupMember(sel, g.key.Region) != ser.Scope {
				continue
			}
			st.eachLongLocked(g, f, min(t, b), func(x *gslot) {
				if addTally(&x.t, sl, idx, c) {
					return
				}
				var sum sli.Summary
				sum.Latency = &sli.Sketch{}
				x.merged(&sum)
				c.Total += int64(sum.Requests())
				c.Good += int64(sum.Latency.CountAtMost(sl.Threshold))
			})
		}
	}
	from := max(f, b)
	if from >= t {
		return
	}
	if st.groupTierCoversCached(Query{App: ser.App}, nil, from, now, true) {
		lo := from - int64(st.cfg.Width)
		for ak, list := range st.agg {
			if ak.App != ser.App || ak.Version != ser.Version || groupMember(sel, ak.Region) != ser.Scope {
				continue
			}
			i := sort.Search(len(list), func(i int) bool { return list[i].start > lo })
			for ; i < len(list); i++ {
				if x := &list[i]; x.end > from && x.end <= t {
					if !addTally(&x.t, sl, idx, c) {
						st.addCounts(&x.s, sl, c)
					}
				}
			}
		}
		return
	}
	for _, s := range st.byApp[ser.App] {
		if s.key.Version != ser.Version {
			continue
		}
		if m, ok := st.member(sel, s.key.Node); !ok || m != ser.Scope {
			continue
		}
		var x slo.Counts
		// The detail tier only: everything before from is in the group tier above.
		st.collectLocked(s, from, t, func(p *stored) { st.addCounts(p, sl, &x) })
		c.Total += x.Total
		c.Good += x.Good
	}
}

// nowHint is the latest time Add, AddRollup or Prune saw: Source's calls carry no
// "now", and which tier answers a window depends on it.
func (st *Store) nowHint() int64 {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.lastNow
}
