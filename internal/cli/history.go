package cli

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	v1 "fermion.dev/fermion/api/v1"
)

func newHistoryCmd() *cobra.Command {
	var af apiFlags
	var o outputFlag
	c := &cobra.Command{
		Use:   "history NAME",
		Short: "List a deployment's revisions: what ran, who changed it, when and why",
		Long: `History lists the revisions of a deployment, the newest first: every deploy that
changed its spec or version, and every rollback, is one. The current revision is
marked with *. The control plane keeps the last 50; fermion rollback NAME --to N returns
to any of them.`,
		Example: `  fermion history hello
  fermion history hello -o json`,
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			ctx := c.Context()
			cl, err := af.client()
			if err != nil {
				return err
			}
			h, err := cl.Revisions(ctx, args[0])
			if err != nil {
				return af.explain(ctx, err)
			}
			if o.json() {
				return printJSON(c.OutOrStdout(), h)
			}
			return printHistory(c.OutOrStdout(), h, time.Now())
		},
	}
	af.add(c)
	o.add(c)
	return c
}

func printHistory(w io.Writer, h *v1.RevisionList, now time.Time) error {
	if len(h.Revisions) == 0 {
		_, err := fmt.Fprintf(w, "deployment %s has no recorded revisions (it was deployed before revisions were kept)\n", h.Deployment)
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "\tREVISION\tDIGEST\tVERSION\tWHEN\tWHO\tMESSAGE")
	for _, r := range h.Revisions {
		mark := ""
		if r.Change.Number == h.Current {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", mark, r.Change.Number, shortDigest(r.Version.Digest),
			or(r.Version.Version), since(now, r.Change.Time), or(r.Change.Who), or(changeMessage(r.Change)))
	}
	return tw.Flush()
}

// changeMessage is a change's message, saying what a rollback returned to when its
// message does not.
func changeMessage(c v1.Change) string {
	if c.Cause == v1.CauseRollback && c.Message != "rollback to revision "+strconv.FormatInt(c.RollbackOf, 10) {
		return fmt.Sprintf("%s (rollback to %d)", c.Message, c.RollbackOf)
	}
	return c.Message
}

// since is how long before now t was, to the unit that matters ("3m ago"), or the
// date for what is older than a week.
func since(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	case d < 7*24*time.Hour:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
	return t.UTC().Format("2006-01-02")
}

// revisionPrefix is "revision 3, " for a deployment whose change is known.
func revisionPrefix(d *v1.Deployment) string {
	if d.Change == nil || d.Change.Number == 0 {
		return ""
	}
	return fmt.Sprintf("revision %d, ", d.Change.Number)
}
