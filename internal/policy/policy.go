package policy

import (
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// APIVersion and Kind are what every policy file declares.
const (
	APIVersion = "fermion.dev/v1"
	Kind       = "Policy"
)

// Target says what a policy decides.
type Target string

const (
	TargetAdmission Target = "admission" // may this version be deployed (at deploy and update)
	TargetPlacement Target = "placement" // on which nodes may / should it run
	TargetRuntime   Target = "runtime"   // may this node start it (checked by the agent)
)

// Mode says what a violation does. Staging a policy means applying it as audit, then
// warn, then deny, each as a new version.
type Mode string

const (
	ModeDeny  Mode = "deny"  // the request is refused (placement: the node is excluded)
	ModeWarn  Mode = "warn"  // allowed; the caller is shown a warning
	ModeAudit Mode = "audit" // allowed; recorded only
)

// FailurePolicy says what an evaluation error does: Fail treats it as a violation
// (under the policy's mode), Ignore skips the policy.
type FailurePolicy string

const (
	Fail   FailurePolicy = "Fail"
	Ignore FailurePolicy = "Ignore"
)

// Reasons a validation may give, as Kubernetes' ValidatingAdmissionPolicy names them.
var validReasons = []string{"Forbidden", "Invalid", "Unauthorized", "RequestEntityTooLarge"}

// Limits on a policy's shape, so that a set of policies stays cheap to evaluate.
const (
	maxExpressions      = 64      // per list: matchConditions, validations, constraints, preferences
	maxExpressionSize   = 8 << 10 // bytes of one expression
	maxMessageSize      = 1 << 10
	maxPreferenceWeight = 100
)

// Policy is a parsed policy file. Its fields mirror the YAML; ParseFile fills in the
// defaults (failurePolicy Fail, mode deny), so a *Policy from it is ready for
// Set.With, which compiles it. A Policy is not modified by this package.
type Policy struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`

	// Version is the policy's revision in the store, set by the control plane when it
	// applies the file; 0 for a policy read from a file and not yet applied.
	Version int `json:"-"`
	// File is the name ParseFile was given, used in messages.
	File string `json:"-"`

	pos map[string]srcPos // field path → where its value is written
}

// Metadata identifies a policy.
type Metadata struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Spec is what a policy checks and how.
type Spec struct {
	Target        Target        `json:"target"`
	FailurePolicy FailurePolicy `json:"failurePolicy,omitempty"`
	Mode          Mode          `json:"mode,omitempty"`
	// MatchConditions must all be true for the policy to apply at all. For placement
	// they see only app, and are evaluated once per placement.
	MatchConditions []MatchCondition `json:"matchConditions,omitempty"`
	// Validations (admission and runtime) must all be true; each false one is a
	// violation.
	Validations []Validation `json:"validations,omitempty"`
	// Constraints (placement) must all be true for a node to be eligible.
	Constraints []Constraint `json:"constraints,omitempty"`
	// Preferences (placement) score eligible nodes.
	Preferences []Preference `json:"preferences,omitempty"`
}

// MatchCondition is a named boolean expression.
type MatchCondition struct {
	Name       string `json:"name"`
	Expression string `json:"expression"`
}

// Validation is a boolean expression that must hold. When it does not, the violation
// says Message, or the string MessageExpression evaluates to (falling back to Message
// if that fails), or "failed expression: …".
type Validation struct {
	Expression        string `json:"expression"`
	Message           string `json:"message,omitempty"`
	MessageExpression string `json:"messageExpression,omitempty"`
	Reason            string `json:"reason,omitempty"` // Forbidden (default), Invalid, Unauthorized, RequestEntityTooLarge
}

// Constraint is a hard placement rule: a boolean over node and app. Message is the
// reason given for every node it excludes; keep it per rule, not per node.
type Constraint struct {
	Name       string `json:"name"`
	Expression string `json:"expression"`
	Message    string `json:"message,omitempty"`
}

// Preference is a soft placement rule: its expression gives a score, a number in
// [0,1] (clamped) or a bool (1 or 0), weighed by Weight (non-zero, in [-100,100];
// negative steers away).
type Preference struct {
	Name       string  `json:"name"`
	Weight     float64 `json:"weight"`
	Expression string  `json:"expression"`
}

// ParseFile parses and validates one policy file. name is used only in messages. On
// failure the error is an *Error listing every problem found, each with the file,
// line, column and field path. Expressions are not compiled here: Set.With does that.
func ParseFile(name string, data []byte) (*Policy, error) {
	root, prob := parseYAML(name, data, MaxPolicySize)
	if prob != nil {
		return nil, &Error{Problems: []Problem{*prob}}
	}
	p := &Policy{File: name, pos: map[string]srcPos{}}
	d := &decoder{file: name, pos: p.pos}
	if root.kind != yMap {
		d.problem(root, "", "a policy file must be a mapping with apiVersion, kind, metadata and spec, not %s", root.describe())
		return nil, &Error{Problems: d.probs}
	}
	d.decode(root, "", reflectValue(p))
	if len(d.probs) == 0 {
		p.validate(d, root)
	}
	if err := d.err(); err != nil {
		return nil, err
	}
	return p, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// validate checks what decoding cannot and applies defaults. root locates fields; it
// is nil for a policy built in Go, whose problems then carry no position.
func (p *Policy) validate(d *decoder, root *ynode) {
	at := func(field string) *ynode {
		if root == nil {
			return nil
		}
		return lookup(root, field)
	}
	bad := func(field, format string, args ...any) {
		n := at(field)
		if n == nil {
			// Report an absent field on the line of its parent, which is where it
			// belongs; the parent's column would mislead.
			parent := field
			for n == nil && parent != "" {
				parent = parentField(parent)
				n = at(parent)
			}
			if n != nil {
				n = &ynode{line: n.line}
			}
		}
		d.problem(n, field, format, args...)
	}
	if p.APIVersion != APIVersion {
		if p.APIVersion == "" {
			bad("apiVersion", "required; write apiVersion: %s", APIVersion)
		} else {
			bad("apiVersion", "is %s; the only supported version is %s", quoteShort(p.APIVersion), APIVersion)
		}
	}
	if p.Kind != Kind {
		bad("kind", "is %s; write kind: %s", quoteShort(p.Kind), Kind)
	}
	switch {
	case p.Metadata.Name == "":
		bad("metadata.name", "required: a name such as require-signed")
	case len(p.Metadata.Name) > 63 || !nameRE.MatchString(p.Metadata.Name):
		bad("metadata.name", "%s is not a valid name: use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit", quoteShort(p.Metadata.Name))
	}
	s := &p.Spec
	switch s.Target {
	case TargetAdmission, TargetPlacement, TargetRuntime:
	case "":
		bad("spec.target", "required: admission, placement or runtime")
	default:
		bad("spec.target", "is %s; use admission, placement or runtime", quoteShort(string(s.Target)))
	}
	switch s.FailurePolicy {
	case "":
		s.FailurePolicy = Fail
	case Fail, Ignore:
	default:
		hint := ""
		if strings.EqualFold(string(s.FailurePolicy), "fail") || strings.EqualFold(string(s.FailurePolicy), "ignore") {
			hint = " (capitalised, as in Kubernetes)"
		}
		bad("spec.failurePolicy", "is %s; use Fail or Ignore%s", quoteShort(string(s.FailurePolicy)), hint)
	}
	switch s.Mode {
	case "":
		s.Mode = ModeDeny
	case ModeDeny, ModeWarn, ModeAudit:
	default:
		bad("spec.mode", "is %s; use deny, warn or audit", quoteShort(string(s.Mode)))
	}
	checkExpr := func(field, expr string) {
		switch {
		case strings.TrimSpace(expr) == "":
			bad(field, "required: a CEL expression")
		case len(expr) > maxExpressionSize:
			bad(field, "is %d bytes; an expression may be at most %d", len(expr), maxExpressionSize)
		}
	}
	checkLen := func(field string, n int) {
		if n > maxExpressions {
			bad(field, "has %d entries; at most %d are allowed", n, maxExpressions)
		}
	}
	names := func(field string, n int, name func(int) string) {
		seen := map[string]int{}
		for i := range n {
			f := indexField(field, i) + ".name"
			switch nm := name(i); {
			case nm == "":
				bad(f, "required: a short name such as eu-only")
			case len(nm) > 63:
				bad(f, "is longer than 63 characters")
			default:
				if j, dup := seen[nm]; dup {
					bad(f, "%s is also the name of %s; names must be unique", quoteShort(nm), indexField(field, j))
				}
				seen[nm] = i
			}
		}
	}
	checkLen("spec.matchConditions", len(s.MatchConditions))
	names("spec.matchConditions", len(s.MatchConditions), func(i int) string { return s.MatchConditions[i].Name })
	for i, m := range s.MatchConditions {
		checkExpr(indexField("spec.matchConditions", i)+".expression", m.Expression)
	}
	placement := s.Target == TargetPlacement
	if placement {
		if len(s.Validations) > 0 {
			bad("spec.validations", "a placement policy has constraints and preferences, not validations")
		}
		if len(s.Constraints)+len(s.Preferences) == 0 && s.Target != "" {
			bad("spec", "a placement policy needs at least one entry in constraints or preferences")
		}
	} else if s.Target != "" {
		if len(s.Validations) == 0 {
			bad("spec.validations", "required: %s %s policy needs at least one validation", article(string(s.Target)), s.Target)
		}
		if len(s.Constraints) > 0 {
			bad("spec.constraints", "only a placement policy has constraints; this one is %s", s.Target)
		}
		if len(s.Preferences) > 0 {
			bad("spec.preferences", "only a placement policy has preferences; this one is %s", s.Target)
		}
	}
	checkLen("spec.validations", len(s.Validations))
	for i := range s.Validations {
		v := &s.Validations[i]
		f := indexField("spec.validations", i)
		checkExpr(f+".expression", v.Expression)
		if len(v.Message) > maxMessageSize {
			bad(f+".message", "is %d bytes; a message may be at most %d", len(v.Message), maxMessageSize)
		}
		if strings.ContainsAny(v.Message, "\r\n") {
			bad(f+".message", "must be one line; use messageExpression for computed text")
		}
		if v.MessageExpression != "" {
			checkExpr(f+".messageExpression", v.MessageExpression)
		}
		switch {
		case v.Reason == "":
			v.Reason = "Forbidden"
		case !slices.Contains(validReasons, v.Reason):
			bad(f+".reason", "is %s; use one of %s", quoteShort(v.Reason), strings.Join(validReasons, ", "))
		}
	}
	checkLen("spec.constraints", len(s.Constraints))
	names("spec.constraints", len(s.Constraints), func(i int) string { return s.Constraints[i].Name })
	for i, c := range s.Constraints {
		f := indexField("spec.constraints", i)
		checkExpr(f+".expression", c.Expression)
		if len(c.Message) > maxMessageSize || strings.ContainsAny(c.Message, "\r\n") {
			bad(f+".message", "must be one line of at most %d bytes", maxMessageSize)
		}
	}
	checkLen("spec.preferences", len(s.Preferences))
	names("spec.preferences", len(s.Preferences), func(i int) string { return s.Preferences[i].Name })
	for i, pr := range s.Preferences {
		f := indexField("spec.preferences", i)
		checkExpr(f+".expression", pr.Expression)
		if pr.Weight == 0 || math.IsNaN(pr.Weight) || math.Abs(pr.Weight) > maxPreferenceWeight {
			bad(f+".weight", "required: a non-zero number between -%d and %d", maxPreferenceWeight, maxPreferenceWeight)
		}
	}
}

// lookup finds the node of a field path as decoder builds them ("spec.validations[0].expression").
func lookup(root *ynode, field string) *ynode {
	n := root
	for field != "" && n != nil {
		var seg string
		if i := strings.IndexAny(field, ".["); i >= 0 {
			if field[i] == '[' && i == 0 {
				j := strings.IndexByte(field, ']')
				if j < 0 {
					return nil
				}
				idx, err := strconv.Atoi(field[1:j])
				if err != nil || n.kind != ySeq || idx >= len(n.items) {
					return nil
				}
				n = n.items[idx]
				field = strings.TrimPrefix(field[j+1:], ".")
				continue
			}
			seg, field = field[:i], strings.TrimPrefix(field[i:], ".")
		} else {
			seg, field = field, ""
		}
		if n.kind != yMap {
			return nil
		}
		n = n.get(seg)
	}
	return n
}

func parentField(f string) string {
	i := strings.LastIndexAny(f, ".[")
	if i < 0 {
		return ""
	}
	return f[:i]
}

// Name is the policy's metadata.name.
func (p *Policy) Name() string { return p.Metadata.Name }

// WithMode returns a copy of p in mode m, as `fermion policy apply --mode` applies it.
func (p *Policy) WithMode(m Mode) *Policy {
	c := p.clone()
	c.Spec.Mode = m
	return c
}

// WithVersion returns a copy of p at version v, as the store numbers it.
func (p *Policy) WithVersion(v int) *Policy {
	c := p.clone()
	c.Version = v
	return c
}

// clone copies p deeply enough that the copy shares nothing mutable with p.
func (p *Policy) clone() *Policy {
	c := *p
	c.Metadata.Labels = maps.Clone(p.Metadata.Labels)
	c.Metadata.Annotations = maps.Clone(p.Metadata.Annotations)
	c.Spec.MatchConditions = slices.Clone(p.Spec.MatchConditions)
	c.Spec.Validations = slices.Clone(p.Spec.Validations)
	c.Spec.Constraints = slices.Clone(p.Spec.Constraints)
	c.Spec.Preferences = slices.Clone(p.Spec.Preferences)
	c.pos = maps.Clone(p.pos)
	return &c
}

// where names a field of p for messages: "file:line:col: field" when known.
func (p *Policy) where(field string) (file string, line, col int) {
	if sp, ok := p.pos[field]; ok {
		return p.File, sp.line, sp.col
	}
	return p.File, 0, 0
}

func (p *Policy) String() string {
	return fmt.Sprintf("%s (v%d, %s, %s)", p.Metadata.Name, p.Version, p.Spec.Target, p.Spec.Mode)
}

func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}
