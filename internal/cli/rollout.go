package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/rollout"
)

// fermion rollout status|promote|abort|pause|resume NAME (issue 15).

func newRolloutCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "rollout",
		Short: "Follow and steer a deployment's rollout: status, promote, abort, pause, resume",
		Long: `A deploy that changes the version of a running deployment with a canary or rolling
strategy starts a rollout: the control plane moves the new revision through the
strategy's steps, judges each canary step against the stable revision on their SLIs,
and promotes it or rolls it back by itself. These verbs show and steer it.`,
		Example: `  fermion rollout status hello
  fermion rollout status hello --watch
  fermion rollout promote hello      # pass a manual gate, or skip the analysis wait
  fermion rollout abort hello -m "wrong build"`,
	}
	c.AddCommand(newRolloutStatusCmd())
	for _, a := range []struct{ action, short string }{
		{v1.RolloutPromote, "Pass the rollout's current gate: a manual gate, or the analysis wait"},
		{v1.RolloutAbort, "Stop the rollout and put the stable revision back on every node"},
		{v1.RolloutPause, "Pause the rollout where it is (the nodes keep their split)"},
		{v1.RolloutResume, "Resume a paused rollout (a paused analysis starts its window again)"},
	} {
		c.AddCommand(newRolloutActionCmd(a.action, a.short))
	}
	return c
}

func newRolloutStatusCmd() *cobra.Command {
	var af apiFlags
	var o outputFlag
	var watch bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a deployment's rollout: its steps, phase, weight, canary nodes and every verdict with its numbers",
		Example: `  fermion rollout status hello
  fermion rollout status hello -o json`,
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if watch && o.json() {
				return usageError{errors.New("--watch prints tables; leave out -o, or poll with -o json")}
			}
			ctx := c.Context()
			cl, err := af.client()
			if err != nil {
				return err
			}
			ro, err := cl.Rollout(ctx, args[0])
			if err != nil {
				return af.explain(ctx, err)
			}
			if o.json() {
				return o.print(c.OutOrStdout(), ro)
			}
			if !watch {
				return printRollout(c.OutOrStdout(), ro, time.Now())
			}
			ro, err = followRollout(ctx, cl, args[0], ro.To.Number, timeout, c.OutOrStdout())
			if err != nil {
				return af.explain(ctx, err)
			}
			return rolloutOutcome(ro)
		},
	}
	af.add(c)
	o.add(c)
	c.Flags().BoolVarP(&watch, "watch", "w", false, "print each change until the rollout ends; the exit status says whether it succeeded")
	c.Flags().DurationVar(&timeout, "timeout", time.Hour, "how long --watch waits")
	return c
}

func newRolloutActionCmd(action, short string) *cobra.Command {
	var af apiFlags
	var o outputFlag
	var reason string
	c := &cobra.Command{
		Use:   action + " NAME",
		Short: short,
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if len(reason) > v1.MaxRevisionMessage {
				return usageError{fmt.Errorf("--message is %d bytes: keep it under %d", len(reason), v1.MaxRevisionMessage)}
			}
			ctx := c.Context()
			cl, err := af.client()
			if err != nil {
				return err
			}
			ro, err := cl.RolloutAction(ctx, args[0], action, reason)
			if err != nil {
				return af.explain(ctx, err)
			}
			if o.json() {
				return o.print(c.OutOrStdout(), ro)
			}
			return printRollout(c.OutOrStdout(), ro, time.Now())
		},
	}
	af.add(c)
	o.add(c)
	c.Flags().StringVarP(&reason, "message", "m", "", "why: recorded in the rollout's events")
	return c
}

