package slo

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"fermion.dev/fermion/internal/diag"
)

// Problem is one thing wrong with an SLO file or manifest entry.
type Problem = diag.Problem

// Error carries every problem found in one file, so a user fixes them in one edit.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	if e == nil || len(e.Problems) == 0 {
		return "invalid SLO"
	}
	return diag.Join(e.Problems)
}

// Bounds on what Decode accepts: far above what SLO files need, low enough that a
// hostile file costs milliseconds.
const (
	// MaxFileSize is the largest SLO file accepted.
	MaxFileSize = 256 << 10
	// MaxDocuments is the most SLOs one file may hold.
	MaxDocuments = 1000
	// maxNesting bounds flow brackets and block indentation levels before parsing: the
	// YAML parser's time grows quadratically with nesting, and an SLO needs four.
	maxNesting = 16
)

// Decode reads a file of one or more YAML documents ("---" between them), each one
// SLO, and validates them all. On any problem it returns no specs and an *Error listing
// every problem found, positioned as file:line:col and field.
func Decode(file string, data []byte) ([]Spec, error) {
	docs, p := parseDocs(file, data)
	if p != nil {
		return nil, &Error{Problems: []Problem{*p}}
	}
	var specs []Spec
	var probs []Problem
	seen := map[string]int{}
	for _, doc := range docs {
		d := &decoder{file: file}
		s := d.spec(doc)
		probs = append(probs, d.probs...)
		if len(d.probs) > 0 {
			continue
		}
		if line, dup := seen[s.Name]; dup {
			probs = append(probs, Problem{File: file, Line: doc.line, Col: doc.col, Field: "name", Msg: fmt.Sprintf("SLO %q is defined twice (first at line %d); give each SLO its own name", s.Name, line)})
			continue
		}
		seen[s.Name] = doc.line
		specs = append(specs, s)
	}
	if len(probs) > 0 {
		diag.Sort(probs)
		return nil, &Error{Problems: probs}
	}
	return specs, nil
}

// decoder turns one document's tree into a Spec, collecting every problem.
type decoder struct {
	file  string
	probs []Problem
}

func (d *decoder) add(n *ynode, field, format string, args ...any) {
	p := Problem{File: d.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Col = n.line, n.col
	}
	d.probs = append(d.probs, p)
}

