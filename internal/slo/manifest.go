package slo

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"fermion.dev/fermion/internal/diag"
)

// ManifestSLO is one [[slo]] table of a fermion.toml, for the manifest to embed: the
// manifest decodes it and knows its keys (ManifestFields), and Spec turns it into a
// validated Spec for the manifest's app. Custom tiers are for standalone SLO files; a
// manifest picks a preset.
//
//	[[slo]]
//	name = "availability"
//	sli = "availability"      # or "latency", with threshold = "250ms"
//	objective = 99.9          # percent
//	window = "30d"
//	scope = "node"            # global (default), region or node
//	nodes = { role = "edge" } # optional node population
//	preset = "seed"           # workbook (default) or seed
//	runbook = "https://runbooks.example/hello"
type ManifestSLO struct {
	Name      string            `toml:"name" json:"name"`
	SLI       string            `toml:"sli" json:"sli"`
	Threshold string            `toml:"threshold" json:"threshold,omitempty"`
	Objective float64           `toml:"objective" json:"objective"`
	Window    string            `toml:"window" json:"window,omitempty"`
	Scope     string            `toml:"scope" json:"scope,omitempty"`
	Nodes     map[string]string `toml:"nodes" json:"nodes,omitempty"`
	Preset    string            `toml:"preset" json:"preset,omitempty"`
	Runbook   string            `toml:"runbook" json:"runbook,omitempty"`
}

// ManifestFields are the keys of an [[slo]] table, for the manifest's unknown-key
// check and its did-you-mean.
var ManifestFields = []string{"name", "sli", "threshold", "objective", "window", "scope", "nodes", "preset", "runbook"}

// Spec validates m as an SLO of app. Problems name fields under path (such as
// "slo[0]") and the file; the manifest adds lines and columns from its key index.
func (m ManifestSLO) Spec(file, path, app string) (Spec, []Problem) {
	var probs []Problem
	add := func(field, format string, args ...any) {
		probs = append(probs, Problem{File: file, Field: path + "." + field, Msg: fmt.Sprintf(format, args...)})
	}
	s := Spec{App: app, Window: 30 * 24 * time.Hour, Scope: Scope{Per: ScopeGlobal, Nodes: m.Nodes}, Preset: DefaultPreset, Runbook: m.Runbook}
	s.Name = m.Name
	if s.Name == "" {
		add("name", "required: name the SLO, such as \"availability\"")
	} else if !nameRE.MatchString(s.Name) {
		add("name", "%q is not a valid name: use lowercase letters, digits and '-', at most 63 characters", s.Name)
	}
	switch SLIKind(m.SLI) {
	case Availability:
		s.SLI = SLI{Kind: Availability}
		if m.Threshold != "" {
			add("threshold", "only a latency SLI has a threshold; remove it or set sli = \"latency\"")
		}
	case Latency:
		t, err := time.ParseDuration(m.Threshold)
		if err != nil || t <= 0 || t > time.Minute {
			add("threshold", "%q is not a latency threshold; write a duration between 1ms and 1m such as \"250ms\"", m.Threshold)
		}
		s.SLI = SLI{Kind: Latency, Threshold: t}
	case "":
		add("sli", "required: \"availability\" or \"latency\"")
	default:
		msg := fmt.Sprintf("unknown SLI %q; use \"availability\" or \"latency\"", m.SLI)
		if c := diag.Closest(m.SLI, []string{"availability", "latency"}); c != "" {
			msg = fmt.Sprintf("unknown SLI %q; did you mean %q?", m.SLI, c)
		}
		add("sli", "%s", msg)
	}
	if m.Objective == 0 {
		add("objective", "required: the target share of good requests in percent, such as 99.9")
	} else if r, err := ParseDecimal(strconv.FormatFloat(m.Objective, 'f', -1, 64)); err != nil {
		add("objective", "%v; write a percentage such as 99.9", err)
	} else {
		s.Objective = Ratio{Num: r.Num, Den: r.Den * 100}
		if msg := checkObjective(s.Objective); msg != "" {
			add("objective", "%s", msg)
		}
	}
	if m.Window != "" {
		w, err := ParseWindow(m.Window)
		if err != nil {
			add("window", "%v", err)
		}
		s.Window = w
	}
	switch ScopeKind(m.Scope) {
	case "":
	case ScopeGlobal, ScopeRegion, ScopeNode:
		s.Scope.Per = ScopeKind(m.Scope)
	default:
		add("scope", "unknown scope %q; use \"global\", \"region\" or \"node\"", m.Scope)
	}
	for k := range m.Nodes {
		if !labelKeyRE.MatchString(k) {
			add("nodes."+k, "label names start with a letter or _ and hold letters, digits, _ . - /")
		}
	}
	if m.Preset != "" {
		if _, ok := presets[m.Preset]; !ok {
			add("preset", "unknown preset %q; use one of %s", m.Preset, strings.Join(presetNames(), ", "))
		} else {
			s.Preset = m.Preset
		}
	}
	s.Tiers = presetCopy(s.Preset)
	if s.Window > 0 && s.MaxTierWindow() > s.Window {
		add("window", "window %s is shorter than preset %s's longest look-back %s; use a longer window", FormatWindow(s.Window), s.Preset, FormatWindow(s.MaxTierWindow()))
	}
	if msg := checkRunbook(m.Runbook); msg != "" {
		add("runbook", "%s", msg)
	}
	if len(probs) > 0 {
		return Spec{}, probs
	}
	return s, nil
}

// Validate checks a Spec built in Go (not decoded), such as one the control plane
// reads back from its store, with the rules Decode applies.
func (s *Spec) Validate() error {
	var msgs []string
	if !nameRE.MatchString(s.Name) {
		msgs = append(msgs, fmt.Sprintf("name %q is not valid", s.Name))
	}
	if (s.App == "") == (len(s.Selector) == 0) {
		msgs = append(msgs, "exactly one of app and selector must be set")
	}
	if s.SLI.Kind != Availability && (s.SLI.Kind != Latency || s.SLI.Threshold <= 0) {
		msgs = append(msgs, fmt.Sprintf("sli %q is not availability or latency with a threshold", s.SLI))
	}
	if s.Objective.Den == 0 {
		msgs = append(msgs, "objective is missing")
	} else if m := checkObjective(s.Objective); m != "" {
		msgs = append(msgs, m)
	}
	if s.Window <= 0 {
		msgs = append(msgs, "window must be positive")
	}
	switch s.Scope.Per {
	case ScopeGlobal, ScopeRegion, ScopeNode:
	default:
		msgs = append(msgs, fmt.Sprintf("scope %q is not global, region or node", s.Scope.Per))
	}
	if len(s.Tiers) == 0 {
		msgs = append(msgs, "no alerting tiers")
	}
	for i, t := range s.Tiers {
		if t.Factor.Den == 0 {
			msgs = append(msgs, fmt.Sprintf("tier %d: factor is missing", i))
		} else if m := checkTier(t, s.Window); m != "" {
			msgs = append(msgs, fmt.Sprintf("tier %d: %s", i, m))
		}
	}
	if m := checkRunbook(s.Runbook); m != "" {
		msgs = append(msgs, m)
	}
	if len(msgs) > 0 {
		return fmt.Errorf("validate SLO %s: %s", s.Name, strings.Join(msgs, "; "))
	}
	return nil
}
