package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/policy"
)

func newPolicyCmd() *cobra.Command {
	var af apiFlags
	c := &cobra.Command{
		Use:   "policy",
		Short: "Apply, test, list and audit the CEL policies that admit and place deployments",
		Long: `Policies decide who may run what, where, with which capabilities: CEL expressions in
YAML files shaped like Kubernetes' ValidatingAdmissionPolicy (see examples/policies).
Test them locally with 'fermion policy test', stage them on the control plane with
'fermion policy apply --mode audit' (record what they would deny), then warn, then deny,
and read what they objected to with 'fermion policy violations'.`,
	}
	af.add(c)
	c.AddCommand(newPolicyApplyCmd(&af), newPolicyTestCmd(), newPolicyListCmd(&af), newPolicyViolationsCmd(&af), newPolicyDeleteCmd(&af))
	return c
}

// policyFile is one policy file read from disk.
type policyFile struct {
	path string
	data []byte
	p    *policy.Policy
}

// expandYAML lists the YAML files named by args: files as given, directories by their
// *.yaml and *.yml files (not recursively), sorted. skipCases leaves out *.cases.yaml,
// which may sit beside the policies they test.
func expandYAML(args []string, skipCases bool, what string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", what, a, err)
		}
		if !st.IsDir() {
			out = append(out, a)
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", what, a, err)
		}
		n := 0
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
				continue
			}
			if skipCases && (strings.HasSuffix(name, ".cases.yaml") || strings.HasSuffix(name, ".cases.yml")) {
				continue
			}
			out = append(out, filepath.Join(a, name))
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("%s %s: the directory holds no .yaml or .yml files", what, a)
		}
	}
	return out, nil
}

// readPolicies reads and parses policy files (mode "" keeps each file's). Every file is
// read before any error is returned, so one run reports every broken file.
func readPolicies(args []string, mode policy.Mode) ([]policyFile, error) {
	paths, err := expandYAML(args, true, "policy")
	if err != nil {
		return nil, err
	}
	var files []policyFile
	var errs []error
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p, err := policy.ParseApplied(path, data, mode, 0)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		files = append(files, policyFile{path: path, data: data, p: p})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return files, nil
}

// compilePolicies compiles the files as one set: a CEL mistake, or the same policy
// given twice (in conflicting modes, say), is an error naming the files.
func compilePolicies(files []policyFile) (*policy.Set, error) {
	ps := make([]*policy.Policy, len(files))
	for i, f := range files {
		ps[i] = f.p
	}
	return policy.NewSet(policy.Options{}, ps...)
}

