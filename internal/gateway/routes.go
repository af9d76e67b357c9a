package gateway

import (
	"fmt"
	"net"
	"sort"
	"strings"
)

// table is an immutable routing table. Host matches are tried from most to least
// specific (exact, then the longest wildcard suffix, then any host); within a host the
// longest prefix wins.
type table struct {
	routes   []Route
	exact    map[string][]*Route // by lower-case host, prefixes longest first
	wildcard []wildcardRoutes    // longest suffix first
	any      []*Route
}

type wildcardRoutes struct {
	suffix string // ".example.com"
	routes []*Route
}

func newTable(routes []Route) (*table, error) {
	t := &table{routes: append([]Route(nil), routes...), exact: map[string][]*Route{}}
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
		host := strings.ToLower(r.Host)
		key := host + " " + r.Prefix
		if seen[key] {
			return nil, fmt.Errorf("route host %q path %q is claimed twice (by %s@%s and another)", r.Host, r.Prefix, r.Target.Name(), r.Target.Version())
		}
		seen[key] = true
		switch {
		case host == "" || host == "*":
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
	host = strings.ToLower(strings.TrimSuffix(host, "."))
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
