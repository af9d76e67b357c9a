package cli

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/atomicfile"
	"fermion.dev/fermion/internal/slo"
)

func newSLOCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "slo",
		Short: "Apply SLOs to the control plane, show their budgets, check files, generate Prometheus rules",
		Long: `SLO files are YAML, one SLO per document: the app, the SLI (availability or latency
under a threshold), the objective, the window, the scope (global, per region, per node)
and the burn-rate alert tiers (see docs/slo.md). These verbs work on the files alone and
need no control plane: 'validate' checks them, 'rules' writes the same SLOs as
Prometheus recording and alerting rules for users who alert through their own Prometheus.
'apply', 'list', 'status' and 'delete' work on the control plane, whose leader evaluates
the SLOs every 10 s and pages on burn rate (see 'fermion alerts').`,
	}
	c.AddCommand(newSLOValidateCmd(), newSLORulesCmd())
	sloRemoteCmds(c) // apply, list, status, delete (slo_remote.go)
	return c
}

// sloFile is one SLO file and what Decode made of it.
type sloFile struct {
	path  string
	specs []slo.Spec
}

// readSLOs decodes SLO files (a directory: its .yaml and .yml files). Every file is
// read before any error is returned, so one run reports every mistake; an SLO name used
// in two files is a mistake too, naming both.
func readSLOs(args []string) ([]sloFile, error) {
	paths, err := expandYAML(args, false, "SLO file")
	if err != nil {
		return nil, err
	}
	var files []sloFile
	var errs []error
	where := map[string]string{}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("read SLO file: %w", err))
			continue
		}
		specs, err := slo.Decode(path, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, s := range specs {
			if first, dup := where[s.Name]; dup {
				errs = append(errs, fmt.Errorf("%s: SLO %q is also defined in %s; SLO names must be unique across files", path, s.Name, first))
			}
			where[s.Name] = path
		}
		files = append(files, sloFile{path: path, specs: specs})
	}
	return files, errors.Join(errs...)
}

// sloSummary is one SLO as 'slo validate -o json' prints it.
type sloSummary struct {
	File      string            `json:"file"`
	Name      string            `json:"name"`
	App       string            `json:"app,omitempty"`
	Selector  map[string]string `json:"selector,omitempty"`
	SLI       string            `json:"sli"`
	Objective string            `json:"objective"`
	Window    string            `json:"window"`
	Scope     string            `json:"scope"`
	Nodes     map[string]string `json:"nodes,omitempty"`
	Preset    string            `json:"preset,omitempty"`
	Tiers     []string          `json:"tiers"`
	Runbook   string            `json:"runbook,omitempty"`
}

func summarize(path string, s *slo.Spec) sloSummary {
	sum := sloSummary{
		File: path, Name: s.Name, App: s.App, Selector: s.Selector, SLI: s.SLI.String(),
		Objective: slo.Ratio{Num: s.Objective.Num * 100, Den: s.Objective.Den}.String() + "%",
		Window:    slo.FormatWindow(s.Window), Scope: string(s.Scope.Per), Nodes: s.Scope.Nodes,
		Preset: s.Preset, Runbook: s.Runbook, Tiers: []string{},
	}
	for _, t := range s.Tiers {
		tier := fmt.Sprintf("%s %s× over %s and %s", t.Severity, t.Factor, slo.FormatWindow(t.Long), slo.FormatWindow(t.Short))
		if t.For > 0 {
			tier += " for " + slo.FormatWindow(t.For)
		}
		sum.Tiers = append(sum.Tiers, tier)
	}
	return sum
}

func newSLOValidateCmd() *cobra.Command {
	var o outputFlag
	c := &cobra.Command{
		Use:   "validate FILE|DIR...",
		Short: "Check SLO files and list the SLOs they define (no control plane needed)",
		Long: `Validate decodes every SLO file (a directory: its .yaml and .yml files) and prints the
SLOs they define. Mistakes are printed all at once, each as file:line:col: field: message
with a did-you-mean for misspelt names, and the command exits 1; a usage mistake exits 2.`,
		Example: `  fermion slo validate examples/slo/hello.yaml
  fermion slo validate slos/ -o json`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("give at least one SLO file or directory\nusage: %s", c.UseLine())}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			files, err := readSLOs(args)
			if err != nil {
				return err
			}
			sums := []sloSummary{}
			for _, f := range files {
				for i := range f.specs {
					sums = append(sums, summarize(f.path, &f.specs[i]))
				}
			}
			w := c.OutOrStdout()
			if o.json() {
				return o.print(w, sums)
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "FILE\tNAME\tAPP\tSLI\tOBJECTIVE\tWINDOW\tSCOPE\tALERTING")
			for _, s := range sums {
				app := s.App
				if app == "" {
					app = labelList(s.Selector)
				}
				scope := s.Scope
				if len(s.Nodes) > 0 {
					scope += " " + labelList(s.Nodes)
				}
				alerting := s.Preset
				if alerting == "" {
					alerting = v1.Count(len(s.Tiers), "tier")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.File, s.Name, app, s.SLI, s.Objective, s.Window, scope, alerting)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(w, "%s in %s: valid\n", v1.Count(len(sums), "SLO"), v1.Count(len(files), "file"))
			return nil
		},
	}
	o.add(c)
	return c
}

// labelList renders labels as {k=v,…}, sorted.
func labelList(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func newSLORulesCmd() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "rules FILE|DIR... [-o FILE]",
		Short: "Write Prometheus recording and alerting rules for SLO files (no control plane needed)",
		Long: `Rules writes the SLOs as Prometheus rules in Sloth's shape: per SLO, a group recording
the error ratio over every alert window, and a group of multiwindow burn-rate alerts
(FermionSLOBurnPage, FermionSLOBurnTicket) with severity, slo and runbook_url. The rules
read the metrics Fermion's nodes export (fermion_requests_total,
fermion_request_duration_seconds), so a latency threshold must be one of that
histogram's buckets, and SLOs must name their app (not a selector). Check the output
with 'promtool check rules'. Nothing is written if any file has a mistake (exit 1); -o
replaces the file at once, never leaving half of it.`,
		Example: `  fermion slo rules examples/slo/hello.yaml
  fermion slo rules slos/ -o /etc/prometheus/rules/fermion-slos.yaml && promtool check rules /etc/prometheus/rules/fermion-slos.yaml`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("give at least one SLO file or directory\nusage: %s", c.UseLine())}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			files, err := readSLOs(args)
			if err != nil {
				return fmt.Errorf("%w\nno rules were written", err)
			}
			var specs []slo.Spec
			for _, f := range files {
				specs = append(specs, f.specs...)
			}
			rules, err := slo.Rules(specs)
			if err != nil {
				return fmt.Errorf("%w\nno rules were written", err)
			}
			if out == "" || out == "-" {
				_, err := c.OutOrStdout().Write(rules)
				return err
			}
			if err := atomicfile.Write(out, rules, 0o644); err != nil {
				return fmt.Errorf("write rules: %w", err)
			}
			fmt.Fprintf(c.ErrOrStderr(), "wrote rules for %s to %s\n", v1.Count(len(specs), "SLO"), out)
			return nil
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "-", "write the rules to this file instead of standard output (replaced atomically)")
	return c
}
