package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/oci"
)

func newUpCmd() *cobra.Command {
	var so serverOptions
	var ao agentOptions
	var example string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "up",
		Short: "Run everything in one process: control plane, registry, an agent and the example function",
		Long: `Up starts a control plane (API, built-in registry, embedded NATS JetStream), joins
one agent to it and deploys the example function, all in this process on loopback, and
keeps serving until interrupted. It saves the API URL and admin token as the CLI's
context, so fermion deploy, status, nodes and events work from another terminal.

The example (--example, default examples/hello when it exists) is built, pushed to the
built-in registry and deployed on every node. State lives under --data and survives a
restart.`,
		Example: `  fermion up
  curl localhost:8080/hello
  fermion status hello; fermion nodes; fermion events --follow`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			out := c.OutOrStdout()
			logger, done, err := serviceLogger(c.ErrOrStderr(), so.logLevel)
			if err != nil {
				return err
			}
			defer done()
			if so.data == "" {
				p, err := contextPath()
				if err != nil {
					return err
				}
				so.data = filepath.Join(filepath.Dir(p), "up")
			}
			skipped := ""
			if !c.Flags().Changed("example") {
				if _, err := os.Stat(filepath.Join(example, "fermion.toml")); err != nil {
					skipped, example = example, ""
				}
			}
			// The agent's addresses too, before the server writes its state.
			if err := checkListens("agent-listen", ao.listen, "agent-admin-listen", ao.adminListen); err != nil {
				return err
			}
			if _, err := ao.sliConfig(); err != nil { // hook: SLI flags, checked before the server writes
				return err
			}
			if c.Flags().Changed("example") && example != "" {
				if err := checkFunctionDir(example); err != nil {
					return err
				}
			}
			srv, err := startServerRole(ctx, so, logger.With("role", "server"), out)
			if err != nil {
				return err
			}
			defer srv.close()
			if !c.Flags().Changed("agent-data") {
				ao.data = filepath.Join(so.data, "agent")
			}
			ao.adminAuto = !c.Flags().Changed("agent-admin-listen")
			if !c.Flags().Changed("agent-name") {
				ao.name = "local"
			}
			if !c.Flags().Changed("agent-label") {
				ao.labels = []string{"region=local", "zone=local", "tier=edge"}
			}
			ao.servers = strings.Split(srv.cp.NATSURL(), ",")
			if _, err := os.Stat(filepath.Join(ao.data, "node.json")); err != nil {
				if ao.token, err = srv.cp.CreateToken(ctx, v1.RoleNode); err != nil {
					return err
				}
			}
			actx, stopAgent := context.WithCancel(ctx)
			defer stopAgent()
			ag, err := startAgentRole(actx, ao, logger.With("role", "agent"), out)
			if err != nil {
				return err
			}
			if example != "" {
				if err := deployExample(ctx, srv, example, timeout, c.ErrOrStderr(), out); err != nil {
					if ctx.Err() != nil {
						stopAgent()
						ag.wait()
						return err
					}
					// The control plane is what up is for; an example it refuses (say,
					// after the README's require-signed walkthrough) must not take it down.
					fmt.Fprintf(out, "no example deployed: %s: %v\n", example, err)
					if client.IsCode(err, v1.CodePolicyDenied) {
						fmt.Fprintln(out, "an admission policy refused it: see fermion policy list and fermion policy violations, or sign it with fermion deploy --key")
					}
				}
			} else if skipped != "" {
				fmt.Fprintf(out, "no example deployed: %s is not here (run from the repository's root, or pass --example DIR); deploy a function with fermion deploy DIR\n", skipped)
			}
			fmt.Fprintln(out, "ready: try fermion status, fermion nodes, fermion events --follow (Ctrl-C stops)")
			<-ctx.Done()
			stopAgent()
			err = ag.wait()
			fmt.Fprintln(out, "stopped")
			return err
		},
	}
	so.flags(c, "")
	c.Flags().Lookup("data").DefValue = ""
	c.Flags().Lookup("data").Value.Set("")
	c.Flags().Lookup("data").Usage = "data directory (default $FERMION_HOME/up, FERMION_HOME defaulting to ~/.fermion)"
	c.Flags().Lookup("log-level").DefValue = "warn"
	c.Flags().Lookup("log-level").Value.Set("warn")
	ao.flags(c, "agent-")
	c.Flags().Lookup("agent-name").Usage = "the agent's node name (default local)"
	c.Flags().Lookup("agent-label").Usage = "the agent's labels, key=value (repeat; default region=local, zone=local, tier=edge)"
	c.Flags().Lookup("agent-data").Usage = "the agent's data directory (default <data>/agent)"
	c.Flags().StringVar(&example, "example", "examples/hello", "function directory to build and deploy on start (empty: none)")
	c.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for the example to run")
	return c
}

