package rollout

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"fermion.dev/fermion/internal/diag"
)

// Kind names a strategy.
type Kind string

const (
	// AllAtOnce switches every node at once: the behaviour before strategies.
	AllAtOnce Kind = "all-at-once"
	// Rolling switches nodes in batches of MaxUnavailable+MaxSurge.
	Rolling Kind = "rolling"
	// Canary goes through Steps, judging each before the next.
	Canary Kind = "canary"
)

// Kinds lists the strategies, for messages and did-you-mean.
var Kinds = []string{string(AllAtOnce), string(Rolling), string(Canary)}

// Gate is what must happen after a step is in place before the next one starts.
type Gate string

const (
	// GateAnalysis compares canary with stable over the step's interval (the default
	// for canary steps when checks are declared).
	GateAnalysis Gate = "analysis"
	// GatePause waits the step's interval, then goes on.
	GatePause Gate = "pause"
	// GateManual waits for `fermion rollout promote`.
	GateManual Gate = "manual"
	// GateNone goes on as soon as the step is in place (rolling batches).
	GateNone Gate = "none"
)

// Amount is a number of nodes, as a count or a percentage of the eligible nodes.
type Amount struct {
	Count   int `json:"count,omitempty"`   // used when Percent is 0
	Percent int `json:"percent,omitempty"` // 1–100
}

// Of resolves the amount against n nodes; a percentage rounds up, so 10 % of 3
// nodes is one node, never none.
func (a Amount) Of(n int) int {
	if a.Percent > 0 {
		return min(n, (a.Percent*n+99)/100)
	}
	return min(n, a.Count)
}

func (a Amount) String() string {
	if a.Percent > 0 {
		return strconv.Itoa(a.Percent) + "%"
	}
	return strconv.Itoa(a.Count)
}

// Stage is one step of a canary: either the new version on a subset of nodes (Nodes,
// optionally among those matching Selector), or a traffic Weight on every node running
// the app. Its Gate decides how the rollout moves on.
type Stage struct {
	Nodes    Amount            `json:"nodes,omitempty"`    // node subset; zero when Weight is set
	Selector map[string]string `json:"selector,omitempty"` // node labels the subset is drawn from; nil is every node
	Weight   int               `json:"weight,omitempty"`   // percent of each route's requests sent to the canary, 1–100
	Gate     Gate              `json:"gate,omitempty"`
	Interval time.Duration     `json:"interval,omitempty"` // analysis window or pause; Spec.Interval when 0
}

// IsWeight reports whether the step splits traffic rather than choosing nodes.
func (s Stage) IsWeight() bool { return s.Weight > 0 }

func (s Stage) String() string {
	var b strings.Builder
	switch {
	case s.IsWeight():
		fmt.Fprintf(&b, "%d%%", s.Weight)
	case s.Nodes.Percent > 0:
		fmt.Fprintf(&b, "%d%%nodes", s.Nodes.Percent)
	case s.Nodes.Count == 1:
		b.WriteString("1node")
	default:
		fmt.Fprintf(&b, "%dnodes", s.Nodes.Count)
	}
	if len(s.Selector) > 0 {
		keys := slices.Sorted(maps.Keys(s.Selector))
		for _, k := range keys {
			fmt.Fprintf(&b, "@%s=%s", k, s.Selector[k])
		}
	}
	return b.String()
}

// Spec is a deployment's strategy.
type Spec struct {
	Kind Kind `json:"kind,omitempty"`
	// MaxUnavailable and MaxSurge bound a rolling update: how many nodes may be
	// switching at once, and how many may run both versions. A batch is their sum.
	MaxUnavailable Amount  `json:"max_unavailable,omitempty"`
	MaxSurge       Amount  `json:"max_surge,omitempty"`
	Steps          []Stage `json:"steps,omitempty"`
	// Interval is each step's analysis window or pause unless the step names its own.
	Interval time.Duration `json:"interval,omitempty"`
	// MaxExtensions is how many times an inconclusive analysis (too little traffic)
	// extends its step by another interval before the step fails; 0 is the default
	// (DefaultMaxExtensions), NoExtensions (-1) fails at the first inconclusive window.
	MaxExtensions int    `json:"max_extensions,omitempty"`
	Checks        Checks `json:"checks,omitempty"`
	// Sticky keeps a client on one side of a weight split: "header:NAME" or
	// "cookie:NAME" names what the gateway hashes; empty splits each request anew.
	Sticky string `json:"sticky,omitempty"`
}

