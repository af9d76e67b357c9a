package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"
)

// outputFlag is -o/--output of the API verbs that read: a table for people, or the
// API's JSON (or the same document as YAML) for programs.
type outputFlag struct{ format string }

func (o *outputFlag) add(c *cobra.Command) {
	c.Flags().StringVarP(&o.format, "output", "o", "table", "output format: table, json (the API's JSON) or yaml (the same fields as YAML)")
	c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
}

// check refuses formats other than table, json and yaml.
func (o *outputFlag) check() error {
	switch o.format {
	case "table", "json", "yaml":
		return nil
	}
	return usageError{fmt.Errorf("--output %q: want table, json or yaml", o.format)}
}

// json reports whether a program reads the output (-o json or -o yaml): print the API's
// document with o.print, not a table.
func (o *outputFlag) json() bool { return o.format == "json" || o.format == "yaml" }

// print writes v as the format asks: JSON, or YAML with the JSON field names (YAML is
// converted from the JSON, so both carry exactly the same fields and values).
func (o *outputFlag) print(w io.Writer, v any) error {
	if o.format == "yaml" {
		return printYAML(w, v)
	}
	return printJSON(w, v)
}

func printYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	y, err := yaml.JSONToYAML(b)
	if err != nil {
		return fmt.Errorf("print yaml: %w", err)
	}
	_, err = w.Write(y)
	return err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// or returns s, or "-" for an empty table cell.
func or(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shortDigest is sha256: and the first 12 hex digits.
func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return algo + ":" + hex[:12]
}

// formatBytes prints a byte count in binary units (64MiB, 1.5GiB).
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	s := fmt.Sprintf("%.1f", v)
	s = strings.TrimSuffix(s, ".0")
	return s + []string{"KiB", "MiB", "GiB", "TiB"}[i]
}

// formatSeconds prints seconds as a rounded duration (1.2s, 3m4s).
func formatSeconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// formatLabels prints labels as k=v,… sorted by key.
func formatLabels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return or(strings.Join(parts, ","))
}
