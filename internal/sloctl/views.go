package sloctl

import (
	"context"
	"slices"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/slo"
)

// alertView is an alert as the API shows it.
func alertView(a slo.Alert) v1.Alert {
	return v1.Alert{SLO: a.SLO, App: a.App, Version: a.Version, Scope: a.Scope, Severity: string(a.Severity), Phase: string(a.Phase),
		Since: a.Since, Fired: a.FiredAt, Resolved: a.ResolvedAt,
		Factor: a.Tier.Factor.String(), Long: slo.FormatWindow(a.Tier.Long), Short: slo.FormatWindow(a.Tier.Short),
		LongRate: a.Long, ShortRate: a.Short, Runbook: a.Runbook, Expected: a.Expected, Summary: a.Summary()}
}

// Status computes an SLO's budget, burn rates and alerts per series now, from the SLI
// source and the stored alert state (any replica answers it).
func (c *Controller) Status(ctx context.Context, name string) (v1.SLOStatus, *v1.Error) {
	r, ok := c.specs.get(name)
	if !ok {
		return v1.SLOStatus{}, &v1.Error{Code: v1.CodeNotFound, Message: "no SLO " + name + "; fermion slo list shows them"}
	}
	rec, _, err := c.readState(ctx)
	if err != nil {
		return v1.SLOStatus{}, &v1.Error{Code: v1.CodeUnavailable, Message: err.Error()}
	}
	sp := &r.Spec
	out := v1.SLOStatus{SLO: r.SLO, Series: []v1.SLOSeriesStatus{}, Evaluated: rec.Evaluated}
	out.SLO.Warnings = warnings(sp, c.apps())
	now := c.cfg.Now()
	series := c.cfg.Source.Series(sp, now.Add(-sp.Window), now)
	// Series with alerts but no data in the window (stopped reporting) still show.
	byKey := map[slo.Series]bool{}
	for _, s := range series {
		byKey[s] = true
	}
	for _, a := range rec.Alerts {
		s := slo.Series{App: a.App, Version: a.Version, Scope: a.Scope}
		if a.SLO == name && !byKey[s] {
			byKey[s] = true
			series = append(series, s)
		}
	}
	slices.SortFunc(series, func(a, b slo.Series) int {
		if a.App != b.App {
			return cmpStr(a.App, b.App)
		}
		if a.Version != b.Version {
			return cmpStr(a.Version, b.Version)
		}
		return cmpStr(a.Scope, b.Scope)
	})
	for _, s := range series {
		b := slo.Budget(sp, c.cfg.Source, s, now)
		ss := v1.SLOSeriesStatus{App: s.App, Version: s.Version, Scope: s.Scope, Good: b.Counts.Good, Total: b.Counts.Total,
			BudgetRemaining: b.Remaining, Burn: []v1.SLOBurn{}}
		for _, t := range sp.Tiers {
			ss.Burn = append(ss.Burn, v1.SLOBurn{Severity: string(t.Severity), Factor: t.Factor.String(),
				Long: slo.FormatWindow(t.Long), Short: slo.FormatWindow(t.Short),
				LongRate:  slo.BurnRate(c.cfg.Source.Counts(s, sp.SLI, now.Add(-t.Long), now), sp.Objective),
				ShortRate: slo.BurnRate(c.cfg.Source.Counts(s, sp.SLI, now.Add(-t.Short), now), sp.Objective)})
		}
		for _, a := range rec.Alerts {
			if a.SLO == name && a.App == s.App && a.Version == s.Version && a.Scope == s.Scope {
				ss.Alerts = append(ss.Alerts, alertView(a))
			}
		}
		out.Series = append(out.Series, ss)
	}
	return out, nil
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Alerts lists the pending and firing alerts grouped into one incident per app (with
// all, the resolved ones the state still holds too), firing incidents first.
func (c *Controller) Alerts(ctx context.Context, all bool) (v1.AlertList, *v1.Error) {
	rec, _, err := c.readState(ctx)
	if err != nil {
		return v1.AlertList{}, &v1.Error{Code: v1.CodeUnavailable, Message: err.Error()}
	}
	marks, _, err := c.readMarks(ctx)
	if err != nil {
		return v1.AlertList{}, &v1.Error{Code: v1.CodeUnavailable, Message: err.Error()}
	}
	out := v1.AlertList{Incidents: []v1.Incident{}, Evaluated: rec.Evaluated}
	now := c.cfg.Now()
	for _, m := range marks.Marks {
		if now.Before(m.Until) {
			out.Marks = append(out.Marks, v1.AlertMark{App: m.App, Version: m.Version, Until: m.Until})
		}
	}
	by := map[string]*v1.Incident{}
	var apps []string
	for _, a := range rec.Alerts { // sorted by ID: SLO, app, version, scope, severity
		if a.Phase == slo.Resolved && !all {
			continue
		}
		in := by[a.App]
		if in == nil {
			in = &v1.Incident{App: a.App}
			by[a.App] = in
			apps = append(apps, a.App)
		}
		in.Alerts = append(in.Alerts, alertView(a))
		if a.Runbook != "" && !slices.Contains(in.Runbooks, a.Runbook) {
			in.Runbooks = append(in.Runbooks, a.Runbook)
		}
		in.Severity = moreUrgent(in.Severity, a)
	}
	slices.Sort(apps)
	rank := map[string]int{"page": 0, "ticket": 1, "pending": 2, "resolved": 3}
	slices.SortStableFunc(apps, func(a, b string) int { return rank[by[a].Severity] - rank[by[b].Severity] })
	for _, app := range apps {
		out.Incidents = append(out.Incidents, *by[app])
	}
	return out, nil
}

// moreUrgent is an incident's severity after adding a: a notifying firing page, else a
// firing ticket, else pending, else resolved.
func moreUrgent(cur string, a slo.Alert) string {
	sev := "resolved"
	switch {
	case a.Phase == slo.Firing && a.Notify():
		sev = string(a.Severity)
	case a.Phase == slo.Firing || a.Phase == slo.Pending:
		sev = "pending"
	}
	rank := map[string]int{"page": 0, "ticket": 1, "pending": 2, "resolved": 3, "": 4}
	if rank[sev] < rank[cur] {
		return sev
	}
	return cur
}

// Mark is POST /v1/alerts/expected: until is bounded to a day ahead so a forgotten
// mark cannot silence a version's pages for good.
func (c *Controller) Mark(ctx context.Context, m v1.AlertMark) *v1.Error {
	if err := v1.ValidName("app", m.App); err != nil {
		return &v1.Error{Code: v1.CodeBadRequest, Field: "app", Message: err.Error()}
	}
	if m.Version == "" || len(m.Version) > 128 {
		return &v1.Error{Code: v1.CodeBadRequest, Field: "version", Message: "the app's version (as deployed, such as 1.2.0), at most 128 bytes"}
	}
	now := c.cfg.Now()
	if !m.Until.IsZero() && (!m.Until.After(now) || m.Until.Sub(now) > MaxMark) {
		return &v1.Error{Code: v1.CodeBadRequest, Field: "until", Message: "a time in the next 24 hours (RFC 3339), or leave it out to remove the mark"}
	}
	if err := c.MarkExpected(ctx, m.App, m.Version, m.Until); err != nil {
		return &v1.Error{Code: v1.CodeUnavailable, Message: err.Error()}
	}
	return nil
}

// MaxMark bounds how far ahead an expected mark may reach.
const MaxMark = 24 * time.Hour
