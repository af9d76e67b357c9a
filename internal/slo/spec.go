package slo

import (
	"fmt"
	"math/bits"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// SLIKind names what an SLO measures.
type SLIKind string

const (
	// Availability is the share of requests not answered with a 5xx status.
	Availability SLIKind = "availability"
	// Latency is the share of requests answered within SLI.Threshold.
	Latency SLIKind = "latency"
)

// SLI is an SLO's indicator. Threshold is set for Latency only.
type SLI struct {
	Kind      SLIKind
	Threshold time.Duration
}

// String is a stable key for the SLI, e.g. "availability" or "latency<250ms".
func (s SLI) String() string {
	if s.Kind == Latency {
		return "latency<" + s.Threshold.String()
	}
	return string(s.Kind)
}

// ScopeKind says over which population an SLO is evaluated, each member on its own.
type ScopeKind string

const (
	// ScopeGlobal evaluates the SLO over the whole fleet at once.
	ScopeGlobal ScopeKind = "global"
	// ScopeRegion evaluates it once per region.
	ScopeRegion ScopeKind = "region"
	// ScopeNode evaluates it once per node.
	ScopeNode ScopeKind = "node"
)

// Scope is where an SLO applies: Per says how the population is split, Nodes (optional)
// restricts it to nodes whose labels contain every pair.
type Scope struct {
	Per   ScopeKind
	Nodes map[string]string
}

// Ratio is an exact non-negative fraction Num/Den. Objectives and burn factors are
// decimals written by people; keeping them as integers lets a burn of exactly 14.4× be
// compared as exactly 14.4×, never as 14.399999999999999.
type Ratio struct {
	Num, Den uint64
}

// Float returns the ratio as a float64, for display only.
func (r Ratio) Float() float64 { return float64(r.Num) / float64(r.Den) }

// String renders the ratio as the decimal it was parsed from.
func (r Ratio) String() string {
	return strconv.FormatFloat(r.Float(), 'f', -1, 64)
}

// maxDecimalDigits bounds the fraction digits of a decimal, so products of a count
// (< 2^63), an objective's and a factor's denominators fit the 192 bits cmp3 uses.
const maxDecimalDigits = 9

// ParseDecimal reads a plain decimal such as "99.9", "14.4" or "6" exactly.
func ParseDecimal(s string) (Ratio, error) {
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" && frac == "" || strings.TrimLeft(intPart+frac, "0123456789") != "" {
		return Ratio{}, fmt.Errorf("%q is not a plain decimal number such as 99.9", s)
	}
	if len(frac) > maxDecimalDigits {
		return Ratio{}, fmt.Errorf("%q has more than %d digits after the point", s, maxDecimalDigits)
	}
	if len(intPart) > 9 {
		return Ratio{}, fmt.Errorf("%q is too large", s)
	}
	den := uint64(1)
	for range frac {
		den *= 10
	}
	num, err := strconv.ParseUint(intPart+frac+"0", 10, 64) // "0" keeps "" parseable
	if err != nil {
		return Ratio{}, fmt.Errorf("%q is not a plain decimal number such as 99.9", s)
	}
	return Ratio{Num: num / 10, Den: den}, nil
}