var stickyNameRE = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]{1,128}$`)

// ParseSticky checks a stickiness key: "header:X-User" or "cookie:session". The name
// is an HTTP token (RFC 9110), what a header or cookie name may be.
func ParseSticky(v string) (string, error) {
	kind, name, ok := strings.Cut(v, ":")
	if !ok || (kind != "header" && kind != "cookie") {
		return "", fmt.Errorf("%q is not a stickiness key; write header:NAME or cookie:NAME, such as header:X-User", v)
	}
	if !stickyNameRE.MatchString(name) {
		return "", fmt.Errorf("%q: %q is not a valid %s name (letters, digits and !#$%%&'*+.^_|~- , at most 128)", v, name, kind)
	}
	if kind == "header" {
		name = http.CanonicalHeaderKey(name)
	}
	return kind + ":" + name, nil
}

// Defaults.
const (
	DefaultInterval      = time.Minute
	DefaultMaxExtensions = 3
	// MaxSteps bounds a canary; more steps than this is a typo, not a plan.
	MaxSteps = 20
	// NoExtensions as MaxExtensions: an inconclusive window fails its step at once.
	NoExtensions = -1
)

// Default is the strategy of a deployment that names none: all at once.
func Default() Spec { return Spec{Kind: AllAtOnce} }

// DefaultChecks are a canary's checks when the spec declares none: error ratio at most
// 1 % and at most stable + 0.5 pp, p99 at most 1.2 × stable, traps and timeouts at most
// stable + 0.5 pp, at least 100 requests on each side, significance 0.05.
func DefaultChecks() Checks {
	return Checks{
		MaxErrorRatio:    0.01,
		MaxErrorIncrease: 0.005,
		MaxP99Ratio:      1.2,
		MaxTrapIncrease:  0.005,
		MinRequests:      100,
		Alpha:            0.05,
	}
}

var stepRE = regexp.MustCompile(`^([0-9]+)(%nodes|%|nodes?)$`)

var labelKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_./-]{0,62}$`)

// ParseSteps parses the CLI form of a canary's steps, comma-separated:
//
//	1node, 3nodes    the new version on that many nodes
//	25%nodes         on that share of nodes (rounded up)
//	10%              10 % of every route's requests, on every node running the app
//	1node@region=eu  a node subset drawn from nodes with that label (repeat @k=v)
//	manual           a manual gate after the previous step (fermion rollout promote)
//	pause            a pause of one interval after the previous step, no analysis
//
// so "1node,10%,50%,100%" tries one node, then sends 10, 50 and 100 % of traffic.
func ParseSteps(s string) ([]Stage, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("no steps; list them comma-separated, such as 1node,10%,50%,100%")
	}
	var steps []Stage
	for i, tok := range strings.Split(s, ",") {
		tok = strings.TrimSpace(tok)
		switch tok {
		case "manual", "pause":
			if len(steps) == 0 {
				return nil, fmt.Errorf("step %d: %q must follow a step, it gates the one before it", i+1, tok)
			}
			if tok == "manual" {
				steps[len(steps)-1].Gate = GateManual
			} else {
				steps[len(steps)-1].Gate = GatePause
			}
			continue
		}
		st, err := parseStep(tok)
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", i+1, err)
		}
		steps = append(steps, st)
	}
	return steps, nil
}

func parseStep(tok string) (Stage, error) {
	var st Stage
	head, sel, hasSel := strings.Cut(tok, "@")
	m := stepRE.FindStringSubmatch(head)
	if m == nil {
		msg := fmt.Sprintf("%q is not a step; write 1node, 3nodes, 25%%nodes, 10%% (traffic weight), manual or pause", tok)
		if c := diag.Closest(tok, []string{"manual", "pause"}); c != "" {
			msg = fmt.Sprintf("%q is not a step; did you mean %q?", tok, c)
		}
		return st, errors.New(msg)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n > 100000 {
		return st, fmt.Errorf("%q: %s is too large", tok, m[1])
	}
	switch m[2] {
	case "%":
		if n < 1 || n > 100 {
			return st, fmt.Errorf("%q: a traffic weight is 1%%–100%%", tok)
		}
		if hasSel {
			return st, fmt.Errorf("%q: a traffic weight applies on every node running the app; a selector goes with a node step such as 1node@%s", tok, sel)
		}
		st.Weight = n
	case "%nodes":
		if n < 1 || n > 100 {
			return st, fmt.Errorf("%q: a share of nodes is 1%%nodes–100%%nodes", tok)
		}
		st.Nodes.Percent = n
	default:
		if n < 1 {
			return st, fmt.Errorf("%q: a node step needs at least 1 node", tok)
		}
		st.Nodes.Count = n
	}
	if hasSel {
		st.Selector = map[string]string{}
		for _, kv := range strings.Split(sel, "@") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || !labelKeyRE.MatchString(k) || v == "" {
				return st, fmt.Errorf("%q: selector %q is not label=value, such as region=eu-west", tok, kv)
			}
			st.Selector[k] = v
		}
	}
	return st, nil
}

// ParseAmount parses a rolling bound: a node count ("2") or a share ("25%").
func ParseAmount(s string) (Amount, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 100 {
			return Amount{}, fmt.Errorf("%q is not a percentage; write 0%%–100%%", s)
		}
		return Amount{Percent: n}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 100000 {
		return Amount{}, fmt.Errorf("%q is not a node count or percentage; write 1 or 25%%", s)
	}
	return Amount{Count: n}, nil
}

