package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
)

// The SLO verbs that talk to the control plane (issue 14): apply, list, status,
// delete, and the top-level alerts verb. validate and rules (slo.go) need no server.

// sloRemoteCmds adds the control-plane verbs to the slo command.
func sloRemoteCmds(c *cobra.Command) {
	var af apiFlags
	af.add(c)
	c.AddCommand(newSLOApplyCmd(&af), newSLOListCmd(&af), newSLOStatusCmd(&af), newSLODeleteCmd(&af))
}

func newSLOApplyCmd(af *apiFlags) *cobra.Command {
	var files []string
	var o outputFlag
	c := &cobra.Command{
		Use:   "apply -f FILE...",
		Short: "Apply SLO files to the control plane (deployer), each SLO as a new version when it changed",
		Long: `Apply sends each SLO file (one SLO per YAML document; a directory: its .yaml and .yml
files) to the control plane, which validates and stores every SLO in it. Every file is
checked here first: if any has a mistake, nothing is applied. An SLO whose app or selector
matches no deployment is stored, with a warning.`,
		Example: `  fermion slo apply -f slos/hello.yaml
  fermion slo status hello-availability`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if len(files) == 0 {
				return usageError{fmt.Errorf("give at least one SLO file with -f\nusage: %s", c.UseLine())}
			}
			read, err := readSLOs(files)
			if err != nil {
				return fmt.Errorf("%w\nnothing was applied", err)
			}
			ctx := c.Context()
			cl, err := af.client()
			if err != nil {
				return err
			}
			w, errw := c.OutOrStdout(), c.ErrOrStderr()
			var all []v1.SLO
			for i, f := range read {
				data, err := os.ReadFile(f.path)
				if err != nil {
					return fmt.Errorf("read SLO file: %w", err)
				}
				l, _, err := cl.ApplySLOs(ctx, v1.SLOApply{File: f.path, Source: string(data)})
				if err != nil {
					err = af.explain(ctx, err)
					if i > 0 {
						err = fmt.Errorf("%w\napplied before this failed: the files before %s", err, f.path)
					}
					return err
				}
				all = append(all, l.SLOs...)
			}
			if o.json() {
				return o.print(w, v1.SLOList{SLOs: all})
			}
			for _, s := range all {
				fmt.Fprintf(w, "SLO %s version %d: %s %s%% over %s, scope %s\n", s.Name, s.Version, s.SLI, s.Objective, s.Window, s.Scope)
				for _, m := range s.Warnings {
					fmt.Fprintf(errw, "warning: SLO %s: %s\n", s.Name, m)
				}
			}
			return nil
		},
	}
	c.Flags().StringArrayVarP(&files, "file", "f", nil, "SLO file or directory (repeatable)")
	o.add(c)
	return c
}

func newSLOListCmd(af *apiFlags) *cobra.Command {
	return listVerb(af, &cobra.Command{
		Use:   "list",
		Short: "List the SLOs on the control plane",
	}, func(ctx context.Context, cl *client.Client) (*v1.SLOList, error) { return cl.ListSLOs(ctx) },
		func(tw io.Writer, l *v1.SLOList) {
			fmt.Fprintln(tw, "NAME\tVERSION\tAPP\tSLI\tOBJECTIVE\tWINDOW\tSCOPE\tOWNER\tWARNINGS")
			for _, s := range l.SLOs {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s%%\t%s\t%s\t%s\t%s\n", s.Name, s.Version, sloTarget(s), s.SLI, s.Objective, s.Window, s.Scope, or(s.Owner), or(strings.Join(s.Warnings, "; ")))
			}
		})
}

// sloTarget is the app, or the selector as k=v pairs.
func sloTarget(s v1.SLO) string {
	if s.App != "" {
		return s.App
	}
	return "{" + formatLabels(s.Selector) + "}"
}

