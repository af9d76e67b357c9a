package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
)

// slowestFlags are `fermion slowest`'s options.
type slowestFlags struct {
	version, node, region, window string
	limit                         int
}

func newSlowestCmd() *cobra.Command {
	var af apiFlags
	var o outputFlag
	var f slowestFlags
	c := &cobra.Command{
		Use:   "slowest [APP]",
		Short: "List the fleet's slowest recent requests with their trace ids",
		Long: "slowest reads GET /v1/slis/slowest: the slowest requests of the last minutes (at most 15), slowest first, " +
			"as the agents report them with their SLI summaries. Each row has the request's trace id: a * after it says " +
			"the gateway recorded its span, so the trace backend (Jaeger, Tempo) has it; the others are in the node's request log.",
		Example: "  fermion slowest\n  fermion slowest hello --window 5m --limit 5\n  fermion slowest --region eu -o json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if f.limit < 1 || f.limit > v1.SlowestLimitMax {
				return usageError{fmt.Errorf("--limit %d: give a number from 1 to %d", f.limit, v1.SlowestLimitMax)}
			}
			q := client.SlowestQuery{Version: f.version, Node: f.node, Region: f.region, Window: f.window, Limit: f.limit}
			if len(args) == 1 {
				q.App = args[0]
			}
			cl, err := af.client()
			if err != nil {
				return err
			}
			ctx := c.Context()
			l, err := cl.SlowestRequests(ctx, q)
			if err != nil {
				return af.explain(ctx, err)
			}
			if o.json() {
				return o.print(c.OutOrStdout(), l)
			}
			return printSlowest(c.OutOrStdout(), l, time.Now())
		},
	}
	c.Flags().StringVar(&f.version, "version", "", "only this version")
	c.Flags().StringVar(&f.node, "node", "", "only this node")
	c.Flags().StringVar(&f.region, "region", "", "only nodes with this region label")
	c.Flags().StringVar(&f.window, "window", "15m", "how far back: 1m, 5m, 15m (at most 15m)")
	c.Flags().IntVar(&f.limit, "limit", v1.SlowestLimitDefault, fmt.Sprintf("at most this many requests (1–%d)", v1.SlowestLimitMax))
	af.add(c)
	o.add(c)
	return c
}

// printSlowest writes the table of `fermion slowest`.
func printSlowest(w io.Writer, l *v1.SlowestRequests, now time.Time) error {
	if len(l.Requests) == 0 {
		_, err := fmt.Fprintf(w, "no slow requests reported in the last %s; agents send them with their SLIs every 10 s\n", l.Window)
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, strings.Join([]string{"DURATION", "STATUS", "APP", "VERSION", "NODE", "REQUEST", "AGO", "TRACE"}, "\t"))
	for _, r := range l.Requests {
		trace := r.TraceID
		if r.Sampled {
			trace += "*"
		}
		ago := now.Sub(r.Start).Round(time.Second)
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s %s\t%s\t%s\n", (time.Duration(r.DurationMs*1000) * time.Microsecond).Round(time.Microsecond*100),
			r.Status, r.App, r.Version, r.Node, r.Method, r.Path, ago, trace)
	}
	return tw.Flush()
}
