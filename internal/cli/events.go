package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
)

func newEventsCmd() *cobra.Command {
	var af apiFlags
	var o outputFlag
	var follow bool
	var deployment, node, typ, since string
	var limit int
	c := &cobra.Command{
		Use:   "events",
		Short: "Show the lifecycle events (deployed, placed, started, failed, drained, …); --follow streams them",
		Long: `Events prints one line per event, oldest first: time, type, deployment, node, message.
With --follow it then prints new events as they happen until interrupted. With -o json it
prints the API's JSON (with --follow one event per line).`,
		Example: `  fermion events --deployment hello --since 1h
  fermion events --follow --node edge-1`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			f := client.EventFilter{Deployment: deployment, Node: node, Type: typ, Limit: limit}
			if since != "" {
				if d, err := time.ParseDuration(since); err == nil && d > 0 {
					f.Since = d
				} else if t, err := time.Parse(time.RFC3339, since); err == nil {
					f.SinceTime = t
				} else {
					return usageError{fmt.Errorf("--since %q: want a duration such as 1h or an RFC 3339 time such as 2025-03-01T12:00:00Z", since)}
				}
			}
			if typ != "" && !slices.Contains(v1.EventTypes, typ) {
				return usageError{fmt.Errorf("--type %q is not an event type%s; the types are %s", typ, didYouMean(typ, v1.EventTypes), strings.Join(v1.EventTypes, ", "))}
			}
			if limit < 1 || limit > 10000 {
				return usageError{fmt.Errorf("--limit %d: want 1 to 10000", limit)}
			}
			ctx := c.Context()
			cl, err := af.client()
			if err != nil {
				return err
			}
			w := c.OutOrStdout()
			if !follow {
				l, err := cl.Events(ctx, f)
				if err != nil {
					return af.explain(ctx, err)
				}
				if o.json() {
					return o.print(w, l)
				}
				printEventHeader(w)
				for _, e := range l.Events {
					printEvent(w, e)
				}
				return nil
			}
			enc := json.NewEncoder(w)
			enc.SetEscapeHTML(false)
			if !o.json() {
				printEventHeader(w)
			}
			err = cl.FollowEvents(ctx, f, func(e v1.Event) error {
				if o.format == "yaml" { // a stream of YAML documents
					fmt.Fprintln(w, "---")
					return printYAML(w, e)
				}
				if o.json() {
					return enc.Encode(e)
				}
				printEvent(w, e)
				return nil
			})
			if errors.Is(err, ctx.Err()) && ctx.Err() != nil {
				return nil // interrupted: the normal end of following
			}
			return af.explain(ctx, err)
		},
	}
	af.add(c)
	o.add(c)
	c.Flags().BoolVarP(&follow, "follow", "f", false, "print new events as they happen, until interrupted")
	c.Flags().StringVar(&deployment, "deployment", "", "only this deployment's events")
	c.Flags().StringVar(&node, "node", "", "only this node's events")
	c.Flags().StringVar(&typ, "type", "", "only events of this type (deployed, failed, drained, …)")
	c.Flags().StringVar(&since, "since", "", "only events newer than this duration ago (1h) or since this RFC 3339 time")
	c.Flags().IntVar(&limit, "limit", 100, "at most this many events of the history (1 to 10000)")
	return c
}

// printEventHeader names printEvent's columns.
func printEventHeader(w io.Writer) {
	fmt.Fprintf(w, "%-20s  %-13s  %-16s  %-12s  %s\n", "TIME", "TYPE", "DEPLOYMENT", "NODE", "MESSAGE")
}

// printEvent prints one event per line; the columns are padded, not tabulated, so that
// a followed stream lines up too.
func printEvent(w io.Writer, e v1.Event) {
	fmt.Fprintf(w, "%-20s  %-13s  %-16s  %-12s  %s\n", e.Time.Format(time.RFC3339), e.Type, or(e.Deployment), or(e.Node), oneLine(e.Message))
}
