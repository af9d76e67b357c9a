package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/oci"
	"fermion.dev/fermion/internal/policy"
	"fermion.dev/fermion/internal/rollout"
)

// pollInterval is how often the verbs that wait read the control plane.
const pollInterval = 200 * time.Millisecond

func newDeployCmd() *cobra.Command {
	var af apiFlags
	var name, spread, selector, placement, key, cacheDir, registryToken, message string
	var rf rollout.Flags
	var nodes int
	var daemon, wait, noBuild bool
	var prefer []string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "deploy TARGET",
		Short: "Deploy a function directory or an image to the control plane and wait until it runs",
		Long: `Deploy asks the control plane to run TARGET on nodes.

TARGET is a directory holding fermion.toml (or the file itself): deploy builds it as
fermion build does, pushes it to the control plane's built-in registry as
<app name>:<app version> (signed with --key if given) and deploys that digest. Or TARGET
is an image reference (host:port/repository:tag or …@sha256:…) the control plane can pull.

The deployment is named after the app (or the repository's last path element) unless
--name says otherwise. Deploy reads the deployment and writes it only if it did not
change meanwhile, so of two deploys of the same app at once one fails with a conflict
rather than silently undoing the other. With --wait (the default) it then follows the
rollout, printing each node's progress, until every node runs the new version.

--strategy says how a new version of a running deployment reaches its nodes:
all-at-once (the default), rolling (--max-unavailable, --max-surge) or canary (--steps,
--interval, --sticky), judged against the running version on their SLIs and rolled back
by itself when it is worse (docs/rollouts.md). Without these flags the [strategy] table
of fermion.toml applies; any of them replaces the table. Node placement (binpack or
spread) is --placement; --strategy binpack|spread is still read as --placement.`,
		Example: `  fermion deploy . --nodes 3 --spread zone
  fermion deploy ./hello --daemon --strategy canary --steps 1node,10%,50%,100% --interval 1m
  fermion deploy ./hello --selector 'region == "eu-west"' --prefer tier=edge:10 --key signing.key
  fermion deploy 127.0.0.1:5000/acme/hello:1.2.0 --daemon --wait=false`,
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if len(message) > v1.MaxRevisionMessage {
				return usageError{fmt.Errorf("--message is %d bytes: keep it under %d", len(message), v1.MaxRevisionMessage)}
			}
			ctx := c.Context()
			out := c.OutOrStdout()
			if err := rolloutFlagsFit(rf, cmdFlagsChanged(c)); err != nil {
				return usageError{err}
			}
			switch rf.Strategy {
			case v1.StrategyBinpack, v1.StrategySpread:
				// --strategy was node placement before rollouts took the name.
				if placement != "" && placement != rf.Strategy {
					return usageError{fmt.Errorf("--strategy %s and --placement %s disagree: node placement is --placement now; --strategy takes a rollout strategy (all-at-once, rolling, canary)", rf.Strategy, placement)}
				}
				fmt.Fprintf(c.ErrOrStderr(), "note: --strategy %s is node placement, now --placement %s (--strategy takes a rollout strategy: all-at-once, rolling, canary)\n", rf.Strategy, rf.Strategy)
				placement, rf.Strategy = rf.Strategy, ""
			}
			var strategy *rollout.Spec
			if !rf.IsZero() {
				s, err := rollout.ParseFlags(rf)
				if err != nil {
					return usageError{err}
				}
				strategy = &s
			}
			spec := v1.DeploymentSpec{Daemon: daemon, Selector: selector, Spread: spread, Strategy: placement}
			if !daemon {
				spec.Nodes = nodes
			} else if c.Flags().Changed("nodes") {
				return usageError{errors.New("give either --nodes or --daemon, not both")}
			}
			prefs, err := parsePreferences(prefer)
			if err != nil {
				return usageError{err}
			}
			spec.Preferences = prefs
			// Check the flags before a build that may take a while.
			check := spec
			check.Image = "-"
			if e := check.Validate(); e != nil {
				return usageError{fmt.Errorf("%s: %s", specFlag(e.Field), e.Message)}
			}

			if timeout <= 0 {
				return usageError{fmt.Errorf("--timeout %s: must be positive", timeout)}
			}
			if selector != "" {
				if _, err := policy.CompileSelector(selector); err != nil {
					return usageError{fmt.Errorf("--selector: %v\nlabels are string variables: 'region == \"eu-west\" && tier != \"gpu\"'", err)}
				}
			}
			target := args[0]
			_, statErr := os.Stat(target)
			local := statErr == nil || looksLikePath(target)
			if local {
				if err := checkFunctionDir(target); err != nil {
					return err
				}
			}
			cl, err := af.client()
			if err != nil {
				return err
			}
			if spread != "" {
				warnSpread(ctx, cl, spread, c.ErrOrStderr())
			}

			if local {
				pushed, app, fromManifest, err := buildAndPush(ctx, c, &af, cl, target, noBuild, cacheDir, key, registryToken)
				if err != nil {
					return err
				}
				if strategy == nil {
					strategy = fromManifest // the [strategy] table, unless flags replaced it
				}
				spec.Image = pushed.Name() + "@" + pushed.Digest.String()
				if name == "" {
					name = app
				}
			} else {
				ref, err := oci.ParseRef(target)
				if err != nil {
					return usageError{fmt.Errorf("TARGET %s is neither a directory holding fermion.toml (%v) nor an image reference (%v)", target, statErr, err)}
				}
				if key != "" {
					return usageError{errors.New("--key signs what deploy builds; TARGET is an image: sign it when you push it")}
				}
				spec.Image = target
				if name == "" {
					name = path.Base(ref.Repo)
				}
			}
			if err := v1.ValidName("deployment", name); err != nil {
				return usageError{fmt.Errorf("%w; choose one with --name", err)}
			}
			if strategy != nil {
				w := rollout.ToAPI(*strategy)
				spec.Rollout = &w
			}

			cond := client.CreateOnly()
			cur, err := cl.GetDeployment(ctx, name)
			switch {
			case err == nil && cur.Deleting:
				return fmt.Errorf("deployment %s is being deleted: wait until it is gone ('fermion status %s' says not_found), or deploy under another --name", name, name)
			case err == nil && cur.Revision != 0:
				cond = client.IfMatch(cur.Revision)
			case err == nil:
				cond = client.Unconditional() // a server that gives no revision
			case !client.IsCode(err, v1.CodeNotFound):
				return af.explain(ctx, err)
			}
			d, created, err := cl.PutDeployment(ctx, name, spec, cond.WithMessage(message))
			if err != nil {
				return deployError(ctx, &af, name, cond, err)
			}
			verb := "updated"
			if created {
				verb = "created"
			}
			for _, w := range d.Warnings {
				fmt.Fprintf(c.ErrOrStderr(), "warning: %s\n", w)
			}
			fmt.Fprintf(out, "deployment %s %s (%sgeneration %d): %s\n", name, verb, revisionPrefix(d), d.Generation, describeVersion(d))
			if d.Placement.Message != "" {
				fmt.Fprintf(out, "placement: %s\n", d.Placement.Message)
			}
			if d.Stable != nil { // a rollout started (issue 15)
				fmt.Fprintf(out, "rollout started: revision %d → %d, %s %s; follow it with fermion rollout status %s --watch\n",
					d.Stable.Number, d.Change.Number, d.Spec.Rollout.Kind, strings.Join(d.Spec.Rollout.Steps, ","), name)
				if !wait {
					return nil
				}
				if !c.Flags().Changed("timeout") {
					timeout = time.Hour // a canary's steps take their intervals
				}
				ro, err := followRollout(ctx, cl, name, d.Change.Number, timeout, out)
				if err != nil {
					return af.explain(ctx, err)
				}
				if err := rolloutOutcome(ro); err != nil {
					return err
				}
				return waitConverged(ctx, &af, cl, name, d.Generation, timeout, out)
			}
			if !wait {
				return nil
			}
			return waitConverged(ctx, &af, cl, name, d.Generation, timeout, out)
		},
	}
	af.add(c)
	c.Flags().StringVar(&name, "name", "", "deployment name (default: the app's name or the repository's last path element)")
	c.Flags().IntVar(&nodes, "nodes", 1, "how many nodes run it")
	c.Flags().StringVarP(&message, "message", "m", "", "why: recorded in the revision this deploy makes (fermion history)")
	c.Flags().BoolVar(&daemon, "daemon", false, "run it on every node that matches (instead of --nodes)")
	c.Flags().StringVar(&spread, "spread", "", "spread the nodes across this topology label (zone, region)")
	c.Flags().StringVar(&selector, "selector", "", `CEL expression over node labels, such as 'region == "eu-west"'`)
	c.Flags().StringVar(&placement, "placement", "", "node resources: binpack (the default) or spread")
	c.Flags().StringVar(&rf.Strategy, "strategy", "", "how a new version reaches the nodes: all-at-once (default), rolling or canary (binpack and spread still mean --placement)")
	c.Flags().StringVar(&rf.Steps, "steps", "", "canary steps: 1node, 3nodes, 25%nodes, 1node@region=eu (node subsets), 10% (traffic weight), manual, pause; comma-separated")
	c.Flags().StringVar(&rf.Interval, "interval", "", "each canary step's analysis window or pause (1s–24h, default 1m)")
	c.Flags().StringVar(&rf.Sticky, "sticky", "", "keep a client on one side of a canary's weight split: header:NAME or cookie:NAME")
	c.Flags().StringVar(&rf.MaxUnavailable, "max-unavailable", "", "rolling: nodes switching at once, a count or a share (1, 25%)")
	c.Flags().StringVar(&rf.MaxSurge, "max-surge", "", "rolling: nodes running both versions at once, a count or a share")
	c.Flags().StringArrayVar(&prefer, "prefer", nil, "prefer nodes with label=value, scoring weight more (label=value:weight, weight in [-100, 100], default 1; repeatable)")
	c.Flags().StringVar(&key, "key", "", "sign what deploy builds with this private key (passphrase from FERMION_PASSWORD or COSIGN_PASSWORD)")
	c.Flags().BoolVar(&wait, "wait", true, "wait until every node runs the new version")
	c.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long --wait waits for the nodes (for a rollout it follows: 1h unless given)")
	c.Flags().BoolVar(&noBuild, "no-build", false, "do not run the build command; package the existing module")
	c.Flags().StringVar(&cacheDir, "cache-dir", defaultCacheDir(), "compilation cache directory (default under $FERMION_HOME when set)")
	c.Flags().StringVar(&registryToken, "registry-token", "", "token for pushing to the built-in registry (default $FERMION_REGISTRY_TOKEN, else the API token)")
	return c
}

