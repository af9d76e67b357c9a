package slo

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Phase is where an alert is in its lifecycle: inactive → pending → firing → resolved.
type Phase string

const (
	// Inactive: the condition does not hold. Inactive alerts are not kept in State.
	Inactive Phase = "inactive"
	// Pending: the condition holds but not yet for the tier's For.
	Pending Phase = "pending"
	// Firing: the condition has held for For; notifiers send it.
	Firing Phase = "firing"
	// Resolved: it fired and the condition stopped holding. Kept for ResolvedRetention
	// so a notifier that missed the transition can still send the resolution.
	Resolved Phase = "resolved"
)

// ResolvedRetention is how long a resolved alert stays in State before it is dropped.
const ResolvedRetention = 15 * time.Minute

// Key deduplicates alerts: one SLO, app, version and scope member is one alert per
// severity, however many tiers or evaluations find it burning.
type Key struct {
	SLO, App, Version, Scope string
}

// AlertID names an alert in State.
type AlertID struct {
	Key
	Severity Severity
}

func (id AlertID) String() string {
	return fmt.Sprintf("%s/%s/%s/%s/%s", id.SLO, id.App, id.Version, id.Scope, id.Severity)
}

// Alert is one deduplicated alert.
type Alert struct {
	AlertID
	Phase Phase
	// Since is when the condition started holding (the start of pending), FiredAt when
	// it fired, ResolvedAt when it resolved.
	Since, FiredAt, ResolvedAt time.Time
	// Tier is the tier whose condition held at the last evaluation that found one.
	Tier Tier
	// Long and Short are the burn rates over Tier's windows at that evaluation.
	Long, Short float64
	Runbook     string
	// Expected is set while the alert's app and version are marked expected (a
	// controlled rollout judging the version itself): its pages do not notify.
	Expected bool
}

// Notify reports whether a notifier should send this alert: not an expected page.
func (a *Alert) Notify() bool {
	return !(a.Expected && a.Severity == Page)
}

// Summary is a one-line description for notifications.
func (a *Alert) Summary() string {
	return fmt.Sprintf("SLO %s for %s %s (%s) burns its error budget at %.1f× over %s and %.1f× over %s (%s at ≥ %s×)",
		a.SLO, a.App, a.Version, a.Scope, a.Long, FormatWindow(a.Tier.Long), a.Short, FormatWindow(a.Tier.Short), a.Severity, a.Tier.Factor)
}

// Mark records that alerts for an app's version are expected until Until: a controlled
// rollout sets one on the version it is judging, so that version's pages are suppressed
// while the stable version keeps paging.
type Mark struct {
	App, Version string
	Until        time.Time
}

// State is everything Evaluate remembers between ticks. The zero State is valid. The
// engine never mutates a State it is given; the control plane stores the one returned.
type State struct {
	Alerts map[AlertID]Alert
	Marks  []Mark
}

// MarkExpected returns a copy of st in which app's version is expected until until.
func (st State) MarkExpected(app, version string, until time.Time) State {
	next := st.clone()
	next.Marks = slices.DeleteFunc(next.Marks, func(m Mark) bool { return m.App == app && m.Version == version })
	next.Marks = append(next.Marks, Mark{App: app, Version: version, Until: until})
	return next
}

// Unmark returns a copy of st without the expected mark of app's version.
func (st State) Unmark(app, version string) State {
	next := st.clone()
	next.Marks = slices.DeleteFunc(next.Marks, func(m Mark) bool { return m.App == app && m.Version == version })
	return next
}

func (st State) expected(app, version string, now time.Time) bool {
	for _, m := range st.Marks {
		if m.App == app && m.Version == version && now.Before(m.Until) {
			return true
		}
	}
	return false
}

func (st State) clone() State {
	return State{Alerts: maps.Clone(st.Alerts), Marks: slices.Clone(st.Marks)}
}

// Transition is one change of an alert's phase, for notifiers and events.
type Transition struct {
	Alert    Alert // as it is after the change
	From, To Phase
	// Incident groups transitions: one incident per app.
	Incident string
}