// printRollout writes a rollout as people read it: the revisions, the steps with the
// current one marked, where it stands, and every verdict's checks with their numbers.
func printRollout(w io.Writer, ro *v1.Rollout, now time.Time) error {
	fmt.Fprintf(w, "deployment %s: revision %d (%s, %s) → %d (%s, %s), %s\n", ro.Deployment,
		ro.From.Number, or(ro.From.Version), shortDigest(ro.From.Digest), ro.To.Number, or(ro.To.Version), shortDigest(ro.To.Digest), ro.Strategy.Kind)
	fmt.Fprintf(w, "phase:   %s", ro.Phase)
	if !ro.Terminal && ro.Step < len(ro.Steps) {
		fmt.Fprintf(w, " at step %d of %d", ro.Step+1, len(ro.Steps))
	}
	fmt.Fprintf(w, " (started %s, updated %s)\n", since(now, ro.Started), since(now, ro.Updated))
	if ro.Reason != "" {
		fmt.Fprintf(w, "reason:  %s\n", ro.Reason)
	}
	if !ro.Terminal {
		switch {
		case ro.Weight > 0:
			fmt.Fprintf(w, "weight:  %d%% of requests to revision %d on every node\n", ro.Weight, ro.To.Number)
		case len(ro.CanaryNodes) > 0:
			fmt.Fprintf(w, "canary:  revision %d on %s\n", ro.To.Number, strings.Join(ro.CanaryNodes, ", "))
		}
		if !ro.WindowEnd.IsZero() {
			left := ro.WindowEnd.Sub(now).Round(time.Second)
			fmt.Fprintf(w, "window:  %s → %s (%s left)\n", ro.WindowStart.UTC().Format(time.TimeOnly), ro.WindowEnd.UTC().Format(time.TimeOnly), max(left, 0))
		}
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "\nSTEP\t\tSTATE")
	for i, st := range ro.Steps {
		mark, state := "", "pending"
		switch {
		case i < ro.Step || ro.Phase == "succeeded":
			state = "passed"
		case i == ro.Step && ro.Terminal:
			state = ro.Phase
		case i == ro.Step:
			mark, state = "*", ro.Phase
		}
		fmt.Fprintf(tw, "%d\t%s %s\t%s\n", i+1, mark, st, state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(ro.Verdicts) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nVERDICTS")
	tw = newTable(w)
	fmt.Fprintln(tw, "STEP\tAT\tCHECK\tRESULT\tCANARY\tSTABLE\tTHRESHOLD\tP\tN CANARY\tN STABLE")
	for _, v := range ro.Verdicts {
		at := v.At.UTC().Format(time.TimeOnly)
		if len(v.Checks) == 0 {
			fmt.Fprintf(tw, "%d\t%s\t-\t%s\t\t\t\t\t\t\n", v.Step+1, at, v.Result)
		}
		for _, ch := range v.Checks {
			p := "-"
			if ch.P >= 0 {
				p = fmt.Sprintf("%.2g", ch.P)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", v.Step+1, at, ch.Check, ch.Result,
				checkValue(ch.Check, ch.Canary), checkValue(ch.Check, ch.Stable), checkValue(ch.Check, ch.Threshold), p, ch.NCanary, ch.NStable)
		}
	}
	return tw.Flush()
}

// checkValue formats a check's number in its unit: a latency in ms, a ratio in
// percent.
func checkValue(check string, v float64) string {
	switch {
	case strings.HasPrefix(check, "p9"):
		return fmt.Sprintf("%.3gms", v)
	default:
		return fmt.Sprintf("%.2f%%", 100*v)
	}
}

// followRollout prints the rollout of revision to each time it changes until it
// ends, and returns it then.
func followRollout(ctx context.Context, cl *client.Client, name string, to int64, timeout time.Duration, w io.Writer) (*v1.Rollout, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	verdicts := 0
	for {
		ro, err := cl.Rollout(ctx, name)
		switch {
		case client.IsCode(err, v1.CodeNotFound):
			// The controller has not recorded it yet.
		case err != nil:
			if ctx.Err() != nil {
				return nil, fmt.Errorf("the rollout of %s did not end within %s: follow it with fermion rollout status %s --watch", name, timeout, name)
			}
			return nil, err
		case ro.To.Number == to:
			line := fmt.Sprintf("step %d/%d %s", ro.Step+1, len(ro.Steps), ro.Phase)
			if ro.Step < len(ro.Steps) && !ro.Terminal {
				line += " (" + ro.Steps[ro.Step] + ")"
			}
			if line != last {
				fmt.Fprintf(w, "%s  %s\n", time.Now().Format(time.TimeOnly), line)
				last = line
			}
			for _, v := range ro.Verdicts[min(verdicts, len(ro.Verdicts)):] {
				fmt.Fprintf(w, "%s  step %d analysis: %s\n", time.Now().Format(time.TimeOnly), v.Step+1, verdictLine(v))
			}
			verdicts = len(ro.Verdicts)
			if ro.Terminal {
				return ro, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the rollout of %s did not end within %s: follow it with fermion rollout status %s --watch", name, timeout, name)
		case <-time.After(pollInterval * 5):
		}
	}
}

// verdictLine sums a verdict up on one line: its result and the checks that did not pass.
func verdictLine(v v1.RolloutVerdict) string {
	var parts []string
	for _, ch := range v.Checks {
		if ch.Result != "pass" {
			parts = append(parts, fmt.Sprintf("%s %s: %s", ch.Check, ch.Result, ch.Reason))
		}
	}
	if len(parts) == 0 {
		return v.Result
	}
	return v.Result + " (" + strings.Join(parts, "; ") + ")"
}

// rolloutOutcome is the exit status of a rollout that ended: nil when it succeeded.
func rolloutOutcome(ro *v1.Rollout) error {
	if ro.Phase == "succeeded" {
		return nil
	}
	return fmt.Errorf("the rollout of %s to revision %d ended %s: %s; revision %d serves on every node (fermion rollout status %s)",
		ro.Deployment, ro.To.Number, ro.Phase, ro.Reason, ro.From.Number, ro.Deployment)
}

// cmdFlagsChanged reports which flags of c were given.
func cmdFlagsChanged(c *cobra.Command) func(string) bool {
	return func(name string) bool { return c.Flags().Changed(name) }
}

// rolloutFlagsFit refuses strategy flags given empty (--steps ""), which would read
// as absent and let the manifest's table apply instead of what was asked.
func rolloutFlagsFit(rf rollout.Flags, changed func(string) bool) error {
	for name, v := range map[string]string{"strategy": rf.Strategy, "steps": rf.Steps, "interval": rf.Interval,
		"sticky": rf.Sticky, "max-unavailable": rf.MaxUnavailable, "max-surge": rf.MaxSurge} {
		if changed(name) && v == "" {
			return fmt.Errorf("--%s is empty: give a value or leave the flag out", name)
		}
	}
	return nil
}