// buildAndPush builds the function at target and pushes it to the control plane's
// registry as <app>:<version>. It returns the pushed reference, the app's name and
// its manifest's [strategy] (nil when absent).
func buildAndPush(ctx context.Context, c *cobra.Command, af *apiFlags, cl *client.Client, target string, noBuild bool, cacheDir, key, registryToken string) (oci.Ref, string, *rollout.Spec, error) {
	info, err := cl.Info(ctx)
	if err != nil {
		return oci.Ref{}, "", nil, af.explain(ctx, err)
	}
	if info.Registry == "" {
		return oci.Ref{}, "", nil, fmt.Errorf("the control plane at %s has no built-in registry to push %s to: push it to a registry yourself and deploy its reference", af.usedServer, target)
	}
	var priv *privateKey
	if key != "" {
		if priv, err = loadPrivateKey(key); err != nil {
			return oci.Ref{}, "", nil, err
		}
	}
	m, a, err := buildArtifact(ctx, target, noBuild, cacheDir, c.ErrOrStderr())
	if err != nil {
		return oci.Ref{}, "", nil, err
	}
	if registryToken == "" {
		registryToken = os.Getenv("FERMION_REGISTRY_TOKEN")
	}
	if registryToken == "" {
		registryToken = af.usedToken
	}
	// The registry is served beside the API, with the same certificate: over TLS when
	// the API is.
	pool, err := af.caPool()
	if err != nil {
		return oci.Ref{}, "", nil, err
	}
	oc := &oci.Client{Token: registryToken, RootCAs: pool}
	oc.Progress = newProgress(c.ErrOrStderr()) // progress.go
	oc.SetTLS(info.Registry, strings.HasPrefix(af.usedServer, "https://"))
	ref := oci.Ref{Registry: info.Registry, Repo: m.App.Name, Tag: m.App.Version}
	pushed, err := pushArtifact(ctx, oc, ref, a, priv, c.OutOrStdout())
	if errors.Is(err, oci.ErrNoToken) {
		err = fmt.Errorf("%w\npass --registry-token or set FERMION_REGISTRY_TOKEN", err)
	}
	if err != nil {
		return oci.Ref{}, "", nil, err // it names the push (or the signing) and ref already
	}
	return pushed, m.App.Name, m.Strategy, nil
}

