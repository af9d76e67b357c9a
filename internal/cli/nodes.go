package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
)

func newNodesCmd() *cobra.Command {
	var af apiFlags
	var o outputFlag
	c := &cobra.Command{
		Use:   "nodes [NAME]",
		Short: "List the nodes (or one): state, labels, capacity, allocation, lease, assignments",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			ctx := c.Context()
			cl, err := af.client()
			if err != nil {
				return err
			}
			w := c.OutOrStdout()
			var nodes []v1.Node
			if len(args) == 1 {
				n, err := cl.GetNode(ctx, args[0])
				if err != nil {
					return af.explain(ctx, err)
				}
				if o.json() {
					return o.print(w, n)
				}
				nodes = []v1.Node{*n}
			} else {
				l, err := cl.ListNodes(ctx)
				if err != nil {
					return af.explain(ctx, err)
				}
				if o.json() {
					return o.print(w, l)
				}
				nodes = l.Nodes
			}
			return printNodes(w, nodes)
		},
	}
	af.add(c)
	o.add(c)
	return c
}

func printNodes(w io.Writer, nodes []v1.Node) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tSTATE\tSCHEDULABLE\tLABELS\tCAPACITY\tALLOCATED\tLEASE AGE\tASSIGNMENTS")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\t%s\t%s\t%s\n", n.Name, or(n.State), n.Schedulable, formatLabels(n.Labels),
			formatResources(n.Capacity), formatResources(n.Allocated), leaseAgeCell(n), formatAssignments(n.Assignments))
	}
	return tw.Flush()
}

// leaseAgeCell is the time since the node's last renewal, or "-" when this control
// plane holds none (a node restored from a backup that has not come back): the API
// then sends an age of 0, which would read as a node that renewed just now.
func leaseAgeCell(n v1.Node) string {
	if n.LeaseRenewed.IsZero() {
		return "-"
	}
	return formatSeconds(n.LeaseAge)
}

// formatResources is memory and instances: "512MiB/100".
func formatResources(r v1.Resources) string {
	return fmt.Sprintf("%s/%d", formatBytes(r.MemoryBytes), r.Instances)
}

// formatAssignments lists a few names, or counts many.
func formatAssignments(a []string) string {
	if len(a) > 3 {
		return fmt.Sprintf("%d", len(a))
	}
	return or(strings.Join(a, ","))
}

func newNodeCmd() *cobra.Command {
	var af apiFlags
	c := &cobra.Command{Use: "node", Short: "Drain, uncordon or remove a node"}
	af.add(c)

	var wait bool
	var timeout time.Duration
	drain := &cobra.Command{
		Use:   "drain NAME",
		Short: "Make a node unschedulable and move its work off; wait until it is drained",
		Long: `Drain stops placing work on the node and reschedules what it runs elsewhere. The node
is drained when no work is left on it; it stays unschedulable until uncordoned.`,
		Example: `  fermion node drain edge-1 --timeout 5m`,
		Args:    exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if timeout <= 0 {
				return usageError{fmt.Errorf("--timeout %s: must be positive", timeout)}
			}
			ctx := c.Context()
			cl, err := af.client()
			if err != nil {
				return err
			}
			n, err := cl.DrainNode(ctx, args[0])
			if err != nil {
				return af.explain(ctx, err)
			}
			w := c.OutOrStdout()
			fmt.Fprintf(w, "node %s %s: %s\n", n.Name, n.State, assignmentsLeft(n.Assignments))
			if !wait || n.State == v1.NodeDrained {
				return nil
			}
			return waitDrained(ctx, &af, cl, n, timeout, w)
		},
	}
	drain.Flags().BoolVar(&wait, "wait", true, "wait until the node is drained")
	drain.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long --wait waits")

	uncordon := af.nameVerb(&cobra.Command{
		Use:   "uncordon NAME",
		Short: "Make a drained or draining node schedulable again",
	}, func(ctx context.Context, cl *client.Client, name string) (string, error) {
		n, err := cl.UncordonNode(ctx, name)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("node %s %s, schedulable %t", n.Name, n.State, n.Schedulable), nil
	})
	remove := af.nameVerb(&cobra.Command{
		Use:   "remove NAME",
		Short: "Forget a node that is lost or drained: its record, lease and credentials",
		Long: `Remove forgets a node for good, for a machine that is retired. Only a lost node (its
agent stopped renewing) or a drained one can be removed; drain a live node first. Its agent
can join again later with a node token.`,
	}, func(ctx context.Context, cl *client.Client, name string) (string, error) {
		return "node " + name + " removed", cl.RemoveNode(ctx, name)
	})
	c.AddCommand(drain, uncordon, remove)
	return c
}

func assignmentsLeft(a []string) string {
	switch len(a) {
	case 0:
		return "no work left"
	case 1:
		return "1 assignment left (" + a[0] + ")"
	}
	return fmt.Sprintf("%d assignments left (%s)", len(a), strings.Join(a, ", "))
}

// waitDrained polls the node until it is drained, printing each change.
func waitDrained(ctx context.Context, af *apiFlags, cl *client.Client, n *v1.Node, timeout time.Duration, w io.Writer) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	last := fmt.Sprintf("%s: %s", n.State, assignmentsLeft(n.Assignments))
	for {
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("stopped waiting: %w; node %s goes on draining (fermion nodes %s)", ctx.Err(), n.Name, n.Name)
			}
			return fmt.Errorf("node %s not drained within %s: %s\nwhat it runs may have nowhere else to go: see 'fermion status' and 'fermion events --node %s'", n.Name, timeout, last, n.Name)
		case <-tick.C:
		}
		cur, err := cl.GetNode(wctx, n.Name)
		switch {
		case err == nil:
		case wctx.Err() != nil, client.IsCode(err, v1.CodeUnavailable):
			continue
		default:
			return af.explain(ctx, err)
		}
		now := fmt.Sprintf("%s: %s", cur.State, assignmentsLeft(cur.Assignments))
		if now != last {
			fmt.Fprintf(w, "node %s %s\n", cur.Name, now)
			last = now
		}
		switch cur.State {
		case v1.NodeDrained:
			return nil
		case v1.NodeReady:
			if cur.Schedulable {
				return fmt.Errorf("node %s is schedulable again: someone uncordoned it while it drained", cur.Name)
			}
		}
	}
}
