package policy

import (
	"fmt"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"
)

// Result is what one evaluation of one policy came to, as Observer reports it.
type Result string

const (
	ResultPass      Result = "pass"      // every validation held
	ResultViolation Result = "violation" // a validation was false
	ResultError     Result = "error"     // an expression failed; failurePolicy Fail made it a violation
	ResultIgnored   Result = "ignored"   // an expression failed; failurePolicy Ignore skipped it
	ResultSkipped   Result = "skipped"   // matchConditions were false: the policy does not apply
)

// Observer is told of every evaluation of an admission or runtime policy, on the
// caller's goroutine; it must be fast and must not block. The control plane implements
// it with Prometheus metrics named
//
//	fermion_policy_evaluations_total{policy,mode,result}       counter, every call
//	fermion_policy_violations_total{policy,mode}               counter, result "violation" or "error"
//	fermion_policy_evaluation_duration_seconds{policy}         histogram of seconds
//
// Placement constraints run once per node inside the scheduler and are not observed
// one by one; Set.ExplainPlacement counts what they exclude.
type Observer interface {
	Evaluated(policy string, mode Mode, result Result, seconds float64)
}

// Violation is one policy's objection. Error is set when the policy failed to evaluate
// and its failurePolicy Fail turned the failure into this violation.
type Violation struct {
	Policy  string
	Version int
	Mode    Mode
	Message string
	Reason  string // Forbidden, Invalid, Unauthorized, RequestEntityTooLarge
	Field   string // the expression that objected, e.g. "spec.validations[0].expression"
	Error   bool
}

// String is the line a user is shown: "policy require-signed: <message> (mode deny)".
func (v Violation) String() string {
	return "policy " + v.Policy + ": " + v.Message + " (mode " + string(v.Mode) + ")"
}

// Decision is the outcome of one admission or runtime check. Only Denials block;
// Warnings go back to the caller and Audits to the audit log, each as an event with
// policy, version and message.
type Decision struct {
	Allowed  bool
	Denials  []Violation
	Warnings []Violation
	Audits   []Violation
}

// Outcome is the strongest effect in a decision, the word case files expect.
type Outcome string

const (
	OutcomeAllow Outcome = "allow"
	OutcomeDeny  Outcome = "deny"
	OutcomeWarn  Outcome = "warn"
	OutcomeAudit Outcome = "audit"
)

// Outcome is deny if anything denied, else warn if anything warned, else audit if
// anything was audited, else allow.
func (d Decision) Outcome() Outcome {
	switch {
	case len(d.Denials) > 0:
		return OutcomeDeny
	case len(d.Warnings) > 0:
		return OutcomeWarn
	case len(d.Audits) > 0:
		return OutcomeAudit
	}
	return OutcomeAllow
}

// Violations returns denials, warnings and audits in that order.
func (d Decision) Violations() []Violation {
	out := make([]Violation, 0, len(d.Denials)+len(d.Warnings)+len(d.Audits))
	out = append(out, d.Denials...)
	out = append(out, d.Warnings...)
	return append(out, d.Audits...)
}

// String explains the decision in one line: "denied: policy …; policy …", or
// "allowed", followed by any warnings.
func (d Decision) String() string {
	var b strings.Builder
	join := func(vs []Violation) {
		for i, v := range vs {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(v.String())
		}
	}
	if len(d.Denials) > 0 {
		b.WriteString("denied: ")
		join(d.Denials)
	} else {
		b.WriteString("allowed")
	}
	if len(d.Warnings) > 0 {
		b.WriteString("; warnings: ")
		join(d.Warnings)
	}
	return b.String()
}

func (d *Decision) add(v Violation) {
	switch v.Mode {
	case ModeWarn:
		d.Warnings = append(d.Warnings, v)
	case ModeAudit:
		d.Audits = append(d.Audits, v)
	default:
		d.Denials = append(d.Denials, v)
	}
}

