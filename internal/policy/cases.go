package policy

import (
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"

	v1 "fermion.dev/fermion/api/v1"
)

// Case is one test of a policy set: an input document and the outcome expected.
//
// A case file is YAML:
//
//	cases:
//	  - name: unsigned artifact is denied
//	    target: admission          # admission | placement | runtime
//	    policy: require-signed     # optional: evaluate only this policy
//	    input:                     # admission: {artifact, manifest, caller}
//	      artifact: {digest: "sha256:…", signed: false}
//	    expect: deny               # allow | deny | warn | audit
//	    messageContains: no signature   # optional
//
// A placement case's input is {app, node} and its outcome is that of the node's
// constraints (allow: eligible); a runtime case's input is {artifact, node}. Fields
// not given are zero: empty strings, lists and maps, false, 0.
type Case struct {
	Name            string
	Target          Target
	Policy          string
	Expect          Outcome
	MessageContains string

	// Exactly one input is set, as Target says.
	Admission *AdmissionInput
	Placement *PlacementCase
	Runtime   *RuntimeInput

	File string
	Line int
}

// PlacementCase is the input of a placement case.
type PlacementCase struct {
	App  AppInput  `json:"app"`
	Node NodeInput `json:"node"`
}

type caseFile struct {
	Cases []caseDoc `json:"cases"`
}

type caseDoc struct {
	Name            string  `json:"name"`
	Target          Target  `json:"target"`
	Policy          string  `json:"policy"`
	Input           *ynode  `json:"input"`
	Expect          Outcome `json:"expect"`
	MessageContains string  `json:"messageContains"`
}

var ynodeType = reflect.TypeFor[*ynode]()