// Normalize fills defaults (interval, extensions, gates, checks) and validates;
// the spec a controller runs has been through it.
func (s Spec) Normalize() (Spec, error) {
	if s.Kind == "" {
		s.Kind = AllAtOnce
	}
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.MaxExtensions == 0 {
		s.MaxExtensions = DefaultMaxExtensions
	}
	if s.Kind == Canary && s.Checks.IsZero() {
		s.Checks = DefaultChecks()
	}
	if s.Checks.Alpha == 0 {
		s.Checks.Alpha = DefaultChecks().Alpha
	}
	if s.Checks.MinRequests == 0 {
		// A canary that saw no traffic must not pass.
		s.Checks.MinRequests = DefaultChecks().MinRequests
	}
	s.Steps = slices.Clone(s.Steps)
	for i := range s.Steps {
		if s.Steps[i].Gate == "" {
			s.Steps[i].Gate = GateAnalysis
		}
	}
	return s, s.Validate()
}

// Validate reports everything wrong with s at once.
func (s Spec) Validate() error {
	var msgs []string
	add := func(format string, args ...any) { msgs = append(msgs, fmt.Sprintf(format, args...)) }
	switch s.Kind {
	case AllAtOnce:
		if len(s.Steps) > 0 {
			add("steps: an all-at-once strategy has no steps; use kind canary")
		}
	case Rolling:
		if len(s.Steps) > 0 {
			add("steps: a rolling strategy switches in batches of max_unavailable + max_surge; steps are for kind canary")
		}
		if s.MaxUnavailable == (Amount{}) && s.MaxSurge == (Amount{}) {
			add("max_unavailable, max_surge: at least one must be above 0, or no node could ever switch")
		}
	case Canary:
		if len(s.Steps) == 0 {
			add("steps: a canary needs steps, such as [\"1node\", \"10%%\", \"50%%\", \"100%%\"]")
		}
		if len(s.Steps) > MaxSteps {
			add("steps: %d steps, at most %d", len(s.Steps), MaxSteps)
		}
		lastWeight := 0
		for i, st := range s.Steps {
			if st.IsWeight() {
				if st.Nodes != (Amount{}) || st.Selector != nil {
					add("steps[%d]: a step is a traffic weight or a node subset, not both", i)
				}
				if st.Weight <= lastWeight {
					add("steps[%d]: weight %d%% does not grow on the previous %d%%; weights must increase", i, st.Weight, lastWeight)
				}
				lastWeight = st.Weight
			} else if st.Nodes.Count < 1 && st.Nodes.Percent < 1 {
				add("steps[%d]: name a node count, a share of nodes or a weight", i)
			} else if lastWeight > 0 {
				add("steps[%d]: a node step after a traffic weight step would take traffic back; put node steps first", i)
			}
			switch st.Gate {
			case GateAnalysis, GatePause, GateManual, GateNone, "":
			default:
				add("steps[%d]: unknown gate %q; use analysis, pause, manual or none", i, st.Gate)
			}
			if st.Interval < 0 {
				add("steps[%d]: interval must be positive", i)
			}
		}
	case "":
		add("kind: required; use %s", strings.Join(Kinds, ", "))
	default:
		add("kind: unknown strategy %q; use %s", s.Kind, strings.Join(Kinds, ", "))
	}
	if s.Interval < 0 || s.Interval > 24*time.Hour {
		add("interval: %v is outside 0–24h", s.Interval)
	}
	if s.MaxExtensions < NoExtensions || s.MaxExtensions > 100 {
		add("max_extensions: %d is outside 0–100", s.MaxExtensions)
	}
	if s.Sticky != "" {
		if s.Kind != Canary {
			add("sticky: stickiness applies to a canary's traffic weights, not to %s", s.Kind)
		} else if _, err := ParseSticky(s.Sticky); err != nil {
			add("sticky: %v", err)
		}
	}
	if err := s.Checks.Validate(); err != nil {
		add("%v", err)
	}
	if len(msgs) > 0 {
		return fmt.Errorf("invalid strategy: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// Plan is the steps a strategy goes through: a canary's own, a rolling update's
// batches as node steps with no gate (each waits only for its nodes to be ready), and
// all at once as a single step on every node.
func (s Spec) Plan(nodes int) []Stage {
	switch s.Kind {
	case Canary:
		return s.Steps
	case Rolling:
		batch := max(1, s.MaxUnavailable.Of(nodes)+s.MaxSurge.Of(nodes))
		var steps []Stage
		for n := batch; ; n += batch {
			steps = append(steps, Stage{Nodes: Amount{Count: min(n, nodes)}, Gate: GateNone})
			if n >= nodes {
				return steps
			}
		}
	default:
		return []Stage{{Nodes: Amount{Percent: 100}, Gate: GateNone}}
	}
}