// warnSpread warns when nodes have joined and none carries the --spread label: the
// scheduler treats spread as a preference, so the deploy would go ahead unspread, which a
// typo should not do silently. With no nodes yet, or nodes unreadable, it says nothing:
// nodes may join with the label later, and the deploy reports what is wrong with access.
func warnSpread(ctx context.Context, cl *client.Client, spread string, stderr io.Writer) {
	l, err := cl.ListNodes(ctx)
	if err != nil || len(l.Nodes) == 0 {
		return
	}
	labels := map[string]bool{}
	for _, n := range l.Nodes {
		if _, ok := n.Labels[spread]; ok {
			return
		}
		for k := range n.Labels {
			labels[k] = true
		}
	}
	known := sortedKeys(labels)
	fmt.Fprintf(stderr, "warning: --spread %s: none of the %s has label %s%s, so placements will not spread; labels the nodes have: %s\n",
		spread, v1.Count(len(l.Nodes), "node"), spread, didYouMean(spread, known), or(strings.Join(known, ", ")))
}

// parsePreferences parses --prefer label=value[:weight].
func parsePreferences(prefer []string) ([]v1.Preference, error) {
	var out []v1.Preference
	for _, p := range prefer {
		label, rest, ok := strings.Cut(p, "=")
		if !ok || label == "" {
			return nil, fmt.Errorf("--prefer %q: want label=value or label=value:weight", p)
		}
		value, weight := rest, 1.0
		if i := strings.LastIndex(rest, ":"); i >= 0 {
			w, err := strconv.ParseFloat(rest[i+1:], 64)
			if err != nil {
				return nil, fmt.Errorf("--prefer %q: weight %q is not a number", p, rest[i+1:])
			}
			value, weight = rest[:i], w
		}
		out = append(out, v1.Preference{Label: label, Value: value, Weight: weight})
	}
	return out, nil
}

