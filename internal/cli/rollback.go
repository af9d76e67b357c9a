package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	v1 "fermion.dev/fermion/api/v1"
)

func newRollbackCmd() *cobra.Command {
	var af apiFlags
	var to int64
	var message string
	var wait bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "rollback NAME",
		Short: "Return a deployment to its previous (or a named) revision",
		Long: `Rollback deploys an earlier revision of NAME again: its spec and its exact artifact,
by digest, whatever its tag points to now. It is admitted as a deploy is (policies,
signatures, placement), so a revision whose artifact a policy now refuses is refused
and nothing changes. The rollback is itself a new revision (fermion history).

Nodes keep the artifacts of their last revisions pinned in their cache (the agent's
--keep-revisions), so a rollback to one of those starts even while the registry is
down. With --wait (the default) rollback follows the nodes until they all run it.`,
		Example: `  fermion rollback hello
  fermion rollback hello --to 3 --message "v4 drops requests with large bodies"`,
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if to < 0 {
				return usageError{fmt.Errorf("--to %d: want a revision number from fermion history %s, or 0 for the previous one", to, args[0])}
			}
			if len(message) > v1.MaxRevisionMessage {
				return usageError{fmt.Errorf("--message is %d bytes: keep it under %d", len(message), v1.MaxRevisionMessage)}
			}
			ctx := c.Context()
			out := c.OutOrStdout()
			cl, err := af.client()
			if err != nil {
				return err
			}
			name := args[0]
			d, err := cl.Rollback(ctx, name, v1.RollbackRequest{To: to, Message: message})
			if err != nil {
				return af.explain(ctx, err)
			}
			for _, w := range d.Warnings {
				fmt.Fprintf(c.ErrOrStderr(), "warning: %s\n", w)
			}
			back := to
			if d.Change != nil {
				back = d.Change.RollbackOf
			}
			fmt.Fprintf(out, "deployment %s rolled back to revision %d (%sgeneration %d): %s\n", name, back, revisionPrefix(d), d.Generation, describeVersion(d))
			if !wait {
				return nil
			}
			return waitConverged(ctx, &af, cl, name, d.Generation, timeout, out)
		},
	}
	af.add(c)
	c.Flags().Int64Var(&to, "to", 0, "the revision to return to (fermion history); 0 is the one before the current")
	c.Flags().StringVarP(&message, "message", "m", "", `why (default "rollback to revision N")`)
	c.Flags().BoolVar(&wait, "wait", true, "wait until every node runs the revision")
	c.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long --wait waits")
	return c
}
