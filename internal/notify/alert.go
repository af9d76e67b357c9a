package notify

import (
	"maps"
	"slices"
	"strings"
	"time"

	"fermion.dev/fermion/internal/slo"
)

// Alert is one alert as receivers see it, in Alertmanager's terms: labels identify it,
// annotations describe it. EndsAt is zero while it fires and set when it resolved.
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Resolved reports whether the alert has ended.
func (a Alert) Resolved() bool { return !a.EndsAt.IsZero() }

// Fingerprint identifies the alert by its labels, as Alertmanager does: the sorted
// label pairs, joined with bytes no label contains.
func (a Alert) Fingerprint() string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
		b.WriteString(k)
		b.WriteByte(0xff)
		b.WriteString(a.Labels[k])
		b.WriteByte(0xfe)
	}
	return b.String()
}

// Alert names the SLO engine's alerts carry, the same as the Prometheus rules slo.Rules
// writes, so Alertmanager routes and silences match whichever of the two raised them.
const (
	AlertNamePage   = "FermionSLOBurnPage"
	AlertNameTicket = "FermionSLOBurnTicket"
)

// FromSLO adapts an SLO engine transition. ok is false for transitions nobody is told
// about: pending, pending back to inactive, and a page that fires while its version is
// expected (a controlled rollout). Every resolution is passed on: a receiver that never
// heard of the alert ignores it, and one that did must not keep it firing.
//
// Labels follow the generated Prometheus rules (alertname, severity, slo, function,
// version) plus scope, the scope member ("global", a region, a node); annotations are
// summary and, when the SLO names one, runbook_url.
func FromSLO(t slo.Transition, generatorURL string) (a Alert, ok bool) {
	sa := t.Alert
	switch {
	case t.To == slo.Firing && sa.Notify():
	case t.To == slo.Resolved:
	default:
		return Alert{}, false
	}
	name := AlertNamePage
	if sa.Severity == slo.Ticket {
		name = AlertNameTicket
	}
	a = Alert{
		Labels: map[string]string{
			"alertname": name,
			"severity":  string(sa.Severity),
			"slo":       sa.SLO,
			"function":  sa.App,
			"version":   sa.Version,
			"scope":     sa.Scope,
		},
		Annotations:  map[string]string{"summary": sa.Summary()},
		StartsAt:     sa.FiredAt,
		GeneratorURL: generatorURL,
	}
	if sa.Runbook != "" {
		a.Annotations["runbook_url"] = sa.Runbook
	}
	if a.StartsAt.IsZero() {
		a.StartsAt = sa.Since
	}
	if t.To == slo.Resolved {
		a.EndsAt = sa.ResolvedAt
	}
	return a, true
}
