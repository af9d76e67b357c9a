package fleet

import (
	"sort"

	"fermion.dev/fermion/internal/sli"
)

// The long group tier: every accepted summary (and every rollup read back for a
// window older than the raw stream) merged per (app, version, region, zone) into
// 5-minute windows kept RawRetention (6 h), hours kept HourRetention (3 d) and days
// kept RollupRetention (30 d), each with its latency sketch and its SLO tally. It is
// what answers /v1/slis over windows longer than the detail tier and the region and
// global SLO scopes: a few hundred groups instead of a series per node, so its size
// does not grow with the nodes. Region and zone are the node's when its summary
// arrived (docs/sli.md, "Tiers").

// gseries is one group's windows at each resolution, ascending by start.
type gseries struct {
	key    aggKey
	levels [nLevels][]gslot
}

// gslot is one group window. open holds it decoded while summaries still arrive
// (within the detail tier, or reopened by a late backfill); Prune packs it into s.
type gslot struct {
	start int64
	open  *sli.Summary
	s     stored
	t     tally
}

// summary returns the slot's merged summary (decoded; the caller must not keep it
// past the lock).
func (g *gslot) merged(dst *sli.Summary) {
	if g.open != nil {
		mergeInto(dst, g.open)
		return
	}
	if len(g.s.b) > 0 {
		g.s.mergeTo(dst)
	}
}

// mergeInto adds src to dst whatever their keys (dst keeps its own).
func mergeInto(dst, src *sli.Summary) {
	o := *src
	o.Key, o.Node, o.Start, o.End = dst.Key, dst.Node, dst.Start, dst.End
	if dst.Latency == nil {
		dst.Latency = &sli.Sketch{}
	}
	_ = sli.Merge(dst, o) // keys equal by construction
}

func (st *Store) gseriesLocked(k aggKey) *gseries {
	g := st.long[k]
	if g == nil {
		g = &gseries{key: k}
		st.long[k] = g
		st.longByApp[k.App] = append(st.longByApp[k.App], g)
	}
	return g
}

// slotLocked finds or inserts the slot of level l starting at start.
func (g *gseries) slotLocked(l int, start int64) *gslot {
	list := g.levels[l]
	i := sort.Search(len(list), func(i int) bool { return list[i].start >= start })
	if i < len(list) && list[i].start == start {
		return &list[i]
	}
	list = append(list, gslot{})
	copy(list[i+1:], list[i:])
	list[i] = gslot{start: start}
	g.levels[l] = list
	return &list[i]
}

// addLongLocked merges one accepted summary (or applied rollup) of series k, whose
// window starts at ws, into its group's window at the finest level still holding ws.
func (st *Store) addLongLocked(k seriesKey, ws int64, s *sli.Summary, t *tally) {
	region, zone, _, _ := st.cfg.Nodes(k.Node)
	g := st.gseriesLocked(aggKey{k.App, k.Version, region, zone})
	l := st.levelOfLocked(ws)
	slot := g.slotLocked(l, alignDown(ws, st.levelWidth(l)))
	if slot.open == nil {
		slot.open = &sli.Summary{Key: sli.Key{Deployment: k.App, Version: k.Version}, Latency: &sli.Sketch{}}
		if len(slot.s.b) > 0 {
			slot.s.mergeTo(slot.open)
			slot.s = stored{}
		}
	}
	mergeInto(slot.open, s)
	slot.t.merge(t)
}

// pruneLongLocked packs the group windows no summary should reach any more (older
// than the detail tier), folds each level's windows past its retention into the next
// level, and drops days past RollupRetention.
func (st *Store) pruneLongLocked(now int64) {
	packBefore := now - int64(st.cfg.DetailRetention)
	for k, g := range st.long {
		for l := range nLevels {
			w := st.levelWidth(l)
			horizon := st.foldedTo[l]
			list := g.levels[l]
			cut := 0
			for cut < len(list) && st.foldsLocked(l, list[cut].start, horizon) {
				cut++
			}
			if cut > 0 {
				if l+1 < nLevels {
					pw := st.levelWidth(l + 1)
					for i := range list[:cut] {
						x := &list[i]
						p := g.slotLocked(l+1, alignDown(x.start, pw))
						if p.open == nil {
							p.open = &sli.Summary{Key: sli.Key{Deployment: k.App, Version: k.Version}, Latency: &sli.Sketch{}}
							if len(p.s.b) > 0 {
								p.s.mergeTo(p.open)
								p.s = stored{}
							}
						}
						x.merged(p.open)
						p.t.merge(&x.t)
					}
				}
				list = append(list[:0:0], list[cut:]...)
				g.levels[l] = list
			}
			for i := range list {
				if x := &list[i]; x.open != nil && x.start+w <= packBefore {
					x.s, x.open = pack(x.open), nil
				}
			}
		}
		empty := true
		for l := range nLevels {
			empty = empty && len(g.levels[l]) == 0
		}
		if empty {
			delete(st.long, k)
			list := st.longByApp[k.App]
			for i, x := range list {
				if x == g {
					list = append(list[:i], list[i+1:]...)
					break
				}
			}
			if len(list) == 0 {
				delete(st.longByApp, k.App)
			} else {
				st.longByApp[k.App] = list
			}
		}
	}
}

// eachLongLocked calls fn with every group window of g at any level that ends in
// (from, to]: the older part of a query, counted in whole windows by their end.
func (st *Store) eachLongLocked(g *gseries, from, to int64, fn func(x *gslot)) {
	for l := range nLevels {
		w := st.levelWidth(l)
		list := g.levels[l]
		i := sort.Search(len(list), func(i int) bool { return list[i].start+w > from })
		for ; i < len(list) && list[i].start+w <= to; i++ {
			fn(&list[i])
		}
	}
}

func alignDown(t, w int64) int64 {
	r := t % w
	if r < 0 {
		r += w
	}
	return t - r
}