// Admit evaluates every admission policy of s against in, in name order. A policy in
// mode deny that objects denies; warn and audit only record. A policy whose
// matchConditions are false does not apply. An expression that fails (an error, or
// the cost limit) follows the policy's failurePolicy: Fail objects with a message
// naming the policy and the error, Ignore skips the expression.
func (s *Set) Admit(in AdmissionInput) Decision {
	if s == nil {
		return Decision{Allowed: true}
	}
	return s.decide(s.byTarget[0], &admissionVars{in: &in})
}

// RuntimeCheck evaluates every runtime policy of s against in, as Admit does. The
// agent calls it before it starts a version, so a node never runs what its own policy
// forbids even when the control plane is stale or compromised.
func (s *Set) RuntimeCheck(in RuntimeInput) Decision {
	if s == nil {
		return Decision{Allowed: true}
	}
	return s.decide(s.byTarget[2], &runtimeVars{in: &in})
}

func (s *Set) decide(cs []*compiled, act interpreter.Activation) Decision {
	d := Decision{Allowed: true}
	obs, now := s.opts.Observer, s.opts.Now
	for _, c := range cs {
		if obs == nil {
			c.evaluate(act, &d)
			continue
		}
		var start time.Time
		if now != nil {
			start = now()
		}
		res := c.evaluate(act, &d)
		var secs float64
		if now != nil {
			secs = now().Sub(start).Seconds()
		}
		obs.Evaluated(c.p.Metadata.Name, c.p.Spec.Mode, res, secs)
	}
	d.Allowed = len(d.Denials) == 0
	return d
}

// evaluate runs one policy and adds its violations to d.
func (c *compiled) evaluate(act interpreter.Activation, d *Decision) Result {
	for i := range c.match {
		m := &c.match[i]
		ok, err := evalBool(m.prg, act)
		if err != nil {
			if c.p.Spec.FailurePolicy == Ignore {
				return ResultIgnored
			}
			d.add(c.failure(m.field, err))
			return ResultError
		}
		if !ok {
			return ResultSkipped
		}
	}
	res := ResultPass
	for i := range c.validations {
		v := &c.validations[i]
		ok, err := evalBool(v.expr.prg, act)
		switch {
		case err != nil && c.p.Spec.FailurePolicy == Ignore:
			if res == ResultPass {
				res = ResultIgnored
			}
		case err != nil:
			d.add(c.failure(v.expr.field, err))
			res = ResultError
		case !ok:
			d.add(Violation{
				Policy:  c.p.Metadata.Name,
				Version: c.p.Version,
				Mode:    c.p.Spec.Mode,
				Message: v.messageFor(act),
				Reason:  v.reason,
				Field:   v.expr.field,
			})
			if res != ResultError {
				res = ResultViolation
			}
		}
	}
	return res
}

func (c *compiled) failure(field string, err error) Violation {
	return Violation{
		Policy:  c.p.Metadata.Name,
		Version: c.p.Version,
		Mode:    c.p.Spec.Mode,
		Message: fmt.Sprintf("evaluation failed (failurePolicy Fail): %s: %v", field, err),
		Reason:  "Forbidden",
		Field:   field,
		Error:   true,
	}
}

// messageFor is the message of a failed validation: messageExpression's result if it
// gives one usable line, else message, else the expression itself.
func (v *compiledValidation) messageFor(act interpreter.Activation) string {
	if v.msgExpr != nil {
		if out, _, err := v.msgExpr.prg.Eval(act); err == nil {
			if s, ok := out.(types.String); ok {
				m := strings.TrimSpace(string(s))
				if m != "" && len(m) <= maxMessageSize && !strings.ContainsAny(m, "\r\n") {
					return m
				}
			}
		}
	}
	if v.message != "" {
		return v.message
	}
	return "failed expression: " + v.expr.text
}

func evalBool(p cel.Program, act any) (bool, error) {
	out, _, err := p.Eval(act)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("result is %s, not a bool", out.Type().TypeName())
	}
	return bool(b), nil
}
