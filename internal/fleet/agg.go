package fleet

import (
	"sort"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/sli"
)

// The group tier: the detail tier's intervals merged at ingest per (app, version,
// region, zone), so that `fermion top`'s query (grouped by app and version, or by
// region or zone, over at most 10 minutes) merges a few hundred intervals instead of
// one per node and interval (20,000 series × 30 at the fleet budget). It is an index
// over what the per-node tiers hold, never a second truth: a summary enters it exactly
// when the per-node dedupe accepts it into the detail tier, and the query uses it only
// when its answer equals the per-node one (groupTierCovers); otherwise the query reads
// the per-node data as before.

// aggKey is one group of the group tier. Region and zone are the node's at ingest.
type aggKey struct {
	App, Version, Region, Zone string
}

// aggInterval is the merge of every accepted summary of one group that started at
// start; end is their common end.
type aggInterval struct {
	start, end int64
	s          stored
	t          tally
}

// nodeWhere is where a node was when its summaries entered the group tier, and the
// end of its latest one there (for pruning).
type nodeWhere struct {
	region, zone string
	last         int64
}

// addGroupLocked adds s (accepted into the detail tier of the window [ws, we)) to the
// group tier. A summary the per-node query might count differently (one crossing its
// window's end, or whose interval start another summary of the group shares with a
// different end) is left out and marks its app unsafe up to we: queries reaching into
// that window read the per-node data.
func (st *Store) addGroupLocked(k seriesKey, start, end, ws, we int64, s *sli.Summary, t *tally) {
	region, zone, _, _ := st.cfg.Nodes(k.Node)
	if w, ok := st.where[k.Node]; ok && (w.region != region || w.zone != zone) {
		// The node moved: its earlier intervals sit under its old place. The query
		// notices (groupTierCovers compares every node's place) until they age out.
		st.where[k.Node] = nodeWhere{region: region, zone: zone, last: max(w.last, end)}
		st.moved = max(st.moved, w.last)
	} else {
		st.where[k.Node] = nodeWhere{region: region, zone: zone, last: max(w.last, end)}
	}
	if end > we {
		st.markUnsafeLocked(k.App, we)
		return
	}
	ak := aggKey{k.App, k.Version, region, zone}
	list := st.agg[ak]
	i := sort.Search(len(list), func(i int) bool { return list[i].start >= start })
	if i < len(list) && list[i].start == start {
		if list[i].end != end {
			st.markUnsafeLocked(k.App, we)
			return
		}
		list[i].s.add(s, &st.scratch)
		list[i].t.merge(t)
		return
	}
	list = append(list, aggInterval{})
	copy(list[i+1:], list[i:])
	list[i] = aggInterval{start: start, end: end, s: pack(s)}
	list[i].t.merge(t)
	st.agg[ak] = list
}

func (st *Store) markUnsafeLocked(app string, until int64) {
	st.unsafe[app] = max(st.unsafe[app], until)
}

// pruneGroupsLocked drops the group tier's intervals that started at or before
// detailFloor, as Prune drops the detail tier's.
func (st *Store) pruneGroupsLocked(detailFloor int64) {
	for k, list := range st.agg {
		i := sort.Search(len(list), func(i int) bool { return list[i].start > detailFloor })
		if i == 0 {
			continue
		}
		if i == len(list) {
			delete(st.agg, k)
			continue
		}
		n := copy(list, list[i:])
		clear(list[n:])
		st.agg[k] = list[:n]
	}
	for app, until := range st.unsafe {
		if until <= detailFloor {
			delete(st.unsafe, app)
		}
	}
	for n, w := range st.where {
		if w.last <= detailFloor {
			delete(st.where, n)
		}
	}
}

// groupTierCovers reports whether the group tier answers q over (from, to] exactly as
// the per-node data would: q neither filters nor groups by node; every window it
// touches lies inside the detail tier with no pruned intervals (the window holding
// from starts after now − DetailRetention); no summary of a queried app left out of the group
// tier falls in a window it touches; and every node is still where it was at ingest.
func (st *Store) groupTierCovers(q Query, by map[string]bool, from, now int64) bool {
	return st.groupTierCoversCached(q, by, from, now, false)
}

// groupTierCoversCached is groupTierCovers, with the nodes' places cached when cached
// (nodesInPlace).
func (st *Store) groupTierCoversCached(q Query, by map[string]bool, from, now int64, cached bool) bool {
	if q.Node != "" || by["node"] {
		return false
	}
	// The detail tier was last pruned at lastNow, which a query's now may precede.
	if alignDown(from, int64(st.cfg.Width)) <= max(now, st.lastNow)-int64(st.cfg.DetailRetention) {
		return false // the window holding from has lost intervals
	}
	if st.moved > from-int64(st.cfg.Width) {
		return false
	}
	if q.App != "" {
		if st.unsafe[q.App] > from {
			return false
		}
	} else {
		for _, until := range st.unsafe {
			if until > from {
				return false
			}
		}
	}
	return st.nodesInPlace(cached)
}

// nodesInPlace reports whether every node in the group index is still where it was
// when its summaries arrived. It looks up every node; cached, it reuses an answer
// computed within the last second of the store's time: the SLO engine asks it for
// every region and global series of a tick, and a relabelled node is then noticed a
// second late at most.
func (st *Store) nodesInPlace(cached bool) bool {
	st.placesMu.Lock()
	defer st.placesMu.Unlock()
	if cached && st.placesAt != 0 && st.lastNow-st.placesAt < int64(time.Second) && st.lastNow >= st.placesAt {
		return st.placesOK
	}
	ok := true
	for n, w := range st.where {
		if r, z, _, _ := st.cfg.Nodes(n); r != w.region || z != w.zone {
			ok = false
			break
		}
	}
	st.placesAt, st.placesOK = st.lastNow, ok
	return ok
}

// groupOf says whether a group-tier key matches q's filters and, if it does, which
// result group it falls in (its dimensions kept where by groups on them).
func (q Query) groupOf(ak aggKey, by map[string]bool) (groupKey, bool) {
	dims := [...]string{ak.App, ak.Version, "", ak.Region, ak.Zone}
	for i, f := range [...]string{q.App, q.Version, "", q.Region, q.Zone} {
		if f != "" && f != dims[i] {
			return groupKey{}, false
		}
	}
	var k groupKey
	for i, d := range v1.SLIDimensions {
		if by[d] {
			k[i] = dims[i]
		}
	}
	return k, true
}

// queryGroupsLocked answers q from the group tier, calling get for each group with
// data (as Query's per-node loop does).
func (st *Store) queryGroupsLocked(q Query, by map[string]bool, from, to int64, get func(groupKey) *group) {
	for ak, list := range st.agg {
		k, ok := q.groupOf(ak, by)
		if !ok {
			continue
		}
		// An interval in the tier lies inside its window, so one ending after from
		// started after from − Width.
		lo := from - int64(st.cfg.Width)
		i := sort.Search(len(list), func(i int) bool { return list[i].start > lo })
		var g *group
		for ; i < len(list); i++ {
			if x := &list[i]; x.end > from && x.end <= to {
				if g == nil {
					g = get(k)
				}
				x.s.mergeTo(&g.sum)
				g.has = true
			}
		}
	}
}
