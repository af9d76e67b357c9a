package fleet

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/diag"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/slo"
)

// DefaultWindow is the window of a query that names none: what `fermion top` shows.
const DefaultWindow = 5 * time.Minute

// Query selects and groups the fleet's SLIs: series whose dimensions equal every
// non-empty filter, grouped by the dimensions in By, over the window ending now.
type Query struct {
	App, Version, Node, Region, Zone string
	// By lists dimensions (v1.SLIDimensions) in that canonical order.
	By     []string
	Window time.Duration
}

// QueryError is a bad query parameter: which one, and what to write instead.
type QueryError struct {
	Param   string
	Message string
}

func (e *QueryError) Error() string { return e.Param + ": " + e.Message }

var queryParams = []string{"app", "version", "node", "region", "zone", "by", "window"}

// maxQueryValue bounds a filter value: names are at most 253 bytes (sli.MaxNameLen).
const maxQueryValue = 253

// ParseQuery reads /v1/slis's parameters. Each appears at most once; unknown ones and
// unknown dimensions are refused with the closest valid name.
func ParseQuery(v url.Values, maxWindow time.Duration) (Query, error) {
	q := Query{By: []string{"app", "version"}, Window: DefaultWindow}
	names := slices.Sorted(maps.Keys(v))
	for _, k := range names {
		if !slices.Contains(queryParams, k) {
			msg := fmt.Sprintf("unknown parameter; use %s", strings.Join(queryParams, ", "))
			if c := diag.Closest(k, queryParams); c != "" {
				msg = fmt.Sprintf("unknown parameter; did you mean %s?", c)
			}
			return Query{}, &QueryError{Param: k, Message: msg}
		}
		if len(v[k]) != 1 {
			return Query{}, &QueryError{Param: k, Message: fmt.Sprintf("given %d times; give it once (by takes a comma-separated list)", len(v[k]))}
		}
		val := v[k][0]
		if len(val) > maxQueryValue*len(v1.SLIDimensions) {
			return Query{}, &QueryError{Param: k, Message: "value too long"}
		}
		switch k {
		case "by":
			by, err := parseBy(val)
			if err != nil {
				return Query{}, err
			}
			q.By = by
		case "window":
			d, err := slo.ParseWindow(val)
			if err != nil {
				return Query{}, &QueryError{Param: k, Message: err.Error()}
			}
			if d > maxWindow {
				return Query{}, &QueryError{Param: k, Message: fmt.Sprintf("%s is longer than the %s the server keeps", val, slo.FormatWindow(maxWindow))}
			}
			if d < time.Second {
				return Query{}, &QueryError{Param: k, Message: fmt.Sprintf("%s is shorter than a second; SLIs come in 10 s intervals, use 1m or more", val)}
			}
			q.Window = d
		default:
			if val == "" || len(val) > maxQueryValue {
				return Query{}, &QueryError{Param: k, Message: fmt.Sprintf("give a name of 1–%d bytes, or leave the parameter out", maxQueryValue)}
			}
			*map[string]*string{"app": &q.App, "version": &q.Version, "node": &q.Node, "region": &q.Region, "zone": &q.Zone}[k] = val
		}
	}
	return q, nil
}

func parseBy(val string) ([]string, error) {
	if val == "" {
		return []string{}, nil // one row for everything selected
	}
	seen := map[string]bool{}
	for _, d := range strings.Split(val, ",") {
		d = strings.TrimSpace(d)
		if !slices.Contains(v1.SLIDimensions, d) {
			msg := fmt.Sprintf("%q is not a dimension; use a comma-separated list of %s", d, strings.Join(v1.SLIDimensions, ", "))
			if c := diag.Closest(d, v1.SLIDimensions); c != "" && d != "" {
				msg = fmt.Sprintf("%q is not a dimension; did you mean %s?", d, c)
			}
			return nil, &QueryError{Param: "by", Message: msg}
		}
		if seen[d] {
			return nil, &QueryError{Param: "by", Message: fmt.Sprintf("%s is listed twice", d)}
		}
		seen[d] = true
	}
	var by []string
	for _, d := range v1.SLIDimensions {
		if seen[d] {
			by = append(by, d)
		}
	}
	return by, nil
}

// Values encodes q as the query parameters ParseQuery reads back.
func (q Query) Values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"app": q.App, "version": q.Version, "node": q.Node, "region": q.Region, "zone": q.Zone} {
		if s != "" {
			v.Set(k, s)
		}
	}
	v.Set("by", strings.Join(q.By, ","))
	if q.Window > 0 {
		v.Set("window", slo.FormatWindow(q.Window))
	}
	return v
}

// InstanceCount is how many instances of an app's version a node last reported.
type InstanceCount struct {
	App, Version, Node string
	N                  int
}

type groupKey [5]string // app, version, node, region, zone; "" where not grouped

type group struct {
	sum       sli.Summary
	has       bool
	instances int
}