func newPolicyApplyCmd(af *apiFlags) *cobra.Command {
	var mode string
	var o outputFlag
	c := &cobra.Command{
		Use:   "apply FILE|DIR...",
		Short: "Apply policy files to the control plane (admin), each as a new version",
		Long: `Apply sends each policy file (a directory: its .yaml and .yml files, except *.cases.yaml)
to the control plane, which compiles it and puts it in force as a new version. Every file
is parsed and compiled here first: if any has a mistake, or two name the same policy,
nothing is applied. A file the control plane refuses leaves the version in force as it was.

--mode overrides the files' spec.mode, which is how a policy is staged: audit records what
it would deny, warn shows deployers a warning, deny enforces it.`,
		Example: `  fermion policy apply examples/policies/require-signed.yaml --mode audit
  fermion policy violations --since 24h
  fermion policy apply examples/policies/require-signed.yaml --mode deny`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("give at least one policy file or directory\nusage: %s", c.UseLine())}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if mode != "" && !slices.Contains(v1.PolicyModes, mode) {
				return usageError{fmt.Errorf("--mode %q: want one of %s", mode, strings.Join(v1.PolicyModes, ", "))}
			}
			files, err := readPolicies(args, policy.Mode(mode))
			if err != nil {
				return fmt.Errorf("%w\nnothing was applied", err)
			}
			if _, err := compilePolicies(files); err != nil {
				return fmt.Errorf("%w\nnothing was applied", err)
			}
			ctx := c.Context()
			cl, err := af.client()
			if err != nil {
				return err
			}
			w, errw := c.OutOrStdout(), c.ErrOrStderr()
			var applied []v1.Policy
			for i, f := range files {
				prev := 0
				if cur, err := cl.GetPolicy(ctx, f.p.Name()); err == nil {
					prev = cur.Version
				} else if !client.IsCode(err, v1.CodeNotFound) {
					return af.explain(ctx, err)
				}
				p, created, err := cl.ApplyPolicy(ctx, f.p.Name(), v1.PolicyApply{Source: string(f.data), Mode: mode, File: f.path})
				if err != nil {
					err = af.explain(ctx, err)
					if i > 0 {
						var done []string
						for _, a := range applied {
							done = append(done, fmt.Sprintf("%s (version %d)", a.Name, a.Version))
						}
						err = fmt.Errorf("%w\napplied before this failed: %s; not applied: %s and the files after it", err, strings.Join(done, ", "), f.path)
					}
					return err
				}
				applied = append(applied, *p)
				if o.json() {
					continue
				}
				verb := "applied"
				switch {
				case created:
					verb = "created"
				case p.Version == prev:
					verb = "unchanged"
				}
				fmt.Fprintf(w, "policy %s version %d %s: %s, mode %s\n", p.Name, p.Version, verb, p.Target, p.Mode)
				for _, warning := range p.Warnings {
					fmt.Fprintf(errw, "warning: %s\n", warning)
				}
				if p.Error != "" {
					fmt.Fprintf(errw, "warning: %s\n", p.Error)
				}
			}
			if o.json() {
				return o.print(w, v1.PolicyList{Policies: applied})
			}
			return nil
		},
	}
	c.Flags().StringVar(&mode, "mode", "", "apply in this mode instead of the files' spec.mode: audit, warn or deny")
	o.add(c)
	return c
}

func newPolicyTestCmd() *cobra.Command {
	var cases []string
	c := &cobra.Command{
		Use:   "test FILE|DIR... --cases FILE|DIR...",
		Short: "Run case files against policy files, locally, and print a table of the results",
		Long: `Test compiles the policy files (a directory: its .yaml and .yml files, except
*.cases.yaml) and evaluates every case of the case files against them: an input document
and the decision expected (allow, deny, warn or audit). It prints one row per case and
exits 1 if any case fails. It needs no control plane. Lint findings (an expression that is
always true, a matchCondition that is always false) are printed as warnings.`,
		Example: `  fermion policy test examples/policies --cases examples/policies/cases`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("give at least one policy file or directory\nusage: %s", c.UseLine())}
			}
			if len(cases) == 0 {
				return usageError{fmt.Errorf("--cases is required: the case files or directories to run\nusage: %s", c.UseLine())}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			files, err := readPolicies(args, "")
			if err != nil {
				return err
			}
			set, err := compilePolicies(files)
			if err != nil {
				return err
			}
			errw := c.ErrOrStderr()
			for _, f := range files {
				findings, err := policy.Lint(f.p)
				if err != nil {
					return err
				}
				for _, fd := range findings {
					fmt.Fprintf(errw, "warning: %s\n", fd)
				}
			}
			paths, err := expandYAML(cases, false, "cases")
			if err != nil {
				return usageError{err}
			}
			var all []policy.Case
			var errs []error
			for _, path := range paths {
				data, err := os.ReadFile(path)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				cs, err := policy.ParseCases(path, data)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				all = append(all, cs...)
			}
			if len(errs) > 0 {
				return errors.Join(errs...)
			}
			results := policy.RunCases(set, all)
			if err := policy.WriteCaseTable(c.OutOrStdout(), results); err != nil {
				return err
			}
			if n := policy.Failed(results); n > 0 {
				return fmt.Errorf("%d of %s failed", n, v1.Count(len(results), "case"))
			}
			return nil
		},
	}
	c.Flags().StringArrayVar(&cases, "cases", nil, "case file or directory of case files (repeatable; required)")
	return c
}

