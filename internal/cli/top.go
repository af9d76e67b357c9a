package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/slo"
)

// topFlags are `fermion top`'s options.
type topFlags struct {
	nodes, regions, once bool
	window               string
	interval             time.Duration
}

func newTopCmd() *cobra.Command {
	var af apiFlags
	var o outputFlag
	var f topFlags
	c := &cobra.Command{
		Use:   "top [APP]",
		Short: "Show live SLIs per app and version: req/s, error %, p50/p95/p99, cold starts, instances, memory",
		Long: "top reads the control plane's fleet SLIs (GET /v1/slis) every 2 s and shows, per app and version, " +
			"requests per second, the share of 5xx responses, latency quantiles from the merged sketches of every node, " +
			"the share of requests that waited for a new instance, the instances the nodes report and the largest instance memory. " +
			"--nodes splits rows per node, --regions per region (from the nodes' region label). No Prometheus is needed.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			q := client.SLIQuery{By: []string{"app", "version"}}
			if len(args) == 1 {
				q.App = args[0]
			}
			if f.regions {
				q.By = append(q.By, "region")
			}
			if f.nodes {
				q.By = append(q.By, "node")
			}
			d, err := slo.ParseWindow(f.window)
			if err != nil {
				return usageError{fmt.Errorf("--window: %w", err)}
			}
			q.Window = d
			if f.interval <= 0 {
				return usageError{fmt.Errorf("--interval %s: must be positive", f.interval)}
			}
			cl, err := af.client()
			if err != nil {
				return err
			}
			ctx := c.Context()
			w := c.OutOrStdout()
			l, err := cl.SLIs(ctx, q)
			if err != nil {
				// The server words the per-node limit in the API's terms (by=node,
				// window=); say it in the flags' here.
				if e, ok := errors.AsType[*v1.Error](err); ok && f.nodes && e.Code == v1.CodeBadRequest && e.Field == "window" {
					return fmt.Errorf("%w\n--nodes cannot reach back --window %s: give a shorter --window, or leave --nodes out", err, f.window)
				}
				return af.explain(ctx, err)
			}
			if o.json() {
				return o.print(w, l)
			}
			if f.once {
				return printTop(w, l, q)
			}
			return liveTop(ctx, w, cl, q, l, f.interval)
		},
	}
	c.Flags().BoolVar(&f.nodes, "nodes", false, "one row per node")
	c.Flags().BoolVar(&f.regions, "regions", false, "one row per region (the nodes' region label)")
	c.Flags().StringVar(&f.window, "window", "5m", "how far back each figure looks: 1m, 5m, 1h, 1d (at most 30d)")
	c.Flags().BoolVar(&f.once, "once", false, "print one table and exit (-o json always prints one snapshot)")
	c.Flags().DurationVar(&f.interval, "interval", 2*time.Second, "refresh period")
	af.add(c)
	o.add(c)
	return c
}

// liveTop redraws the table every interval until ctx ends. A failed refresh shows its
// error above the last table and is retried: the server may be failing over.
func liveTop(ctx context.Context, w io.Writer, cl *client.Client, q client.SLIQuery, l *v1.SLIList, interval time.Duration) error {
	redraw := isTerminalOut(w)
	t := time.NewTicker(interval)
	defer t.Stop()
	var frame bytes.Buffer
	var lastErr error
	for {
		frame.Reset()
		if redraw {
			frame.WriteString("\x1b[H\x1b[2J")
		}
		fmt.Fprintf(&frame, "fermion top — %s — every %s, Ctrl-C to quit\n", l.To.Local().Format("15:04:05"), interval)
		if lastErr != nil {
			fmt.Fprintf(&frame, "refresh failed: %v\n", lastErr)
		}
		if err := printTop(&frame, l, q); err != nil {
			return err
		}
		if !redraw {
			frame.WriteString("\n")
		}
		if _, err := w.Write(frame.Bytes()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		next, err := cl.SLIs(ctx, q)
		if ctx.Err() != nil {
			return nil
		}
		if lastErr = err; err == nil {
			l = next
		}
	}
}

// isTerminalOut reports whether w is a terminal, where redrawing in place works.
func isTerminalOut(w io.Writer) bool { return isCharDevice(w) }

// isCharDevice reports whether v is an *os.File on a character device (a terminal), not
// a pipe or a file.
func isCharDevice(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func printTop(w io.Writer, l *v1.SLIList, q client.SLIQuery) error {
	window := slo.FormatWindow(time.Duration(l.WindowSeconds * float64(time.Second)))
	if len(l.Groups) == 0 {
		what := "any app"
		if q.App != "" {
			what = q.App
		}
		_, err := fmt.Fprintf(w, "no requests or instances of %s in the last %s; SLIs arrive every 10 s from each node\n", what, window)
		return err
	}
	by := map[string]bool{}
	for _, d := range l.By {
		by[d] = true
	}
	tw := newTable(w)
	cols := []string{"APP", "VERSION"}
	if by["region"] {
		cols = append(cols, "REGION")
	}
	if by["node"] {
		cols = append(cols, "NODE")
	}
	cols = append(cols, "REQ/S", "ERR%", "P50", "P95", "P99", "COLD%", "INST", "MEM")
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	for _, g := range l.Groups {
		row := []string{or(g.App), or(g.Version)}
		if by["region"] {
			row = append(row, or(g.Region))
		}
		if by["node"] {
			row = append(row, or(g.Node))
		}
		lat := func(ms float64) string {
			if g.Requests == 0 {
				return "-"
			}
			return formatMillis(ms)
		}
		pct := func(r float64) string {
			if g.Requests == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", 100*r)
		}
		mem := "-"
		if g.MemoryMaxBytes > 0 {
			mem = formatBytes(int64(min(g.MemoryMaxBytes, 1<<62)))
		}
		row = append(row, formatRate(g.RequestsPerSecond), pct(g.ErrorRatio), lat(g.P50Ms), lat(g.P95Ms), lat(g.P99Ms),
			pct(g.ColdStartRatio), fmt.Sprint(g.Instances), mem)
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// formatRate prints requests per second with about three significant digits.
func formatRate(r float64) string {
	switch {
	case r == 0:
		return "0"
	case r < 10:
		return fmt.Sprintf("%.2f", r)
	case r < 100:
		return fmt.Sprintf("%.1f", r)
	}
	return fmt.Sprintf("%.0f", r)
}

// formatMillis prints a latency given in milliseconds: 0.31ms, 12.5ms, 250ms, 1.20s.
func formatMillis(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.2fs", ms/1000)
	case ms >= 100:
		return fmt.Sprintf("%.0fms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1fms", ms)
	}
	return fmt.Sprintf("%.2fms", ms)
}