// deployExample builds the function in dir, pushes it to the built-in registry and
// deploys it on every node, waiting until it answers.
func deployExample(ctx context.Context, srv *serverRole, dir string, timeout time.Duration, log, out io.Writer) error {
	m, a, err := buildArtifact(ctx, dir, false, "", log)
	if err != nil {
		return err
	}
	oc := &oci.Client{Token: srv.cp.AdminToken(), PlainHTTP: true}
	ref := oci.Ref{Registry: srv.registry, Repo: m.App.Name, Tag: m.App.Version}
	// Version tags are immutable, and up's state outlives the build that pushed the
	// example: after a pull of newer sources or another Go toolchain the same version
	// builds another digest. Keep the earlier build and tag this one by its digest, so
	// a restart serves what the directory holds now.
	if cur, err := oc.Resolve(ctx, ref); err == nil && cur.ManifestDigest != a.ManifestDigest {
		ref.Tag = m.App.Version + "-" + a.ManifestDigest.Encoded()[:12]
		fmt.Fprintf(out, "%s:%s holds an earlier build of the example (%s); pushing this one as %s:%s\n",
			m.App.Name, m.App.Version, shortDigest(cur.ManifestDigest.String()), m.App.Name, ref.Tag)
	}
	pushed, err := pushArtifact(ctx, oc, ref, a, nil, io.Discard)
	if err != nil {
		return fmt.Errorf("push the example: %w", err)
	}
	cl, err := client.New(srv.apiURL, srv.cp.AdminToken())
	if err != nil {
		return err
	}
	spec := v1.DeploymentSpec{Image: pushed.Name() + "@" + pushed.Digest.String(), Daemon: true}
	d, _, err := cl.PutDeployment(ctx, m.App.Name, spec, client.Unconditional())
	if err != nil {
		return fmt.Errorf("deploy the example: %w", err)
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		st, err := cl.DeploymentStatus(wctx, d.Name)
		if err == nil && st.Converged && st.Deployment.Generation >= d.Generation {
			break
		}
		if wctx.Err() != nil {
			if err == nil {
				err = errors.New(lastErrors(st))
			}
			return fmt.Errorf("the example did not start within %s: %w (fermion status %s)", timeout, err, d.Name)
		}
		time.Sleep(pollInterval)
	}
	fmt.Fprintf(out, "deployed %s %s (%s) in %s\n", m.App.Name, m.App.Version, shortDigest(pushed.Digest.String()), time.Since(start).Round(10*time.Millisecond))
	nodes, err := cl.ListNodes(ctx)
	if err != nil {
		return err
	}
	for _, n := range nodes.Nodes {
		for _, r := range m.Routes {
			fmt.Fprintf(out, "%s answering at %s%s\n", m.App.Name, n.GatewayURL, r.Path)
		}
	}
	return nil
}

func lastErrors(st *v1.DeploymentStatus) string {
	var errs []string
	for _, n := range st.Nodes {
		if n.Actual != nil && n.Actual.LastError != "" {
			errs = append(errs, n.Node+": "+n.Actual.LastError)
		}
	}
	if len(errs) == 0 {
		return fmt.Sprintf("%d/%d nodes ready", st.Ready, st.Desired)
	}
	return strings.Join(errs, "; ")
}