// specFlag names the flag behind a spec field ("spec.preferences[1].weight").
func specFlag(field string) string {
	f := strings.TrimPrefix(field, "spec.")
	switch {
	case strings.HasPrefix(f, "preferences"):
		return "--prefer" + strings.TrimPrefix(f, "preferences")
	case f == "daemon":
		return "--daemon"
	case f == "strategy":
		return "--placement" // spec.strategy is node placement; --strategy is the rollout's
	}
	return "--" + f
}

// deployError explains a refused PUT.
func deployError(ctx context.Context, af *apiFlags, name string, cond client.Condition, err error) error {
	var e *v1.Error
	if !errors.As(err, &e) {
		return af.explain(ctx, err)
	}
	switch e.Code {
	case v1.CodeConflict:
		if cond == client.CreateOnly() {
			return fmt.Errorf("%w\ndeployment %s was created by someone else while this deploy ran; nothing was written: check 'fermion status %s' and deploy again", err, name, name)
		}
		return fmt.Errorf("%w\ndeployment %s changed while this deploy ran (another deploy won); nothing was written: check 'fermion status %s' and deploy again", err, name, name)
	case v1.CodeUnplaceable:
		return fmt.Errorf("cannot place %s: %s (%s)\nnothing was written: add or uncordon nodes, or relax --nodes, --selector or --spread", name, e.Message, e.Code)
	case v1.CodePolicyDenied:
		return fmt.Errorf("denied: %s (%s)\nan admission policy refused deployment %s; nothing was written: see 'fermion policy violations --since 1h'", e.Message, e.Code, name)
	case v1.CodeArtifact:
		return fmt.Errorf("%w\nthe control plane could not resolve, fetch or verify the image of %s", err, name)
	case v1.CodeBadRequest:
		if e.Field != "" {
			return usageError{fmt.Errorf("%w\nfix %s", err, specFlag(e.Field))}
		}
	}
	return af.explain(ctx, err)
}

// describeVersion is "repo@sha256:abc… (app 1.2.0)", or the spec's image while the
// version is not resolved.
func describeVersion(d *v1.Deployment) string {
	v := d.Version
	if v.Digest == "" {
		return d.Spec.Image
	}
	return fmt.Sprintf("%s@%s (%s %s)", v.Repository, shortDigest(v.Digest), v.App, v.Version)
}

// progress is what the wait loop reports about one node.
type progress struct {
	state, version, digest, lastError string
}

