package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// outputFlag is -o/--output of the API verbs that read: a table for people or the API's
// JSON for programs.
type outputFlag struct{ format string }

func (o *outputFlag) add(c *cobra.Command) {
	c.Flags().StringVarP(&o.format, "output", "o", "table", "output format: table or json (the API's JSON)")
}

// check refuses formats other than table and json.
func (o *outputFlag) check() error {
	switch o.format {
	case "table", "json":
		return nil
	}
	return usageError{fmt.Errorf("--output %q: want table or json", o.format)}
}

func (o *outputFlag) json() bool { return o.format == "json" }

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