// Evaluate runs one tick: for every spec and every series the source reports over the
// spec's longest tier window, it checks each tier's long and short windows exactly, and
// moves alerts through their lifecycle. It returns the new state and the transitions,
// ordered by spec, series and severity. While a page for a key fires, the key's ticket
// is held inactive: the page says more. Alerts whose series or spec disappeared
// resolve. Evaluate is pure: the same state, specs, source and now give the same
// result. Spec names must be unique across specs: they are the first part of Key.
func Evaluate(st State, specs []Spec, src Source, now time.Time) (State, []Transition) {
	next := st.clone()
	if next.Alerts == nil {
		next.Alerts = map[AlertID]Alert{}
	}
	next.Marks = slices.DeleteFunc(next.Marks, func(m Mark) bool { return !now.Before(m.Until) })
	e := evaluation{st: &next, now: now, seen: map[AlertID]bool{}}
	// counts caches one series' window sums: tiers share windows (the workbook's four
	// tiers look at seven), and the list is short enough that a slice beats a map.
	type windowCounts struct {
		w time.Duration
		c Counts
	}
	var counts []windowCounts
	for i := range specs {
		sp := &specs[i]
		series := src.Series(sp, now.Add(-sp.MaxTierWindow()), now)
		sortSeries(series)
		for _, s := range series {
			counts = counts[:0]
			get := func(w time.Duration) Counts {
				for _, wc := range counts {
					if wc.w == w {
						return wc.c
					}
				}
				c := src.Counts(s, sp.SLI, now.Add(-w), now)
				counts = append(counts, windowCounts{w, c})
				return c
			}
			key := Key{SLO: sp.Name, App: s.App, Version: s.Version, Scope: s.Scope}
			for _, sev := range []Severity{Page, Ticket} {
				id := AlertID{Key: key, Severity: sev}
				var hit *Tier
				var long, short Counts
				if sev == Ticket && next.Alerts[AlertID{Key: key, Severity: Page}].Phase == Firing {
					e.update(id, nil, 0, 0, sp.Runbook)
					continue
				}
				for ti := range sp.Tiers {
					t := &sp.Tiers[ti]
					if t.Severity != sev {
						continue
					}
					long, short = get(t.Long), get(t.Short)
					if AtLeast(long, sp.Objective, t.Factor) && AtLeast(short, sp.Objective, t.Factor) {
						hit = t
						break
					}
				}
				if hit == nil {
					e.update(id, nil, 0, 0, sp.Runbook)
					continue
				}
				e.update(id, hit, BurnRate(long, sp.Objective), BurnRate(short, sp.Objective), sp.Runbook)
			}
		}
	}
	// Alerts not evaluated this tick (their series stopped reporting or their spec
	// was removed) lose their condition.
	ids := slices.SortedFunc(maps.Keys(next.Alerts), func(a, b AlertID) int { return strings.Compare(a.String(), b.String()) })
	for _, id := range ids {
		if !e.seen[id] {
			e.update(id, nil, 0, 0, next.Alerts[id].Runbook)
		}
	}
	return next, e.out
}

type evaluation struct {
	st   *State
	now  time.Time
	seen map[AlertID]bool
	out  []Transition
}

// update applies one evaluation of an alert's condition: hit is the tier that holds,
// or nil.
func (e *evaluation) update(id AlertID, hit *Tier, long, short float64, runbook string) {
	a, ok := e.st.Alerts[id]
	if !ok {
		if hit == nil {
			return // inactive and staying so: the common case, kept cheap
		}
		a = Alert{AlertID: id, Phase: Inactive}
	}
	e.seen[id] = true
	from := a.Phase
	a.Expected = e.st.expected(id.App, id.Version, e.now)
	a.Runbook = runbook
	switch {
	case hit != nil:
		if a.Phase == Inactive || a.Phase == Resolved {
			a = Alert{AlertID: id, Phase: Pending, Since: e.now, Expected: a.Expected, Runbook: runbook}
		}
		a.Tier, a.Long, a.Short = *hit, long, short
		if a.Phase == Pending && !e.now.Before(a.Since.Add(hit.For)) {
			a.Phase, a.FiredAt = Firing, e.now
		}
	case a.Phase == Pending:
		a.Phase = Inactive
	case a.Phase == Firing:
		a.Phase, a.ResolvedAt = Resolved, e.now
		a.Long, a.Short = long, short
	}
	if a.Phase == Inactive || a.Phase == Resolved && !e.now.Before(a.ResolvedAt.Add(ResolvedRetention)) {
		delete(e.st.Alerts, id)
	} else {
		e.st.Alerts[id] = a
	}
	if a.Phase != from {
		e.out = append(e.out, Transition{Alert: a, From: from, To: a.Phase, Incident: id.App})
	}
}

// Incident is one app's firing alerts, grouped so a person gets one page per app.
type Incident struct {
	App string
	// Severity is page when any firing page notifies, else ticket.
	Severity Severity
	// Alerts are the app's firing alerts, expected ones included, sorted by ID.
	Alerts []Alert
	// Runbooks are the distinct runbook URLs of Alerts, in order.
	Runbooks []string
}

// Incidents groups st's firing alerts into one incident per app, sorted by app. An
// incident whose alerts are all expected pages does not notify; its Severity is ticket
// only if a ticket fires, and it is left out when nothing in it notifies.
func Incidents(st State) []Incident {
	by := map[string]*Incident{}
	ids := slices.SortedFunc(maps.Keys(st.Alerts), func(a, b AlertID) int { return strings.Compare(a.String(), b.String()) })
	for _, id := range ids {
		a := st.Alerts[id]
		if a.Phase != Firing {
			continue
		}
		in := by[a.App]
		if in == nil {
			in = &Incident{App: a.App}
			by[a.App] = in
		}
		in.Alerts = append(in.Alerts, a)
		if a.Runbook != "" && !slices.Contains(in.Runbooks, a.Runbook) {
			in.Runbooks = append(in.Runbooks, a.Runbook)
		}
		switch {
		case !a.Notify():
		case a.Severity == Page:
			in.Severity = Page
		case in.Severity == "":
			in.Severity = Ticket
		}
	}
	out := make([]Incident, 0, len(by))
	for _, app := range slices.Sorted(maps.Keys(by)) {
		if by[app].Severity != "" {
			out = append(out, *by[app])
		}
	}
	return out
}
