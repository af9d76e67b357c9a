package fleet

import (
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

// Series implements slo.Source: the spec's apps by version, split by its scope, with
// requests in intervals ending in (from, to].
func (st *Store) Series(spec *slo.Spec, from, to time.Time) []slo.Series {
	sel := scopeSel{per: spec.Scope.Per, nodes: spec.Scope.Nodes}
	if sel.per == "" {
		sel.per = slo.ScopeGlobal
	}
	f, t := from.UnixNano(), to.UnixNano()
	now := max(t, st.nowHint())
	seen := map[slo.Series]bool{}
	var out []slo.Series
	st.mu.RLock()
	var cands []*series
	if spec.App != "" {
		cands = st.byApp[spec.App]
	} else {
		for app, ss := range st.byApp {
			if st.matchApp(spec, app) {
				cands = append(cands, ss...)
			}
		}
	}
	for _, s := range cands {
		m, ok := st.member(sel, s.key.Node)
		if !ok {
			continue
		}
		ss := slo.Series{App: s.key.App, Version: s.key.Version, Scope: m}
		if seen[ss] {
			continue
		}
		var n uint64
		st.collectLocked(s, f, t, now, func(x *stored) { n += x.s.Requests() })
		if n > 0 {
			seen[ss] = true
			out = append(out, ss)
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

// Counts implements slo.Source: availability counts non-5xx responses as good;
// latency counts the requests in buckets at or below the threshold's bucket
// (sli.Sketch.CountAtMost: up to γ ≈ 1.02 × threshold may count as good).
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
	var scratch sli.Sketch
	for _, s := range st.byApp[ser.App] {
		if s.key.Version != ser.Version {
			continue
		}
		if m, ok := st.member(sel, s.key.Node); !ok || m != ser.Scope {
			continue
		}
		st.collectLocked(s, f, t, now, func(x *stored) {
			n := x.s.Requests()
			c.Total += int64(n)
			switch sl.Kind {
			case slo.Latency:
				c.Good += int64(x.countAtMost(sl.Threshold, &scratch))
			default:
				c.Good += int64(n - x.s.Errors())
			}
		})
	}
	return c
}

// nowHint is the latest time Add, AddRollup or Prune saw: Source's calls carry no
// "now", and which tier answers a window depends on it.
func (st *Store) nowHint() int64 {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.lastNow
}