func newSLOStatusCmd(af *apiFlags) *cobra.Command {
	var o outputFlag
	c := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show SLOs' error budgets, burn rates and alerts per series",
		Long: `Status prints, for each SLO (or the one named) and each series it covers (an app's
version in one scope member: the fleet, a region, a node): good and total requests over
the window, the error budget remaining, the burn rate over each alert tier's long and
short windows, and the alert phase.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			ctx := c.Context()
			cl, err := af.client()
			if err != nil {
				return err
			}
			var names []string
			if len(args) == 1 {
				names = args
			} else {
				l, err := cl.ListSLOs(ctx)
				if err != nil {
					return af.explain(ctx, err)
				}
				for _, s := range l.SLOs {
					names = append(names, s.Name)
				}
			}
			var out []v1.SLOStatus
			for _, n := range names {
				st, err := cl.SLOStatus(ctx, n)
				if err != nil {
					return af.explain(ctx, err)
				}
				out = append(out, *st)
			}
			w := c.OutOrStdout()
			if o.json() {
				return o.print(w, out)
			}
			if len(out) == 0 {
				fmt.Fprintln(w, "no SLOs; apply one with fermion slo apply -f FILE")
			}
			for i, st := range out {
				if i > 0 {
					fmt.Fprintln(w)
				}
				printSLOStatus(w, st)
			}
			return nil
		},
	}
	o.add(c)
	return c
}

func printSLOStatus(w io.Writer, st v1.SLOStatus) {
	s := st.SLO
	fmt.Fprintf(w, "SLO %s (version %d): %s of %s ≥ %s%% over %s, scope %s\n", s.Name, s.Version, s.SLI, sloTarget(s), s.Objective, s.Window, s.Scope)
	for _, m := range s.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", m)
	}
	if len(st.Series) == 0 {
		fmt.Fprintln(w, "  no SLIs in the window yet")
		return
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "  APP\tVERSION\tSCOPE\tGOOD/TOTAL\tBUDGET LEFT\tBURN (long/short)\tALERT")
	for _, se := range st.Series {
		var burns []string
		for _, b := range se.Burn {
			burns = append(burns, fmt.Sprintf("%s %s/%s %.1f×/%.1f×", b.Severity, b.Long, b.Short, b.LongRate, b.ShortRate))
		}
		alert := "-"
		for _, a := range se.Alerts {
			if alert == "-" {
				alert = ""
			} else {
				alert += ", "
			}
			alert += a.Severity + " " + a.Phase
			if a.Expected {
				alert += " (expected)"
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d/%d\t%.1f%%\t%s\t%s\n", se.App, se.Version, se.Scope, se.Good, se.Total, 100*se.BudgetRemaining, strings.Join(burns, "; "), alert)
	}
	tw.Flush()
}

func newSLODeleteCmd(af *apiFlags) *cobra.Command {
	return af.nameVerb(&cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an SLO (deployer); its alerts resolve at the next evaluation",
	}, func(ctx context.Context, cl *client.Client, name string) (string, error) {
		return "deleted SLO " + name, cl.DeleteSLO(ctx, name)
	})
}

func newAlertsCmd() *cobra.Command {
	var af apiFlags
	var o outputFlag
	var all bool
	c := &cobra.Command{
		Use:   "alerts",
		Short: "Show pending and firing SLO alerts, one incident per app",
		Long: `Alerts prints the SLO engine's alerts grouped into one incident per app, firing pages
first: each alert's SLO, version, scope, severity and phase, since when, the burn rates
over the tier's windows and the runbook. --all adds alerts resolved in the last 15 minutes.`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			ctx := c.Context()
			cl, err := af.client()
			if err != nil {
				return err
			}
			l, err := cl.Alerts(ctx, all)
			if err != nil {
				return af.explain(ctx, err)
			}
			w := c.OutOrStdout()
			if o.json() {
				return o.print(w, l)
			}
			if len(l.Incidents) == 0 {
				fmt.Fprintln(w, "no alerts")
			}
			for _, in := range l.Incidents {
				fmt.Fprintf(w, "%s: %s\n", in.App, in.Severity)
				tw := newTable(w)
				fmt.Fprintln(tw, "  SLO\tVERSION\tSCOPE\tSEVERITY\tPHASE\tSINCE\tFIRED\tBURN\tTIER")
				for _, a := range in.Alerts {
					phase := a.Phase
					if a.Expected {
						phase += " (expected)"
					}
					fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f×/%.1f×\t≥%s× over %s and %s\n", a.SLO, a.Version, a.Scope, a.Severity, phase,
						formatTime(a.Since), formatTime(a.Fired), a.LongRate, a.ShortRate, a.Factor, a.Long, a.Short)
				}
				tw.Flush()
				for _, r := range in.Runbooks {
					fmt.Fprintf(w, "  runbook: %s\n", r)
				}
			}
			for _, m := range l.Marks {
				fmt.Fprintf(w, "expected until %s: %s %s\n", formatTime(m.Until), m.App, m.Version)
			}
			return nil
		},
	}
	af.add(c)
	o.add(c)
	c.Flags().BoolVar(&all, "all", false, "include alerts resolved in the last 15 minutes")
	return c
}
