package rollout

import (
	"fmt"
	"strings"
	"time"

	api "fermion.dev/fermion/api/v1"
)

// The one converter between the API's strategy (api.RolloutStrategy, what PUT
// /v1/deployments carries and revisions record) and Spec. The API, the CLI and the
// manifest all go through it, so a strategy reads the same wherever it was written.

// FieldError is a strategy field that is wrong: Field is its JSON name under the
// strategy ("steps", "analysis.maxErrorRatio"), Message what is wrong and how to fix it.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// FromAPI converts and normalizes a wire strategy; nil is all at once. Ratios in
// Analysis are in percent, as in the manifest.
func FromAPI(w *api.RolloutStrategy) (Spec, error) {
	if w == nil {
		return Default().Normalize()
	}
	var s Spec
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
	}
	switch w.Kind {
	case "":
		s.Kind = AllAtOnce
	case string(AllAtOnce), string(Rolling), string(Canary):
		s.Kind = Kind(w.Kind)
	default:
		return Spec{}, bad("kind", "unknown strategy %q; use %s", w.Kind, strings.Join(Kinds, ", "))
	}
	if len(w.Steps) > 0 {
		for i, t := range w.Steps {
			if strings.Contains(t, ",") {
				return Spec{}, bad(fmt.Sprintf("steps[%d]", i), "%q holds a comma; give one step per string", t)
			}
		}
		steps, err := ParseSteps(strings.Join(w.Steps, ","))
		if err != nil {
			return Spec{}, bad("steps", "%v", err)
		}
		s.Steps = steps
	}
	if w.Interval != "" {
		d, err := time.ParseDuration(w.Interval)
		if err != nil || d < time.Second || d > 24*time.Hour {
			return Spec{}, bad("interval", "%q is not a duration between 1s and 24h, such as 1m", w.Interval)
		}
		s.Interval = d
	}
	switch {
	case w.MaxExtensions < NoExtensions || w.MaxExtensions > 100:
		return Spec{}, bad("maxExtensions", "%d is outside -1 (none) to 100", w.MaxExtensions)
	default:
		s.MaxExtensions = w.MaxExtensions
	}
	for _, f := range []struct {
		name, val string
		dst       *Amount
	}{{"maxUnavailable", w.MaxUnavailable, &s.MaxUnavailable}, {"maxSurge", w.MaxSurge, &s.MaxSurge}} {
		if f.val == "" {
			continue
		}
		a, err := ParseAmount(f.val)
		if err != nil {
			return Spec{}, bad(f.name, "%v", err)
		}
		*f.dst = a
	}
	if s.Kind == Rolling && s.MaxUnavailable == (Amount{}) && s.MaxSurge == (Amount{}) {
		s.MaxUnavailable = Amount{Count: 1} // as --strategy rolling alone: one node at a time
	}
	if w.Sticky != "" {
		k, err := ParseSticky(w.Sticky)
		if err != nil {
			return Spec{}, bad("sticky", "%v", err)
		}
		s.Sticky = k
	}
	if a := w.Analysis; a != nil {
		pct := []struct {
			name string
			v    float64
			dst  *float64
		}{
			{"maxErrorRatio", a.MaxErrorRatio, &s.Checks.MaxErrorRatio},
			{"maxErrorIncrease", a.MaxErrorIncrease, &s.Checks.MaxErrorIncrease},
			{"maxColdStartIncrease", a.MaxColdStartIncrease, &s.Checks.MaxColdStartIncrease},
			{"maxTrapIncrease", a.MaxTrapIncrease, &s.Checks.MaxTrapIncrease},
		}
		for _, f := range pct {
			if f.v < 0 || f.v > 100 || f.v != f.v {
				return Spec{}, bad("analysis."+f.name, "%v is not a percentage; write 0–100 (1.0 is 1 %%, 0 turns the check off)", f.v)
			}
			*f.dst = f.v / 100
		}
		s.Checks.MaxP95Ratio, s.Checks.MaxP99Ratio = a.MaxP95Ratio, a.MaxP99Ratio
		s.Checks.MinRequests, s.Checks.Alpha = a.MinRequests, a.Alpha
	}
	norm, err := s.Normalize()
	if err != nil {
		return Spec{}, bad("", "%s", strings.TrimPrefix(err.Error(), "invalid strategy: "))
	}
	return norm, nil
}

// ToAPI is the wire form of s, in the grammar FromAPI reads back: steps as the
// CLI's tokens, ratios in percent.
func ToAPI(s Spec) api.RolloutStrategy {
	w := api.RolloutStrategy{Kind: string(s.Kind), MaxExtensions: s.MaxExtensions, Sticky: s.Sticky}
	if w.Kind == "" {
		w.Kind = string(AllAtOnce)
	}
	for _, st := range s.Steps {
		w.Steps = append(w.Steps, st.String())
		switch st.Gate {
		case GateManual:
			w.Steps = append(w.Steps, "manual")
		case GatePause:
			w.Steps = append(w.Steps, "pause")
		}
	}
	if s.Interval > 0 {
		w.Interval = s.Interval.String()
	}
	if s.MaxUnavailable != (Amount{}) {
		w.MaxUnavailable = s.MaxUnavailable.String()
	}
	if s.MaxSurge != (Amount{}) {
		w.MaxSurge = s.MaxSurge.String()
	}
	if !s.Checks.IsZero() {
		c := s.Checks
		w.Analysis = &api.RolloutAnalysis{
			MaxErrorRatio: c.MaxErrorRatio * 100, MaxErrorIncrease: c.MaxErrorIncrease * 100,
			MaxP95Ratio: c.MaxP95Ratio, MaxP99Ratio: c.MaxP99Ratio,
			MaxColdStartIncrease: c.MaxColdStartIncrease * 100, MaxTrapIncrease: c.MaxTrapIncrease * 100,
			MinRequests: c.MinRequests, Alpha: c.Alpha,
		}
	}
	return w
}

// HasAnalysis reports whether any step of s is gated by an analysis, which compares
// the two revisions' SLIs by their app versions.
func (s Spec) HasAnalysis() bool {
	if s.Kind != Canary {
		return false
	}
	for _, st := range s.Steps {
		if st.Gate == GateAnalysis || st.Gate == "" {
			return true
		}
	}
	return false
}

// HasWeights reports whether a step of s splits traffic, which runs both revisions
// on one node and so needs their routes to match.
func (s Spec) HasWeights() bool {
	for _, st := range s.Steps {
		if st.IsWeight() {
			return true
		}
	}
	return false
}
