package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"fermion.dev/fermion/internal/telemetry"
)

// table is an immutable routing table (only its use count changes). Host matches are
// tried from most to least specific (exact, then the longest wildcard suffix, then any
// host); within a host the longest prefix wins.
type table struct {
	routes   []Route
	exact    map[string][]*Route // by lower-case host, prefixes longest first
	wildcard []wildcardRoutes    // longest suffix first
	any      []*Route
	// onDrained, when set, runs once when the table is retired and its last request has
	// finished: it releases the table's SLI handles (telemetry.go).
	onDrained func()
	// draining are the routes earlier tables served and this one does not, until their
	// drain deadline (nil: none).
	draining *drainSet

	// refs counts the requests using the table, each on its stripe (telemetry.StripedCount): one
	// word all requests wrote, twice per request, would move between the cores at every
	// request. Once the table is retired (replaced), drained is closed when the stripes
	// sum to zero.
	refs      telemetry.StripedCount
	retired   atomic.Bool
	drainOnce sync.Once
	drained   chan struct{}
}

func newEmptyTable() *table {
	return &table{exact: map[string][]*Route{}, drained: make(chan struct{}), refs: telemetry.NewStripedCount()}
}

// hold takes one request's use of the table on stripe s (Gateway.acquire).
func (t *table) hold(s uint32) { t.refs.Add(s, 1) }

// release ends one request's use of the table, taken on stripe s.
//
// Why the sum, read stripe by stripe, never reports a retired table unused while a
// request uses it: every stripe stays at or above zero (a request releases on the
// stripe it took), so a sum misses a request only if it read that request's stripe
// before the request took it or after it released it. After is fine (the request is
// done). Before cannot be for a request that goes on to use the table: sums are taken
// only after retired is set, which is after SetRoutes swapped the table out, so a
// request whose take comes after the sum's read also re-reads the current table after
// its take (acquire), sees the new one, releases the old one and uses the new one.
// Atomics are sequentially consistent in Go, which is all this relies on. And the last
// release sums after its own decrement once it sees retired, while retire sums after
// setting retired: whichever comes second sees everything released and drains.
func (t *table) release(s uint32) {
	t.refs.Add(s, -1)
	if t.retired.Load() && t.refs.Sum() == 0 {
		t.drainOnce.Do(t.drain)
	}
}

// drain runs once, when the table is retired and no request uses it.
func (t *table) drain() {
	if t.onDrained != nil {
		t.onDrained()
	}
	close(t.drained)
}

// retire marks the table replaced; drained closes when no request uses it.
func (t *table) retire() {
	t.retired.Store(true)
	if t.refs.Sum() == 0 {
		t.drainOnce.Do(t.drain)
	}
}

func (t *table) isDrained() bool {
	select {
	case <-t.drained:
		return true
	default:
		return false
	}
}

type wildcardRoutes struct {
	suffix string // ".example.com"
	routes []*Route
}

func newTable(routes []Route) (*table, error) {
	t := newEmptyTable()
	t.routes = append([]Route(nil), routes...)
	seen := map[string]bool{}
	wild := map[string][]*Route{}
	for i := range t.routes {
		r := &t.routes[i]
		if r.Target == nil {
			return nil, fmt.Errorf("route %s%s: no target", r.Host, r.Prefix)
		}
		if !strings.HasPrefix(r.Prefix, "/") {
			return nil, fmt.Errorf("route %q: path must start with /", r.Prefix)
		}
		if r.Split != nil {
			st, err := newSplitState(r.Split)
			if err != nil {
				return nil, fmt.Errorf("route %s%s: %w", r.Host, r.Prefix, err)
			}
			r.split = st
		}
		host := normalizeHost(r.Host)
		if host == "*" {
			host = "" // both mean any host
		}
		key := host + " " + r.Prefix
		if seen[key] {
			return nil, fmt.Errorf("route host %q path %q is claimed twice (by %s@%s and another)", r.Host, r.Prefix, r.Target.Name(), r.Target.Version())
		}
		seen[key] = true
		switch {
		case host == "":
			t.any = append(t.any, r)
		case strings.HasPrefix(host, "*."):
			wild[host[1:]] = append(wild[host[1:]], r)
		default:
			t.exact[host] = append(t.exact[host], r)
		}
	}
	byLen := func(rs []*Route) {
		sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].Prefix) > len(rs[j].Prefix) })
	}
	for _, rs := range t.exact {
		byLen(rs)
	}
	byLen(t.any)
	for suffix, rs := range wild {
		byLen(rs)
		t.wildcard = append(t.wildcard, wildcardRoutes{suffix, rs})
	}
	sort.Slice(t.wildcard, func(i, j int) bool { return len(t.wildcard[i].suffix) > len(t.wildcard[j].suffix) })
	return t, nil
}