// fields checks n is a mapping with only known keys and returns key → value. A
// misspelt key gets a did-you-mean from diag.Closest.
func (d *decoder) fields(n *ynode, path string, known []string) map[string]*ynode {
	if n.kind != yMap {
		d.add(n, path, "must be a mapping, not %s", n.describe())
		return nil
	}
	out := make(map[string]*ynode, len(n.keys))
	for i, k := range n.keys {
		field := join(path, k)
		if !contains(known, k) {
			msg := fmt.Sprintf("unknown field %q", k)
			if s := diag.Closest(k, known); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else {
				msg += "; known fields are " + strings.Join(known, ", ")
			}
			d.probs = append(d.probs, Problem{File: d.file, Line: n.keyPos[i][0], Col: n.keyPos[i][1], Field: field, Msg: msg})
			continue
		}
		out[k] = n.vals[i]
	}
	return out
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (d *decoder) str(n *ynode, field string) (string, bool) {
	if n == nil {
		return "", false
	}
	if n.kind != yScalar {
		d.add(n, field, "must be a string, not %s", n.describe())
		return "", false
	}
	return n.text, true
}

func (d *decoder) labels(n *ynode, field string) map[string]string {
	if n == nil {
		return nil
	}
	if n.kind != yMap {
		d.add(n, field, "must be a mapping of label: value, not %s", n.describe())
		return nil
	}
	out := make(map[string]string, len(n.keys))
	for i, k := range n.keys {
		if !labelKeyRE.MatchString(k) {
			d.probs = append(d.probs, Problem{File: d.file, Line: n.keyPos[i][0], Col: n.keyPos[i][1], Field: join(field, k), Msg: "label names start with a letter or _ and hold letters, digits, _ . - /"})
			continue
		}
		if v, ok := d.str(n.vals[i], join(field, k)); ok {
			out[k] = v
		}
	}
	return out
}

func (d *decoder) window(n *ynode, field string) time.Duration {
	s, ok := d.str(n, field)
	if !ok {
		return 0
	}
	w, err := ParseWindow(s)
	if err != nil {
		d.add(n, field, "%v", err)
	}
	return w
}

var (
	topFields      = []string{"apiVersion", "kind", "name", "description", "app", "selector", "sli", "objective", "window", "scope", "alerting", "runbook"}
	sliFields      = []string{"kind", "threshold"}
	scopeFields    = []string{"per", "nodes"}
	alertingFields = []string{"preset", "tiers"}
	tierFields     = []string{"severity", "factor", "long", "short", "for"}
)

// zeroRE matches a zero duration, which `for` accepts (fire at once) and windows do not.
var zeroRE = regexp.MustCompile(`^0+(ms|[smhdw])?$`)

// APIVersion is the apiVersion an SLO document may declare.
const APIVersion = "fermion.dev/v1"

func (d *decoder) spec(doc *ynode) Spec {
	var s Spec
	f := d.fields(doc, "", topFields)
	if f == nil {
		return s
	}
	if n := f["apiVersion"]; n != nil {
		if v, ok := d.str(n, "apiVersion"); ok && v != APIVersion {
			d.add(n, "apiVersion", "apiVersion %q is not supported; use %s", v, APIVersion)
		}
	}
	if n := f["kind"]; n != nil {
		if v, ok := d.str(n, "kind"); ok && v != "SLO" {
			d.add(n, "kind", "kind %q is not an SLO; this file format holds kind: SLO only", v)
		}
	}
	if n := f["name"]; n == nil {
		d.add(doc, "name", "required: name the SLO, such as hello-availability")
	} else if v, ok := d.str(n, "name"); ok {
		if !nameRE.MatchString(v) {
			d.add(n, "name", "%q is not a valid name: use lowercase letters, digits and '-', at most 63 characters", v)
		}
		s.Name = v
	}
	if n := f["description"]; n != nil {
		s.Description, _ = d.str(n, "description")
	}
	if n := f["app"]; n != nil {
		if v, ok := d.str(n, "app"); ok {
			if !nameRE.MatchString(v) {
				d.add(n, "app", "%q is not a valid app name: use lowercase letters, digits and '-'", v)
			}
			s.App = v
		}
	}
	if n := f["selector"]; n != nil {
		s.Selector = d.labels(n, "selector")
		if len(s.Selector) == 0 && n.kind == yMap {
			d.add(n, "selector", "an empty selector would match every app; name labels or use app:")
		}
	}
	switch {
	case f["app"] != nil && f["selector"] != nil:
		d.add(f["selector"], "selector", "give app or selector, not both")
	case f["app"] == nil && f["selector"] == nil:
		d.add(doc, "app", "required: name the app (app: hello) or select apps by label (selector:)")
	}
	s.SLI = d.sli(f["sli"], doc)
	if n := f["objective"]; n == nil {
		d.add(doc, "objective", "required: the target share of good requests in percent, such as 99.9")
	} else if v, ok := d.str(n, "objective"); ok {
		pct, err := ParseDecimal(strings.TrimSuffix(v, "%"))
		if err != nil {
			d.add(n, "objective", "%v; write a percentage such as 99.9", err)
		} else {
			s.Objective = Ratio{Num: pct.Num, Den: pct.Den * 100}
			if msg := checkObjective(s.Objective); msg != "" {
				d.add(n, "objective", "%s", msg)
			}
		}
	}
	s.Window = 30 * 24 * time.Hour
	if n := f["window"]; n != nil {
		s.Window = d.window(n, "window")
	}
	s.Scope = d.scope(f["scope"])
	s.Preset, s.Tiers = d.alerting(f["alerting"], s.Window)
	if n := f["runbook"]; n != nil {
		if v, ok := d.str(n, "runbook"); ok {
			if msg := checkRunbook(v); msg != "" {
				d.add(n, "runbook", "%s", msg)
			}
			s.Runbook = v
		}
	}
	return s
}

func (d *decoder) sli(n, doc *ynode) SLI {
	if n == nil {
		d.add(doc, "sli", "required: availability, or a mapping {kind: latency, threshold: 250ms}")
		return SLI{}
	}
	var kind, threshold *ynode
	if n.kind == yScalar {
		kind = n
	} else {
		f := d.fields(n, "sli", sliFields)
		if f == nil {
			return SLI{}
		}
		kind, threshold = f["kind"], f["threshold"]
		if kind == nil {
			d.add(n, "sli.kind", "required: availability or latency")
			return SLI{}
		}
	}
	k, ok := d.str(kind, "sli.kind")
	if !ok {
		return SLI{}
	}
	switch SLIKind(k) {
	case Availability:
		if threshold != nil {
			d.add(threshold, "sli.threshold", "only a latency SLI has a threshold; remove it or use kind: latency")
		}
		return SLI{Kind: Availability}
	case Latency:
		if threshold == nil {
			d.add(kind, "sli.threshold", "a latency SLI needs a threshold, such as threshold: 250ms")
			return SLI{Kind: Latency}
		}
		v, ok := d.str(threshold, "sli.threshold")
		if !ok {
			return SLI{Kind: Latency}
		}
		t, err := time.ParseDuration(v)
		if err != nil || t <= 0 || t > time.Minute {
			d.add(threshold, "sli.threshold", "%q is not a latency threshold; write a duration between 1ms and 1m such as 250ms", v)
		}
		return SLI{Kind: Latency, Threshold: t}
	default:
		msg := fmt.Sprintf("unknown SLI %q; use availability or latency", k)
		if s := diag.Closest(k, []string{"availability", "latency"}); s != "" {
			msg = fmt.Sprintf("unknown SLI %q; did you mean %q?", k, s)
		}
		d.add(kind, "sli.kind", "%s", msg)
	}
	return SLI{}
}

func (d *decoder) scope(n *ynode) Scope {
	sc := Scope{Per: ScopeGlobal}
	if n == nil {
		return sc
	}
	per := n
	if n.kind != yScalar {
		f := d.fields(n, "scope", scopeFields)
		if f == nil {
			return sc
		}
		per = f["per"]
		if nn := f["nodes"]; nn != nil {
			sc.Nodes = d.labels(nn, "scope.nodes")
			if len(sc.Nodes) == 0 && nn.kind == yMap {
				d.add(nn, "scope.nodes", "an empty node selector selects every node; remove it or name labels")
			}
		}
		if per == nil {
			return sc
		}
	}
	v, ok := d.str(per, "scope.per")
	if !ok {
		return sc
	}
	switch ScopeKind(v) {
	case ScopeGlobal, ScopeRegion, ScopeNode:
		sc.Per = ScopeKind(v)
	default:
		msg := fmt.Sprintf("unknown scope %q; use global, region or node", v)
		if s := diag.Closest(v, []string{"global", "region", "node"}); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		d.add(per, "scope.per", "%s", msg)
	}
	return sc
}

func (d *decoder) alerting(n *ynode, window time.Duration) (string, []Tier) {
	preset := DefaultPreset
	var pn, tn *ynode
	if n != nil {
		f := d.fields(n, "alerting", alertingFields)
		pn, tn = f["preset"], f["tiers"]
	}
	if pn != nil {
		if v, ok := d.str(pn, "alerting.preset"); ok {
			if _, known := presets[v]; !known {
				msg := fmt.Sprintf("unknown preset %q; use one of %s", v, strings.Join(presetNames(), ", "))
				if s := diag.Closest(v, presetNames()); s != "" {
					msg = fmt.Sprintf("unknown preset %q; did you mean %q?", v, s)
				}
				d.add(pn, "alerting.preset", "%s", msg)
			} else {
				preset = v
			}
		}
	}
	if tn == nil {
		tiers := presetCopy(preset)
		for i, t := range tiers {
			if t.Long > window {
				d.add(n, "alerting", "preset %s's tier %d looks back %s, longer than the SLO window %s; choose a longer window or give tiers:", preset, i, FormatWindow(t.Long), FormatWindow(window))
				break
			}
		}
		return preset, tiers
	}
	if tn.kind != ySeq || len(tn.items) == 0 {
		d.add(tn, "alerting.tiers", "must be a non-empty list of {severity, factor, long, short, for}")
		return preset, nil
	}
	var tiers []Tier
	for i, it := range tn.items {
		path := fmt.Sprintf("alerting.tiers[%d]", i)
		f := d.fields(it, path, tierFields)
		if f == nil {
			continue
		}
		var t Tier
		before := len(d.probs)
		for _, req := range []string{"severity", "factor", "long", "short"} {
			if f[req] == nil {
				d.add(it, path+"."+req, "required")
			}
		}
		if v, ok := d.str(f["severity"], path+".severity"); ok {
			t.Severity = Severity(v)
		}
		if v, ok := d.str(f["factor"], path+".factor"); ok {
			r, err := ParseDecimal(v)
			if err != nil {
				d.add(f["factor"], path+".factor", "%v; write the burn-rate factor such as 14.4", err)
			}
			t.Factor = r
		}
		if f["long"] != nil {
			t.Long = d.window(f["long"], path+".long")
		}
		if f["short"] != nil {
			t.Short = d.window(f["short"], path+".short")
		}
		if f["for"] != nil {
			if v, ok := d.str(f["for"], path+".for"); ok && !zeroRE.MatchString(v) {
				t.For = d.window(f["for"], path+".for")
			}
		}
		if len(d.probs) == before {
			if msg := checkTier(t, window); msg != "" {
				d.add(it, path, "%s", msg)
			}
		}
		tiers = append(tiers, t)
	}
	return "custom", tiers
}