// ParseCases parses a case file. name is used only in messages. On failure the error
// is an *Error listing every problem with file, line and field.
func ParseCases(name string, data []byte) ([]Case, error) {
	root, prob := parseYAML(name, data, MaxCaseFileSize)
	if prob != nil {
		return nil, &Error{Problems: []Problem{*prob}}
	}
	d := &decoder{file: name}
	var f caseFile
	if root.kind != yMap {
		d.problem(root, "", "a case file must be a mapping with a list of cases, not %s", root.describe())
		return nil, &Error{Problems: d.probs}
	}
	d.decode(root, "", reflect.ValueOf(&f).Elem())
	if err := d.err(); err != nil {
		return nil, err
	}
	if len(f.Cases) == 0 {
		d.problem(root, "cases", "required: a list of cases")
	}
	casesNode := root.get("cases")
	seen := map[string]string{}
	var out []Case
	for i, cd := range f.Cases {
		field := indexField("cases", i)
		at := lookup(root, field)
		if at == nil {
			at = casesNode
		}
		c := Case{Name: cd.Name, Target: cd.Target, Policy: cd.Policy, Expect: cd.Expect, MessageContains: cd.MessageContains, File: name, Line: at.line}
		if c.Name == "" {
			d.problem(at, field+".name", "required: say what the case shows")
		} else if prev, dup := seen[c.Name]; dup {
			d.problem(at, field+".name", "%s is also the name of %s; names must be unique", quoteShort(c.Name), prev)
		} else {
			seen[c.Name] = field
		}
		switch c.Expect {
		case OutcomeAllow, OutcomeDeny, OutcomeWarn, OutcomeAudit:
		case "":
			d.problem(at, field+".expect", "required: allow, deny, warn or audit")
		default:
			d.problem(lookup(root, field+".expect"), field+".expect", "is %s; use allow, deny, warn or audit", quoteShort(string(c.Expect)))
		}
		if cd.Input == nil || cd.Input.kind != yMap {
			d.problem(at, field+".input", "required: a mapping with the input document")
			continue
		}
		in := field + ".input"
		switch c.Target {
		case TargetAdmission:
			c.Admission = new(AdmissionInput)
			d.decode(cd.Input, in, reflect.ValueOf(c.Admission).Elem())
		case TargetPlacement:
			c.Placement = new(PlacementCase)
			d.decode(cd.Input, in, reflect.ValueOf(c.Placement).Elem())
		case TargetRuntime:
			c.Runtime = new(RuntimeInput)
			d.decode(cd.Input, in, reflect.ValueOf(c.Runtime).Elem())
		case "":
			d.problem(at, field+".target", "required: admission, placement or runtime")
		default:
			d.problem(lookup(root, field+".target"), field+".target", "is %s; use admission, placement or runtime", quoteShort(string(c.Target)))
		}
		out = append(out, c)
	}
	if err := d.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// CaseResult is how one case went.
type CaseResult struct {
	Case     Case
	Got      Outcome
	Decision Decision
	Pass     bool
	Detail   string // why it failed, or what the policies said
}

// RunCases evaluates every case against set (or, for a case naming a policy, against
// that policy alone) and compares the outcome with the expected one.
func RunCases(set *Set, cases []Case) []CaseResult {
	out := make([]CaseResult, 0, len(cases))
	for _, c := range cases {
		out = append(out, runCase(set, c))
	}
	return out
}

func runCase(set *Set, c Case) CaseResult {
	r := CaseResult{Case: c}
	s := set
	if c.Policy != "" {
		var ok bool
		if s, ok = set.only(c.Policy); !ok {
			r.Detail = "policy " + c.Policy + " is not in the set"
			return r
		}
		if t := s.all[0].p.Spec.Target; t != c.Target {
			r.Detail = fmt.Sprintf("policy %s is %s %s policy; the case is %s", c.Policy, article(string(t)), t, c.Target)
			return r
		}
	}
	switch {
	case c.Admission != nil:
		r.Decision = s.Admit(*c.Admission)
	case c.Placement != nil:
		r.Decision = s.CheckNode(c.Placement.App, c.Placement.Node)
	case c.Runtime != nil:
		r.Decision = s.RuntimeCheck(*c.Runtime)
	default:
		r.Detail = "case has no input"
		return r
	}
	r.Got = r.Decision.Outcome()
	r.Pass = r.Got == c.Expect
	vs := r.Decision.Violations()
	msgs := make([]string, len(vs))
	for i, v := range vs {
		msgs[i] = v.String()
	}
	r.Detail = strings.Join(msgs, "; ")
	if r.Pass && c.MessageContains != "" && !strings.Contains(r.Detail, c.MessageContains) {
		r.Pass = false
		r.Detail = fmt.Sprintf("no message contains %q; got: %s", c.MessageContains, r.Detail)
	}
	return r
}

// Failed counts the results that did not pass.
func Failed(results []CaseResult) int {
	n := 0
	for _, r := range results {
		if !r.Pass {
			n++
		}
	}
	return n
}

// WriteCaseTable prints results as a table, one case per row, then a summary line:
//
//	RESULT  CASE                        TARGET     EXPECT  GOT    DETAIL
//	ok      unsigned artifact is denied admission  deny    deny   policy require-signed: …
//	FAIL    …
//	12 cases, 1 failed
func WriteCaseTable(w io.Writer, results []CaseResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tCASE\tTARGET\tEXPECT\tGOT\tDETAIL")
	for _, r := range results {
		res, got := "ok", string(r.Got)
		if !r.Pass {
			res = "FAIL"
		}
		if got == "" {
			got = "-"
		}
		detail := r.Detail
		if !r.Pass {
			loc := r.Case.File
			if r.Case.Line > 0 {
				loc += ":" + strconv.Itoa(r.Case.Line)
			}
			detail = loc + ": " + detail
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", res, oneLine(r.Case.Name), r.Case.Target, r.Case.Expect, got, oneLine(detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%s, %d failed\n", v1.Count(len(results), "case"), Failed(results))
	return err
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 160 {
		s = string(r[:159]) + "…"
	}
	return s
}