func nodeProgress(ns v1.NodeStatus) progress {
	p := progress{state: "waiting"}
	if ns.Desired != nil {
		p.version, p.digest = ns.Desired.Version, ns.Desired.Digest
	}
	if a := ns.Actual; a != nil {
		p.state, p.version, p.digest = a.State, a.Version, a.Digest
		if a.State == v1.InstanceFailed {
			p.lastError = a.LastError
		}
	}
	if ns.Desired == nil {
		p.state += " (leaving)"
	}
	return p
}

// waitConverged polls the deployment's status until every node runs generation gen,
// printing each node's progress as it changes.
func waitConverged(ctx context.Context, af *apiFlags, cl *client.Client, name string, gen int64, timeout time.Duration, out io.Writer) error {
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	seen := map[string]progress{}
	var last *v1.DeploymentStatus
	var lastErr error
	var placement string
	for {
		st, err := cl.DeploymentStatus(wctx, name)
		switch {
		case err == nil:
			last, lastErr = st, nil
			if g := st.Deployment.Generation; g > gen {
				return fmt.Errorf("deployment %s changed again while waiting (now generation %d, this deploy wrote %d): see 'fermion status %s'", name, g, gen, name)
			}
			if m := st.Deployment.Placement.Message; m != placement {
				placement = m
				if m != "" {
					fmt.Fprintf(out, "placement: %s\n", m)
				}
			}
			reportProgress(out, st, seen)
			if st.Converged && st.Deployment.Generation == gen && st.Deployment.Placement.ObservedGeneration >= gen {
				fmt.Fprintf(out, "converged: %d/%d nodes ready on %s in %s\n", st.Ready, st.Desired, describeVersion(&st.Deployment), time.Since(start).Round(100*time.Millisecond))
				return nil
			}
		case wctx.Err() != nil:
		case client.IsCode(err, v1.CodeUnavailable):
			lastErr = err // the control plane is electing a leader, say: keep polling
		default:
			return af.explain(ctx, err)
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("stopped waiting: %w; deployment %s goes on (fermion status %s)", ctx.Err(), name, name)
			}
			return notConverged(name, timeout, last, lastErr)
		case <-tick.C:
		}
	}
}

// reportProgress prints a line for every node whose progress changed since seen.
func reportProgress(out io.Writer, st *v1.DeploymentStatus, seen map[string]progress) {
	app := st.Deployment.Version.App
	if app == "" {
		app = st.Deployment.Name
	}
	width := 0
	for _, ns := range st.Nodes {
		width = max(width, len(ns.Node))
	}
	now := map[string]bool{}
	for _, ns := range st.Nodes {
		now[ns.Node] = true
		p := nodeProgress(ns)
		prev, ok := seen[ns.Node]
		if ok && prev == p {
			continue
		}
		from := "new"
		if ok {
			from = prev.state
		}
		seen[ns.Node] = p
		line := fmt.Sprintf("%-*s  %s → %s  %s %s %s", width, ns.Node, from, p.state, app, or(p.version), shortDigest(or(p.digest)))
		if p.lastError != "" {
			line += "  error: " + p.lastError
		}
		fmt.Fprintln(out, strings.TrimRight(line, " "))
	}
	var gone []string
	for n := range seen {
		if !now[n] {
			gone = append(gone, n)
		}
	}
	sort.Strings(gone)
	for _, n := range gone {
		fmt.Fprintf(out, "%-*s  %s → gone\n", width, n, seen[n].state)
		delete(seen, n)
	}
}

// notConverged is the error of a wait that timed out: how far it got and the nodes'
// last errors.
func notConverged(name string, timeout time.Duration, st *v1.DeploymentStatus, lastErr error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "deployment %s did not converge within %s", name, timeout)
	if st == nil {
		if lastErr != nil {
			fmt.Fprintf(&b, ": no status read: %v", lastErr)
		}
		return errors.New(b.String())
	}
	fmt.Fprintf(&b, ": %d/%d nodes ready", st.Ready, st.Desired)
	if m := st.Deployment.Placement.Message; m != "" {
		fmt.Fprintf(&b, "\n  placement: %s", m)
	}
	for _, ns := range st.Nodes {
		if a := ns.Actual; a != nil && a.LastError != "" {
			fmt.Fprintf(&b, "\n  %s: %s: %s", ns.Node, a.State, a.LastError)
		}
	}
	if lastErr != nil {
		fmt.Fprintf(&b, "\n  last poll: %v", lastErr)
	}
	fmt.Fprintf(&b, "\nthe rollout goes on; follow it with 'fermion status %s' or 'fermion events --deployment %s'", name, name)
	return errors.New(b.String())
}
