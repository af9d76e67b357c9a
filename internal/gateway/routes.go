package gateway

import (
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

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
	// metrics are the routed targets' metrics (nil values without metrics).
	metrics map[Target]*telemetry.FunctionMetrics

	// refs counts the requests using the table. Once the table is retired (replaced),
	// drained is closed when refs drops to zero.
	refs      atomic.Int64
	retired   atomic.Bool
	drainOnce sync.Once
	drained   chan struct{}
}

func newEmptyTable() *table {
	return &table{exact: map[string][]*Route{}, drained: make(chan struct{})}
}

// release ends one request's use of the table.
func (t *table) release() {
	if t.refs.Add(-1) == 0 && t.retired.Load() {
		t.drainOnce.Do(func() { close(t.drained) })
	}
}

// retire marks the table replaced; drained closes when no request uses it.
func (t *table) retire() {
	t.retired.Store(true)
	if t.refs.Load() == 0 {
		t.drainOnce.Do(func() { close(t.drained) })
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
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
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