func newPolicyListCmd(af *apiFlags) *cobra.Command {
	return listVerb(af, &cobra.Command{
		Use:   "list",
		Short: "List the policies on the control plane",
	}, func(ctx context.Context, cl *client.Client) (*v1.PolicyList, error) { return cl.ListPolicies(ctx) },
		func(tw io.Writer, l *v1.PolicyList) {
			fmt.Fprintln(tw, "NAME\tVERSION\tTARGET\tMODE\tAPPLIED\tBY\tSTATUS")
			for _, p := range l.Policies {
				status := "in force"
				if p.Error != "" {
					status = "not compiled: " + strings.Join(strings.Fields(p.Error), " ")
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Version, p.Target, p.Mode, formatTime(p.Applied), or(p.AppliedBy), status)
			}
		})
}

func newPolicyViolationsCmd(af *apiFlags) *cobra.Command {
	var o outputFlag
	var since, name, deployment string
	var limit int
	c := &cobra.Command{
		Use:   "violations",
		Short: "Show what policies denied, warned about and audited",
		Long: `Violations prints one line per policy decision that objected, oldest first: time,
policy and version, mode, deployment, the token that asked, and the policy's message. A
policy in mode audit shows here what it would deny before it is enforced.`,
		Example: `  fermion policy violations --since 1h
  fermion policy violations --policy require-signed -o json`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			f := client.ViolationFilter{Policy: name, Deployment: deployment, Limit: limit}
			if since != "" {
				if d, err := time.ParseDuration(since); err == nil && d > 0 {
					f.Since = d
				} else if t, err := time.Parse(time.RFC3339, since); err == nil {
					f.SinceTime = t
				} else {
					return usageError{fmt.Errorf("--since %q: want a duration such as 1h or an RFC 3339 time such as 2025-03-01T12:00:00Z", since)}
				}
			}
			if limit < 1 || limit > 10000 {
				return usageError{fmt.Errorf("--limit %d: want 1 to 10000", limit)}
			}
			ctx := c.Context()
			cl, err := af.client()
			if err != nil {
				return err
			}
			l, err := cl.PolicyViolations(ctx, f)
			if err != nil {
				return af.explain(ctx, err)
			}
			if o.json() {
				return o.print(c.OutOrStdout(), l)
			}
			printViolations(c.OutOrStdout(), l.Events)
			return nil
		},
	}
	c.Flags().StringVar(&since, "since", "", "only violations newer than this (1h) or since this RFC 3339 time")
	c.Flags().StringVar(&name, "policy", "", "only this policy's violations")
	c.Flags().StringVar(&deployment, "deployment", "", "only violations about this deployment")
	c.Flags().IntVar(&limit, "limit", 100, "at most this many (the newest)")
	o.add(c)
	return c
}

func printViolations(w io.Writer, evs []v1.Event) {
	tw := newTable(w)
	fmt.Fprintln(tw, "TIME\tPOLICY\tMODE\tTARGET\tDEPLOYMENT\tSUBJECT\tMESSAGE")
	for _, e := range evs {
		v := e.Violation
		if v == nil {
			v = &v1.PolicyViolation{}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", formatTime(e.Time), or(fmt.Sprintf("%s@%d", v.Policy, v.Version)), or(v.Mode), or(v.Target),
			or(e.Deployment), or(v.Subject), strings.Join(strings.Fields(e.Message), " "))
	}
	tw.Flush()
}

func newPolicyDeleteCmd(af *apiFlags) *cobra.Command {
	return af.nameVerb(&cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a policy (admin); it stops applying at once",
	}, func(ctx context.Context, cl *client.Client, name string) (string, error) {
		return "deleted policy " + name, cl.DeletePolicy(ctx, name)
	})
}
