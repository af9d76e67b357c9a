package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
)

func newStatusCmd() *cobra.Command {
	var af apiFlags
	var o outputFlag
	c := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show the deployments, or one deployment's desired and actual state on every node",
		Example: `  fermion status
  fermion status hello -o json`,
		Args: cobra.MaximumNArgs(1),
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
			if len(args) == 1 {
				st, err := cl.DeploymentStatus(ctx, args[0])
				if err != nil {
					return af.explain(ctx, err)
				}
				if o.json() {
					return o.print(w, st)
				}
				return printDeploymentStatus(w, st)
			}
			l, err := cl.ListDeployments(ctx)
			if err != nil {
				return af.explain(ctx, err)
			}
			if o.json() {
				return o.print(w, l)
			}
			return printDeployments(ctx, w, cl, l.Deployments)
		},
	}
	af.add(c)
	o.add(c)
	return c
}

// printDeployments prints one line per deployment, reading each one's status for its
// ready count (a few at a time).
func printDeployments(ctx context.Context, w io.Writer, cl *client.Client, ds []v1.Deployment) error {
	type row struct {
		st  *v1.DeploymentStatus
		err error
	}
	rows := make([]row, len(ds))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range ds {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			rows[i].st, rows[i].err = cl.DeploymentStatus(ctx, ds[i].Name)
		})
	}
	wg.Wait()
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tIMAGE/VERSION\tREADY/DESIRED\tGENERATION\tMESSAGE")
	for i, d := range ds {
		ready := "?"
		msg := d.Placement.Message
		if st := rows[i].st; st != nil {
			ready = fmt.Sprintf("%d/%d", st.Ready, st.Desired)
		} else if rows[i].err != nil {
			msg = "status: " + rows[i].err.Error()
		}
		if r := d.RolloutStatus; r != nil {
			msg = strings.TrimSuffix(rolloutLine(r, time.Now())+"; "+msg, "; ")
		}
		if d.Deleting {
			msg = strings.TrimSuffix("deleting; "+msg, "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", d.Name, imageVersion(&d), ready, d.Generation, or(msg))
	}
	return tw.Flush()
}

// imageVersion is repository:version once resolved, else the image asked for.
func imageVersion(d *v1.Deployment) string {
	if d.Version.Repository == "" {
		return d.Spec.Image
	}
	return d.Version.Repository + ":" + d.Version.Version
}

// versionCell is "1.2.0 sha256:abcdef012345", or "-".
func versionCell(version, digest string) string {
	return or(strings.TrimSpace(version + " " + shortDigest(digest)))
}

func printDeploymentStatus(w io.Writer, st *v1.DeploymentStatus) error {
	d := &st.Deployment
	tw := newTable(w)
	fmt.Fprintf(tw, "deployment\t%s\n", d.Name)
	fmt.Fprintf(tw, "image\t%s\n", d.Spec.Image)
	if v := d.Version; v.Digest != "" {
		signed := "unsigned"
		if v.Signed {
			signed = "signed by " + or(v.Signer)
		}
		fmt.Fprintf(tw, "version\t%s %s %s@%s (%s)\n", v.App, v.Version, v.Repository, v.Digest, signed)
	}
	fmt.Fprintf(tw, "spec\t%s\n", describeSpec(&d.Spec))
	// d.Revision is the stored record's revision (what If-Match takes), not a deployment
	// revision of fermion history, which the next line shows: say which it is.
	fmt.Fprintf(tw, "generation\t%d (placed %d, record revision %d)\n", d.Generation, d.Placement.ObservedGeneration, d.Revision)
	if ch := d.Change; ch != nil && ch.Number > 0 { // revisions (issue 15)
		fmt.Fprintf(tw, "history\trevision %d, %s by %s %s: %s (fermion history %s)\n", ch.Number, ch.Cause, or(ch.Who), since(time.Now(), ch.Time), or(changeMessage(*ch)), d.Name)
	}
	if r := d.RolloutStatus; r != nil {
		fmt.Fprintf(tw, "rollout\t%s (fermion rollout status %s)\n", rolloutLine(r, time.Now()), d.Name)
	}
	if d.Stable != nil && d.Change != nil { // rollouts (issue 15)
		fmt.Fprintf(tw, "stable\tfrom revision %d (%s): nodes keep it until the rollout moves them\n",
			d.Stable.Number, versionCell(d.Stable.Version.Version, d.Stable.Version.Digest))
	}
	state := "converging"
	switch {
	case d.Deleting:
		state = "deleting"
	case st.Converged:
		state = "converged"
	}
	fmt.Fprintf(tw, "ready\t%d/%d, %s\n", st.Ready, st.Desired, state)
	if len(d.Placement.Nodes) > 0 {
		fmt.Fprintf(tw, "placed on\t%s\n", strings.Join(d.Placement.Nodes, ", "))
	}
	if d.Placement.Message != "" {
		fmt.Fprintf(tw, "placement\t%s\n", d.Placement.Message)
	}
	fmt.Fprintf(tw, "updated\t%s\n", formatTime(d.Updated))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Nodes) == 0 {
		fmt.Fprintln(w, "\nno nodes")
		return nil
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "NODE\tNODE STATE\tDESIRED\tACTUAL\tSTATE\tINSTANCES\tLAST ERROR")
	for _, ns := range st.Nodes {
		desired := "-"
		if v := ns.Desired; v != nil {
			desired = versionCell(v.Version, v.Digest)
		}
		actual, state, instances, lastErr := "-", "-", "-", "-"
		if a := ns.Actual; a != nil {
			actual = versionCell(a.Version, a.Digest)
			state, instances, lastErr = or(a.State), strconv.Itoa(a.Instances), or(oneLine(a.LastError))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ns.Node, or(ns.NodeState), desired, actual, state, instances, lastErr)
	}
	return tw.Flush()
}

func describeSpec(s *v1.DeploymentSpec) string {
	var parts []string
	if s.Daemon {
		parts = append(parts, "daemon")
	} else {
		parts = append(parts, fmt.Sprintf("nodes %d", s.Nodes))
	}
	if s.Selector != "" {
		parts = append(parts, "selector "+s.Selector)
	}
	if s.Spread != "" {
		parts = append(parts, "spread "+s.Spread)
	}
	if s.Strategy != "" {
		parts = append(parts, "strategy "+s.Strategy)
	}
	for _, p := range s.Preferences {
		parts = append(parts, fmt.Sprintf("prefer %s=%s:%g", p.Label, p.Value, p.Weight))
	}
	return strings.Join(parts, ", ")
}

// oneLine keeps a table row on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// rolloutLine is a deployment's rollout in one line, with how long ago an ended one
// ended.
func rolloutLine(r *v1.RolloutSummary, now time.Time) string {
	if r.Terminal {
		return r.Describe() + " (" + since(now, r.Updated) + ")"
	}
	return r.Describe()
}