// NodeQueryError is the message for a per-node query over a window longer than the
// detail tier, the only tier with per-node latency sketches.
func nodeQueryError(detail time.Duration) string {
	return fmt.Sprintf("per-node latency is kept for %s (the detail tier): with node= or by=node ask for window=%s or less, or leave node out to read app, version, region and zone over up to 30d",
		slo.FormatWindow(detail), slo.FormatWindow(detail))
}

// CheckQuery refuses what the store cannot answer as asked: a query that filters or
// groups by node over a window longer than DetailRetention (past it the store keeps
// per node only the SLO counts, no latency sketch).
func (st *Store) CheckQuery(q Query) error {
	perNode := q.Node != "" || slices.Contains(q.By, "node")
	if perNode && q.Window > st.cfg.DetailRetention {
		return &QueryError{Param: "window", Message: nodeQueryError(st.cfg.DetailRetention)}
	}
	return nil
}

// Query answers q at now: one row per group with data or instances, sorted by the
// grouped dimensions. instances are the nodes' last reported instance counts. A query
// CheckQuery refuses is answered from the detail tier alone.
func (st *Store) Query(q Query, now time.Time, instances []InstanceCount) v1.SLIList {
	return st.query(q, now, instances, true)
}

// query is Query; groupTier false reads the recent part from the per-node data only
// (for the tests that check the two agree).
func (st *Store) query(q Query, now time.Time, instances []InstanceCount, groupTier bool) v1.SLIList {
	if q.Window <= 0 {
		q.Window = DefaultWindow
	}
	groups, from := st.groups(q, now, instances, groupTier)
	out := v1.SLIList{From: time.Unix(0, from).UTC(), To: now.UTC(), WindowSeconds: q.Window.Seconds(), By: q.By, Groups: []v1.SLIGroup{}}
	if out.By == nil {
		out.By = []string{}
	}
	for k, g := range groups {
		out.Groups = append(out.Groups, row(k, g, q.Window))
	}
	sort.Slice(out.Groups, func(i, j int) bool {
		a, b := out.Groups[i], out.Groups[j]
		ka := [...]string{a.App, a.Version, a.Node, a.Region, a.Zone}
		kb := [...]string{b.App, b.Version, b.Node, b.Region, b.Zone}
		return slices.Compare(ka[:], kb[:]) < 0
	})
	return out
}

// Merged returns the merge of every summary of app's version — all nodes, all routes —
// over the intervals ending in (from, to], read as a query at to reads them (the
// detail tier up to 15 minutes back, whole group windows, hours and days beyond), and
// whether there was any. Its Key is (app, version, no route); Node is empty. It is
// the call for a rollout's metric source comparing versions over a span.
func (st *Store) Merged(app, version string, from, to time.Time) (sli.Summary, bool) {
	q := Query{App: app, Version: version, By: []string{}, Window: to.Sub(from)}
	if q.Window <= 0 {
		return sli.Summary{}, false
	}
	groups, _ := st.groups(q, to, nil, true)
	g := groups[groupKey{}]
	if g == nil || !g.has {
		return sli.Summary{}, false
	}
	sum := g.sum
	sum.Key, sum.Node = sli.Key{Deployment: app, Version: version}, ""
	sum.Start, sum.End = from, to
	return sum, true
}

// groups computes q's groups at now and returns them with the query's from (unix ns).
func (st *Store) groups(q Query, now time.Time, instances []InstanceCount, groupTier bool) (map[groupKey]*group, int64) {
	to := now.UnixNano()
	from := to - int64(q.Window)
	by := map[string]bool{}
	for _, d := range q.By {
		by[d] = true
	}
	where := map[string]struct{ region, zone string }{}
	locate := func(node string) (string, string) {
		if l, ok := where[node]; ok {
			return l.region, l.zone
		}
		r, z, _, _ := st.cfg.Nodes(node)
		where[node] = struct{ region, zone string }{r, z}
		return r, z
	}
	keyOf := func(app, version, node string) (groupKey, bool) {
		region, zone := locate(node)
		for _, f := range [...][2]string{{q.App, app}, {q.Version, version}, {q.Node, node}, {q.Region, region}, {q.Zone, zone}} {
			if f[0] != "" && f[0] != f[1] {
				return groupKey{}, false
			}
		}
		var k groupKey
		for i, d := range v1.SLIDimensions {
			if by[d] {
				k[i] = [...]string{app, version, node, region, zone}[i]
			}
		}
		return k, true
	}
	groups := map[groupKey]*group{}
	get := func(k groupKey) *group {
		g := groups[k]
		if g == nil {
			g = &group{sum: sli.Summary{Latency: &sli.Sketch{}}}
			groups[k] = g
		}
		return g
	}
	recent := func(from int64) {
		if groupTier && st.groupTierCovers(q, by, from, to) {
			st.queryGroupsLocked(q, by, from, to, get)
		} else {
			st.queryNodesLocked(q, from, to, keyOf, get)
		}
	}
	st.mu.RLock()
	if q.Node != "" || by["node"] || from >= to-int64(st.cfg.DetailRetention) {
		recent(from)
	} else {
		// Past the detail tier: whole group windows, hours and days ending up to the
		// first window the detail tier holds whole, then that tier.
		b := st.recentFrom(to)
		st.queryLongLocked(q, by, from, b, get)
		recent(b)
	}
	st.mu.RUnlock()
	for _, ic := range instances {
		if k, ok := keyOf(ic.App, ic.Version, ic.Node); ok {
			get(k).instances += ic.N
		}
	}
	return groups, from
}

