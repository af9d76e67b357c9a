package rollout

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"fermion.dev/fermion/internal/diag"
)

// TableFields are the keys of a manifest's [strategy] table and its
// [strategy.analysis] table, for did-you-mean and for the manifest's schema.
var (
	TableFields    = []string{"kind", "steps", "interval", "max_extensions", "max_unavailable", "max_surge", "sticky", "analysis"}
	AnalysisFields = []string{"max_error_ratio", "max_error_increase", "max_p95_ratio", "max_p99_ratio", "max_cold_start_increase", "max_trap_increase", "min_requests", "alpha"}
)

// DecodeTable decodes a manifest's strategy table, as the TOML decoder left it
// (map[string]any with string, int64, float64, []any and nested maps):
//
//	[strategy]
//	kind = "canary"
//	steps = ["1node", "10%", "manual", "50%", "100%"]   # the CLI's --steps grammar
//	interval = "1m"
//	max_extensions = 3
//	sticky = "cookie:session"   # or "header:X-User": a client stays on one side
//	[strategy.analysis]
//	max_error_ratio = 1.0         # percent
//	max_error_increase = 0.5      # percentage points over stable
//	max_p99_ratio = 1.2           # × stable
//	min_requests = 100
//
// at is the table's field path ("strategy"); pos gives the line and column of a
// field's key (0, 0 when unknown), so problems point into the file. It reports every
// problem at once and returns a normalized Spec only when there are none.
func DecodeTable(file, at string, tbl map[string]any, pos func(field string) (line, col int)) (Spec, []diag.Problem) {
	d := &tableDecoder{file: file, pos: pos}
	s := Spec{}
	d.unknown(tbl, at, TableFields)
	if v, ok := d.str(tbl, at, "kind"); ok {
		if slices.Contains(Kinds, v) {
			s.Kind = Kind(v)
		} else if c := diag.Closest(v, Kinds); c != "" {
			d.at(at+".kind", "unknown strategy %q; did you mean %q?", v, c)
		} else {
			d.at(at+".kind", "unknown strategy %q; use %s", v, strings.Join(Kinds, ", "))
		}
	} else if _, present := tbl["kind"]; !present {
		d.at(at+".kind", "required; use %s", strings.Join(Kinds, ", "))
	}
	if raw, present := tbl["steps"]; present {
		field := at + ".steps"
		list, ok := raw.([]any)
		if !ok {
			d.at(field, "must be an array of strings, such as steps = [\"1node\", \"10%%\", \"100%%\"]")
		} else {
			toks := make([]string, 0, len(list))
			for i, e := range list {
				t, ok := e.(string)
				if !ok {
					d.at(fmt.Sprintf("%s[%d]", field, i), "must be a string such as \"10%%\", not %T", e)
					continue
				}
				if strings.Contains(t, ",") {
					d.at(fmt.Sprintf("%s[%d]", field, i), "%q holds a comma; write one step per string", t)
					continue
				}
				toks = append(toks, t)
			}
			if len(toks) == len(list) {
				if len(toks) == 0 {
					d.at(field, "is empty; list the steps, such as [\"1node\", \"10%%\", \"100%%\"]")
				} else if steps, err := ParseSteps(strings.Join(toks, ",")); err != nil {
					d.at(field, "%v", err)
				} else {
					s.Steps = steps
				}
			}
		}
	}
	if v, ok := d.str(tbl, at, "interval"); ok {
		iv, err := time.ParseDuration(v)
		if err != nil || iv < time.Second || iv > 24*time.Hour {
			d.at(at+".interval", "%q is not an interval; write a duration between 1s and 24h such as \"1m\"", v)
		} else {
			s.Interval = iv
		}
	}
	if v, ok := d.str(tbl, at, "sticky"); ok {
		if k, err := ParseSticky(v); err != nil {
			d.at(at+".sticky", "%v", err)
		} else {
			s.Sticky = k
		}
	}
	if n, ok := d.integer(tbl, at, "max_extensions", 0, 100); ok {
		s.MaxExtensions = int(n)
		if n == 0 {
			// Written out, 0 means none; only an absent key means the default.
			s.MaxExtensions = NoExtensions
		}
	}
	for _, k := range []string{"max_unavailable", "max_surge"} {
		raw, present := tbl[k]
		if !present {
			continue
		}
		var a Amount
		var err error
		switch v := raw.(type) {
		case int64:
			a, err = ParseAmount(fmt.Sprint(v))
		case string:
			a, err = ParseAmount(v)
		default:
			err = fmt.Errorf("must be a node count such as 1 or a share such as \"25%%\", not %T", raw)
		}
		if err != nil {
			d.at(at+"."+k, "%v", err)
		} else if k == "max_unavailable" {
			s.MaxUnavailable = a
		} else {
			s.MaxSurge = a
		}
	}
	if raw, present := tbl["analysis"]; present {
		field := at + ".analysis"
		if t, ok := raw.(map[string]any); !ok {
			d.at(field, "must be a table: [%s]", field)
		} else {
			s.Checks = d.checks(t, field)
		}
	}
	if len(d.probs) > 0 {
		diag.Sort(d.probs)
		return Spec{}, d.probs
	}
	n, err := s.Normalize()
	if err != nil {
		d.at(at, "%v", err)
		return Spec{}, d.probs
	}
	return n, nil
}