// cmp3 compares a1·a2·a3 with b1·b2·b3 exactly, returning -1, 0 or +1.
func cmp3(a1, a2, a3, b1, b2, b3 uint64) int {
	x := mul3(a1, a2, a3)
	y := mul3(b1, b2, b3)
	for i := range 3 {
		if x[i] != y[i] {
			if x[i] < y[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// mul3 returns a·b·c as a 192-bit number, most significant word first.
func mul3(a, b, c uint64) [3]uint64 {
	hi, lo := bits.Mul64(a, b)
	h1, l1 := bits.Mul64(lo, c)
	h2, l2 := bits.Mul64(hi, c)
	mid, carry := bits.Add64(l2, h1, 0)
	return [3]uint64{h2 + carry, mid, l1}
}

// ParseWindow reads a duration in Prometheus' style: an integer and one of s, m, h, d,
// w, e.g. "30d", "1h", "5m". Go's "1h30m" forms are accepted too.
func ParseWindow(s string) (time.Duration, error) {
	m := windowRE.FindStringSubmatch(s)
	if m == nil {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("%q is not a duration; write an integer and a unit, such as 30d, 6h or 5m", s)
		}
		return d, nil
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n <= 0 || n > 10000 {
		return 0, fmt.Errorf("%q is out of range; use a positive duration of at most a few years", s)
	}
	unit := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[m[2]]
	return time.Duration(n) * unit, nil
}

var windowRE = regexp.MustCompile(`^([0-9]+)([smhdw])$`)

// FormatWindow renders d in the largest unit that divides it, as Prometheus writes
// range selectors: 30d, 6h, 5m, 90s.
func FormatWindow(d time.Duration) string {
	for _, u := range []struct {
		s string
		d time.Duration
	}{{"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}} {
		if d >= u.d && d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.s
		}
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// Severity is how urgently a firing alert needs a person.
type Severity string

const (
	// Page wakes someone up: the budget burns fast enough to be gone in days.
	Page Severity = "page"
	// Ticket is work for business hours: a slow burn.
	Ticket Severity = "ticket"
)

// Tier is one multiwindow burn-rate condition: the alert's condition holds while the
// burn rate over both Long and Short windows is at least Factor. Short is the
// workbook's reset window: it makes the alert resolve minutes after the errors stop
// rather than when the long window has forgotten them. The condition must hold for For
// before the alert fires.
type Tier struct {
	Severity Severity
	Factor   Ratio
	Long     time.Duration
	Short    time.Duration
	For      time.Duration
}

// presets are the named tier sets an SLO's alerting may start from; PresetTiers hands
// out copies so no caller can change them for everyone.
//
// "workbook" (the default) is the SRE workbook's table: page at 14.4× over 1 h and 5 min
// (2 % of a 30-day budget in an hour) and 6× over 6 h and 30 min (5 % in 6 h); ticket at
// 3× over 1 d and 2 h and 1× over 3 d and 6 h. It pages on a sustained 10× burn after
// 3.6 h through its 6× tier, as the workbook intends.
//
// "seed" is Fermion's seed mapping: page at 14× or more sustained for 5 min (over 15 min
// and 5 min), ticket at 4× or more (over 1 h and 15 min, sustained 15 min); a 10× burn
// tickets and never pages.
var presets = map[string][]Tier{
	"workbook": {
		{Severity: Page, Factor: Ratio{144, 10}, Long: time.Hour, Short: 5 * time.Minute},
		{Severity: Page, Factor: Ratio{6, 1}, Long: 6 * time.Hour, Short: 30 * time.Minute},
		{Severity: Ticket, Factor: Ratio{3, 1}, Long: 24 * time.Hour, Short: 2 * time.Hour},
		{Severity: Ticket, Factor: Ratio{1, 1}, Long: 72 * time.Hour, Short: 6 * time.Hour},
	},
	"seed": {
		{Severity: Page, Factor: Ratio{14, 1}, Long: 15 * time.Minute, Short: 5 * time.Minute, For: 5 * time.Minute},
		{Severity: Ticket, Factor: Ratio{4, 1}, Long: time.Hour, Short: 15 * time.Minute, For: 15 * time.Minute},
	},
}

// DefaultPreset is the preset used when an SLO names none.
const DefaultPreset = "workbook"

// PresetTiers returns a copy of the named preset's tiers, and whether it exists.
func PresetTiers(name string) ([]Tier, bool) {
	t, ok := presets[name]
	return append([]Tier(nil), t...), ok
}

func presetCopy(name string) []Tier {
	t, _ := PresetTiers(name)
	return t
}

func presetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Spec is one SLO, decoded and validated.
type Spec struct {
	Name        string
	Description string
	// App names the deployment the SLO is about; Selector (deployment labels) is the
	// alternative, resolved by the Source. Exactly one is set.
	App      string
	Selector map[string]string
	SLI      SLI
	// Objective is the target share of good requests, 0 < Objective < 1 (99.9 % is
	// 999/1000).
	Objective Ratio
	Window    time.Duration
	Scope     Scope
	// Preset names the tier set Tiers came from; Tiers is what is evaluated.
	Preset  string
	Tiers   []Tier
	Runbook string
}

// Budget returns the error budget as a fraction of requests: 1 - Objective.
func (s *Spec) Budget() Ratio {
	return Ratio{Num: s.Objective.Den - s.Objective.Num, Den: s.Objective.Den}
}

// MaxTierWindow is the longest window any tier looks at.
func (s *Spec) MaxTierWindow() time.Duration {
	var m time.Duration
	for _, t := range s.Tiers {
		m = max(m, t.Long, t.Short)
	}
	return m
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
var labelKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.\-/]{0,62}$`)

// checkObjective refuses objectives that leave no budget or demand nothing.
func checkObjective(r Ratio) string {
	switch {
	case r.Num == 0:
		return "objective must be above 0 %; write the target share of good requests, such as 99.9"
	case r.Num >= r.Den:
		return "objective must be below 100 %: an SLO of 100 % has no error budget and any single error would page; use 99.9 or 99.99"
	}
	return ""
}

func checkRunbook(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Sprintf("runbook %q is not an http(s) URL; write the full address of the runbook page", s)
	}
	return ""
}

// checkTier validates one tier; field prefixes the problem.
func checkTier(t Tier, window time.Duration) string {
	switch {
	case t.Severity != Page && t.Severity != Ticket:
		return fmt.Sprintf("severity %q is not one of page, ticket", t.Severity)
	case t.Factor.Num == 0:
		return "factor must be above 0"
	case t.Long <= 0 || t.Short <= 0:
		return "long and short windows are required, such as long: 1h and short: 5m"
	case t.Short >= t.Long:
		return fmt.Sprintf("short window %s must be shorter than long window %s (the workbook uses 1/12 of it)", FormatWindow(t.Short), FormatWindow(t.Long))
	case t.Long > window:
		return fmt.Sprintf("long window %s is longer than the SLO window %s", FormatWindow(t.Long), FormatWindow(window))
	case t.For < 0:
		return "for must not be negative"
	}
	return ""
}