func (t *table) match(host, path string) (*Route, bool) {
	// Only a host with a colon can carry a port: SplitHostPort's error for one without
	// would be an allocation per request.
	if strings.IndexByte(host, ':') >= 0 {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	host = normalizeHost(host)
	if rs, ok := t.exact[host]; ok {
		if r := matchPrefix(rs, path); r != nil {
			return r, true
		}
	}
	for _, w := range t.wildcard {
		if strings.HasSuffix(host, w.suffix) && len(host) > len(w.suffix) {
			if r := matchPrefix(w.routes, path); r != nil {
				return r, true
			}
		}
	}
	if r := matchPrefix(t.any, path); r != nil {
		return r, true
	}
	return nil, false
}

// normalizeHost lower-cases a host name and drops the trailing dot of a fully qualified
// name, so route hosts and request hosts compare equal however they are spelled.
func normalizeHost(h string) string {
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// matchPrefix returns the first (longest) route whose prefix covers path on a segment
// boundary: "/hello" matches "/hello" and "/hello/x" but not "/helloworld".
func matchPrefix(rs []*Route, path string) *Route {
	for _, r := range rs {
		p := r.Prefix
		if !strings.HasPrefix(path, p) {
			continue
		}
		if len(path) == len(p) || strings.HasSuffix(p, "/") || path[len(p)] == '/' {
			return r
		}
	}
	return nil
}

// DefaultRouteDrain is how long a route the gateway stopped serving is answered 503
// (with Retry-After) rather than 404, when Config.RouteDrain is zero.
const DefaultRouteDrain = 30 * time.Second

// A route is draining from the moment a new table stops serving it (a drain, a move to
// other nodes, a deployment removed) until its deadline: clients and load balancers that
// still send it here get 503 with Retry-After, which they retry elsewhere, instead of a
// 404 they would take as final; /readyz?route= reports it not ready. Afterwards the
// route is forgotten and answers 404.

// drainSet is the draining routes of one table, matched as live routes are.
type drainSet struct {
	t     *table               // Target is the route's last target, for the log line
	until map[*Route]time.Time // by route in t
}

// routeKey is what makes two routes the same route: normalized host and prefix.
func routeKey(r *Route) string {
	host := normalizeHost(r.Host)
	if host == "*" {
		host = ""
	}
	return host + " " + r.Prefix
}

// carryDrains makes the routes old served (or was still draining) that t does not serve
// drain in t: the newly stopped ones for period from now, the others until their
// deadline. period <= 0 drains nothing: stopped routes answer 404 at once.
func (t *table) carryDrains(old *table, now time.Time, period time.Duration) {
	if period <= 0 {
		return
	}
	live := make(map[string]bool, len(t.routes))
	for i := range t.routes {
		live[routeKey(&t.routes[i])] = true
	}
	var routes []Route
	var until []time.Time
	seen := map[string]bool{}
	add := func(r *Route, deadline time.Time) {
		k := routeKey(r)
		if live[k] || seen[k] || !now.Before(deadline) {
			return
		}
		seen[k] = true
		routes = append(routes, *r)
		until = append(until, deadline)
	}
	for i := range old.routes {
		add(&old.routes[i], now.Add(period))
	}
	if d := old.draining; d != nil {
		for i := range d.t.routes {
			r := &d.t.routes[i]
			add(r, d.until[r])
		}
	}
	if len(routes) == 0 {
		return
	}
	dt, err := newTable(routes)
	if err != nil {
		return // unreachable: the routes come from valid tables and are deduplicated
	}
	ds := &drainSet{t: dt, until: make(map[*Route]time.Time, len(routes))}
	for i := range dt.routes {
		ds.until[&dt.routes[i]] = until[i]
	}
	t.draining = ds
}

// drainingRoute returns the draining route that host and path would have matched, and
// its deadline, if it is still draining at now.
func (t *table) drainingRoute(host, path string, now time.Time) (*Route, time.Time, bool) {
	if t.draining == nil {
		return nil, time.Time{}, false
	}
	r, ok := t.draining.t.match(host, path)
	if !ok {
		return nil, time.Time{}, false
	}
	until := t.draining.until[r]
	if !now.Before(until) {
		return nil, time.Time{}, false
	}
	return r, until, true
}

// Route states RouteState reports.
const (
	RouteServing  = "serving"
	RouteDraining = "draining"
	RouteUnknown  = "unknown"
)

// RouteState says whether the gateway serves a request for host and path now
// (RouteServing, with the route), answers it 503 because its route is draining
// (RouteDraining, with the route and the drain deadline), or has no route for it
// (RouteUnknown): what a per-route readiness check reports.
func (g *Gateway) RouteState(host, path string) (state string, route Route, until time.Time) {
	t := g.table.Load()
	if r, ok := t.match(host, path); ok {
		return RouteServing, *r, time.Time{}
	}
	if r, until, ok := t.drainingRoute(host, path, time.Now()); ok {
		return RouteDraining, *r, until
	}
	return RouteUnknown, Route{}, time.Time{}
}

// routeDrain is the configured drain period (<= 0: none).
func (g *Gateway) routeDrain() time.Duration {
	if g.cfg.RouteDrain == 0 {
		return DefaultRouteDrain
	}
	return g.cfg.RouteDrain
}

// drainRetryAfter is the Retry-After of a draining route's 503, in seconds: the route
// already runs elsewhere, so a retry through the load balancer can succeed at once.
const drainRetryAfter = "1"

// drainingResponse answers a request for a draining route.
func (g *Gateway) drainingResponse(ctx context.Context, w http.ResponseWriter, r *http.Request, stripe uint32, route *Route, id, traceID string, start time.Time) {
	w.Header().Set("Retry-After", drainRetryAfter)
	writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("route %s%s no longer runs on this node; retry (another node serves it)", route.Host, route.Prefix), id)
	g.logRequest(ctx, r, stripe, id, traceID, nil, nil, &g.noRoute, http.StatusServiceUnavailable, start, time.Time{}, false, "draining")
}