type tableDecoder struct {
	file  string
	pos   func(string) (int, int)
	probs []diag.Problem
}

func (d *tableDecoder) at(field, format string, args ...any) {
	p := diag.Problem{File: d.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if d.pos != nil {
		p.Line, _ = d.pos(field)
	}
	d.probs = append(d.probs, p)
}

func (d *tableDecoder) unknown(tbl map[string]any, at string, known []string) {
	keys := make([]string, 0, len(tbl))
	for k := range tbl {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if slices.Contains(known, k) {
			continue
		}
		field := at + "." + k
		msg := fmt.Sprintf("unknown field; remove it (valid here: %s)", strings.Join(known, ", "))
		if c := diag.Closest(k, known); c != "" {
			msg = fmt.Sprintf("unknown field; did you mean %q?", at+"."+c)
		} else if other := AnalysisFields; at == "strategy" && slices.Contains(other, k) {
			msg = fmt.Sprintf("unknown field here; %q belongs under [strategy.analysis]", k)
		}
		p := diag.Problem{File: d.file, Field: field, Msg: msg}
		if d.pos != nil {
			p.Line, p.Col = d.pos(field)
		}
		d.probs = append(d.probs, p)
	}
}

func (d *tableDecoder) str(tbl map[string]any, at, key string) (string, bool) {
	raw, present := tbl[key]
	if !present {
		return "", false
	}
	s, ok := raw.(string)
	if !ok {
		d.at(at+"."+key, "must be a string, not %T; put it in quotes: %s = \"%v\"", raw, key, raw)
	}
	return s, ok
}

func (d *tableDecoder) number(tbl map[string]any, at, key string) (float64, bool) {
	raw, present := tbl[key]
	if !present {
		return 0, false
	}
	switch v := raw.(type) {
	case int64:
		return float64(v), true
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			d.at(at+"."+key, "must be a finite number")
			return 0, false
		}
		return v, true
	}
	d.at(at+"."+key, "must be a number, not %T; for example %s = 1.5", raw, key)
	return 0, false
}

func (d *tableDecoder) integer(tbl map[string]any, at, key string, lo, hi int64) (int64, bool) {
	raw, present := tbl[key]
	if !present {
		return 0, false
	}
	v, ok := raw.(int64)
	if !ok {
		d.at(at+"."+key, "must be a whole number, not %T", raw)
		return 0, false
	}
	if v < lo || v > hi {
		d.at(at+"."+key, "must be between %d and %d, got %d", lo, hi, v)
		return 0, false
	}
	return v, true
}

// checks reads [strategy.analysis]. Ratios and increases are written in percent
// (1.0 is 1 %, 0.5 is 0.5 pp), as operators say them; Checks holds fractions.
func (d *tableDecoder) checks(t map[string]any, at string) Checks {
	d.unknown(t, at, AnalysisFields)
	c := DefaultChecks()
	pct := func(key string, dst *float64) {
		if v, ok := d.number(t, at, key); ok {
			if v < 0 || v > 100 {
				d.at(at+"."+key, "%v is not a percentage; write 0–100 (0 turns the check off)", v)
				return
			}
			*dst = v / 100
		}
	}
	pct("max_error_ratio", &c.MaxErrorRatio)
	pct("max_error_increase", &c.MaxErrorIncrease)
	pct("max_cold_start_increase", &c.MaxColdStartIncrease)
	pct("max_trap_increase", &c.MaxTrapIncrease)
	for _, k := range []string{"max_p95_ratio", "max_p99_ratio"} {
		if v, ok := d.number(t, at, k); ok {
			if v != 0 && (v < 1 || v > 100) {
				d.at(at+"."+k, "%v is not a ratio to stable; write 1–100 such as 1.2 (0 turns the check off)", v)
				continue
			}
			if k == "max_p95_ratio" {
				c.MaxP95Ratio = v
			} else {
				c.MaxP99Ratio = v
			}
		}
	}
	if n, ok := d.integer(t, at, "min_requests", 1, 1e9); ok {
		c.MinRequests = uint64(n)
	}
	if v, ok := d.number(t, at, "alpha"); ok {
		if v <= 0 || v >= 0.5 {
			d.at(at+".alpha", "%v is not a significance level; write a value in (0, 0.5) such as 0.05", v)
		} else {
			c.Alpha = v
		}
	}
	return c
}