// recentFrom is the start of the first window the detail tier holds whole at now:
// the boundary between a long query's two parts.
func (st *Store) recentFrom(now int64) int64 {
	w := int64(st.cfg.Width)
	return alignDown(now-int64(st.cfg.DetailRetention), w) + w
}

// queryLongLocked answers q over (from, to] from the long group tier: every group
// window, hour and day ending in it, placed where its nodes were when their summaries
// arrived.
func (st *Store) queryLongLocked(q Query, by map[string]bool, from, to int64, get func(groupKey) *group) {
	if to <= from {
		return
	}
	var gs []*gseries
	if q.App != "" {
		gs = st.longByApp[q.App]
	} else {
		for _, g := range st.long {
			gs = append(gs, g)
		}
	}
	for _, g := range gs {
		k, ok := q.groupOf(g.key, by)
		if !ok {
			continue
		}
		var gr *group
		st.eachLongLocked(g, from, to, func(x *gslot) {
			if x.t.req == 0 && x.open == nil && len(x.s.b) == 0 {
				return
			}
			if gr == nil {
				gr = get(k)
			}
			x.merged(&gr.sum)
			gr.has = true
		})
	}
}

func row(k groupKey, g *group, window time.Duration) v1.SLIGroup {
	s := &g.sum
	r := v1.SLIGroup{App: k[0], Version: k[1], Node: k[2], Region: k[3], Zone: k[4], Instances: g.instances}
	r.Requests = s.Requests()
	r.Errors = s.Errors()
	r.RequestsPerSecond = float64(r.Requests) / window.Seconds()
	if r.Requests > 0 {
		r.ErrorRatio = float64(r.Errors) / float64(r.Requests)
		r.ColdStartRatio = float64(s.ColdStarts) / float64(r.Requests)
		ms := func(q float64) float64 { return float64(s.Latency.Quantile(q)) / float64(time.Millisecond) }
		r.P50Ms, r.P95Ms, r.P99Ms = ms(0.50), ms(0.95), ms(0.99)
	}
	r.ColdStarts = s.ColdStarts
	r.MemoryMaxBytes = s.MemoryMaxBytes
	r.CPUCores = s.CPUTime.Seconds() / window.Seconds()
	if len(s.Discards) > 0 {
		r.Discards = maps.Clone(s.Discards)
	}
	if len(s.LimitRejections) > 0 {
		r.LimitRejections = maps.Clone(s.LimitRejections)
	}
	return r
}

// queryNodesLocked answers q from the per-node detail tier, calling get for each group
// with data.
func (st *Store) queryNodesLocked(q Query, from, to int64, keyOf func(app, version, node string) (groupKey, bool), get func(groupKey) *group) {
	for _, s := range st.seriesForLocked(q.App) {
		k, ok := keyOf(s.key.App, s.key.Version, s.key.Node)
		if !ok {
			continue
		}
		var g *group
		st.collectLocked(s, from, to, func(x *stored) {
			if g == nil {
				g = get(k)
			}
			x.mergeTo(&g.sum)
			g.has = true
		})
	}
}

// seriesForLocked is every series of app, or every series when app is "".
func (st *Store) seriesForLocked(app string) []*series {
	if app != "" {
		return st.byApp[app]
	}
	out := make([]*series, 0, len(st.series))
	for _, s := range st.series {
		out = append(out, s)
	}
	return out
}

// collectLocked calls fn with the summaries of s's detail-tier windows that make up
// the intervals ending in (from, to] (unix ns):
//
//   - a window wholly inside (from, to] counts whole;
//   - a window cut by from or to counts its detail intervals ending in range when it
//     holds every interval from the cut on, else counts whole if it ends in range.
//
// Windows past the detail tier are in the node's runs (tallies only, collectCounts).
func (st *Store) collectLocked(s *series, from, to int64, fn func(*stored)) {
	width := int64(st.cfg.Width)
	i := sort.Search(len(s.windows), func(i int) bool { return s.windows[i].start+width > from })
	for ; i < len(s.windows); i++ {
		w := s.windows[i]
		ws, we := w.start, w.start+width
		if ws >= to {
			break
		}
		switch {
		case from <= ws && we <= to:
			w.whole(fn)
		case w.detailsFrom <= max(from, ws):
			var x stored
			w.details.each(ws, func(e detailEntry) bool {
				if e.end > from && e.end <= to {
					x.b = e.b
					fn(&x)
				}
				return true
			})
		case we > from && we <= to:
			w.whole(fn)
		}
	}
}
