package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
)

// isTerminal reports whether r is an interactive terminal; a variable so tests can
// answer a prompt from a pipe.
var isTerminal = func(r io.Reader) bool { return isCharDevice(r) }

func newDeleteCmd() *cobra.Command {
	var af apiFlags
	var yes, wait bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a deployment: every node drains it, then it is gone",
		Long: `Delete removes a deployment. Nodes stop routing to it and drain what is in flight,
then the control plane removes its record, its revisions and the SLOs its manifest
declared. It asks for confirmation unless --yes is given, and refuses to run without
--yes when its input is not a terminal (a script must say so).

With --wait (the default) it prints the drain's progress until the deployment is gone.`,
		Example: `  fermion delete hello
  fermion delete hello --yes --wait=false`,
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			out := c.OutOrStdout()
			name := args[0]
			cl, err := af.client()
			if err != nil {
				return err
			}
			d, err := cl.GetDeployment(ctx, name)
			if err != nil {
				return af.explain(ctx, err)
			}
			if !yes {
				in := c.InOrStdin()
				if !isTerminal(in) {
					return usageError{fmt.Errorf("delete %s: input is not a terminal to confirm on; give --yes to delete without asking", name)}
				}
				fmt.Fprintf(out, "Delete deployment %s (%s, on %d node(s))? Every node drains it. Type the name to confirm: ", name, describeVersion(d), len(d.Placement.Nodes))
				answer, err := bufio.NewReader(in).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return fmt.Errorf("read confirmation: %w", err)
				}
				if strings.TrimSpace(answer) != name {
					return errors.New("not confirmed: nothing deleted")
				}
			}
			if _, err := cl.DeleteDeployment(ctx, name); err != nil {
				return af.explain(ctx, err)
			}
			fmt.Fprintf(out, "deployment %s is being deleted: nodes drain it\n", name)
			if !wait {
				return nil
			}
			return waitDeleted(ctx, &af, cl, name, timeout, out)
		},
	}
	af.add(c)
	c.Flags().BoolVarP(&yes, "yes", "y", false, "delete without asking")
	c.Flags().BoolVar(&wait, "wait", true, "wait until every node has drained it and it is gone")
	c.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long --wait waits")
	return c
}

// waitDeleted polls the deployment until it is gone, printing the nodes still
// running it whenever they change.
func waitDeleted(ctx context.Context, af *apiFlags, cl *client.Client, name string, timeout time.Duration, out io.Writer) error {
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	last := ""
	for {
		st, err := cl.DeploymentStatus(wctx, name)
		switch {
		case client.IsCode(err, v1.CodeNotFound):
			fmt.Fprintf(out, "deployment %s deleted from every node in %s\n", name, time.Since(start).Round(100*time.Millisecond))
			return nil
		case err == nil:
			var running []string
			for _, n := range st.Nodes {
				if n.Actual != nil && n.NodeState != v1.NodeLost {
					running = append(running, n.Node)
				}
			}
			now := "drained from every node; removing the record"
			if len(running) > 0 {
				now = fmt.Sprintf("draining: still on %d node(s): %s", len(running), strings.Join(running, ", "))
			}
			if now != last {
				fmt.Fprintf(out, "%s %s\n", name, now)
				last = now
			}
		case wctx.Err() != nil, client.IsCode(err, v1.CodeUnavailable):
		default:
			return af.explain(ctx, err)
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("stopped waiting: %w; deployment %s goes on draining (fermion status %s)", ctx.Err(), name, name)
			}
			return fmt.Errorf("deployment %s not gone within %s: %s\nsee 'fermion status %s' and 'fermion events --deployment %s'", name, timeout, last, name, name)
		case <-tick.C:
		}
	}
}
