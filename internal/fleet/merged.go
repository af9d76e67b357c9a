package fleet

import (
	"time"

	"fermion.dev/fermion/internal/sli"
)

// Merged is one version of an app over a window: its summaries with intervals
// ending in (from, to], merged over every node and route. Canary analysis compares
// two of these (the rollout controller's metric source).
func (st *Store) Merged(app, version string, from, to time.Time) sli.Summary {
	sum := sli.Summary{Latency: &sli.Sketch{}}
	f, t := from.UnixNano(), to.UnixNano()
	now := max(t, st.nowHint())
	st.mu.RLock()
	defer st.mu.RUnlock()
	for _, s := range st.byApp[app] {
		if s.key.Version == version {
			st.collectLocked(s, f, t, now, func(x *stored) { x.mergeTo(&sum) })
		}
	}
	return sum
}
