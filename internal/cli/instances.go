package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "fermion.dev/fermion/api/v1"
)

func newInstancesCmd() *cobra.Command {
	var af apiFlags
	var o outputFlag
	var node string
	c := &cobra.Command{
		Use:   "instances DEPLOYMENT",
		Short: "List a deployment's instances on its nodes: created, initialised, requests, discarded and why",
		Long: "instances asks every node the deployment runs on (or only --node) for its instances' timelines: " +
			"the live instances and the last 32 discarded ones per version, each with how and why it started, its init time, " +
			"requests, errors, last request and, once discarded, why (idle, trap, panic, timeout, oom, warmup …). " +
			"ID is the number the slowest requests name (fermion slowest). Nodes that do not answer within 2 s are listed " +
			"on stderr with why; the rest is printed. -o json|yaml adds each instance's events.",
		Example: "  fermion instances hello\n  fermion instances hello --node edge-1\n  fermion instances hello -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if err := v1.ValidName("deployment", args[0]); err != nil {
				return usageError{err}
			}
			cl, err := af.client()
			if err != nil {
				return err
			}
			ctx := c.Context()
			var l *v1.InstancesList
			if node != "" {
				l, err = cl.NodeInstances(ctx, node, args[0])
			} else {
				l, err = cl.DeploymentInstances(ctx, args[0])
			}
			if err != nil {
				return af.explain(ctx, err)
			}
			printUnreachable(c.ErrOrStderr(), l.Unreachable)
			if o.json() {
				return o.print(c.OutOrStdout(), l)
			}
			return printInstances(c.OutOrStdout(), args[0], l, time.Now())
		},
	}
	c.Flags().StringVar(&node, "node", "", "only this node")
	af.add(c)
	o.add(c)
	return c
}

// printUnreachable says which nodes did not answer, so a partial list reads as one.
func printUnreachable(w io.Writer, nodes []v1.NodeError) {
	if len(nodes) == 0 {
		return
	}
	fmt.Fprintf(w, "warning: %d node(s) did not answer; the list below is partial:\n", len(nodes))
	for _, n := range nodes {
		fmt.Fprintf(w, "  %s: %s\n", n.Node, n.Error)
	}
}

// printInstances writes the table of `fermion instances`.
func printInstances(w io.Writer, deployment string, l *v1.InstancesList, now time.Time) error {
	if len(l.Instances) == 0 {
		msg := fmt.Sprintf("no instances of %s on the nodes that answered", deployment)
		if len(l.Unreachable) == 0 {
			msg = fmt.Sprintf("no instances of %s: it has none running or recently discarded (instances start on the first request unless min_warm is set)", deployment)
		}
		_, err := fmt.Fprintln(w, msg)
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, strings.Join([]string{"NODE", "VERSION", "ID", "STATE", "START", "CREATED", "INIT", "REQUESTS", "ERRORS", "LAST REQUEST", "DISCARDED"}, "\t"))
	for _, i := range l.Instances {
		start := i.Start
		if i.Reason != "" {
			start += " (" + i.Reason + ")"
		}
		discarded := "-"
		if !i.Discarded.IsZero() {
			discarded = since(now, i.Discarded) + ": " + i.DiscardReason
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%.1fms\t%d\t%d\t%s\t%s\n", i.Node, i.Version, i.ID, i.State, start,
			since(now, i.Created), i.InitMillis, i.Requests, i.Errors, since(now, i.LastRequest), discarded)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if l.Dropped > 0 {
		_, err := fmt.Fprintf(w, "%d older discarded instance(s) no longer held\n", l.Dropped)
		return err
	}
	return nil
}
