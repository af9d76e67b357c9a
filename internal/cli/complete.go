package cli

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"fermion.dev/fermion/client"
)

// Dynamic shell completion: names of deployments, nodes, SLOs, policies and tokens,
// asked of the control plane the command would talk to (its --server, --token and
// --ca-file, else the environment and the saved context), as `fermion completion`'s
// scripts call `fermion __complete …` on Tab.

// completeTimeout bounds the API call behind a Tab: a slow or unreachable control
// plane must not hang the shell; then nothing is offered.
const completeTimeout = 2 * time.Second

// nameLister lists the names of one kind of resource.
type nameLister func(ctx context.Context, cl *client.Client) ([]string, error)

func listDeploymentNames(ctx context.Context, cl *client.Client) ([]string, error) {
	l, err := cl.ListDeployments(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range l.Deployments {
		out = append(out, d.Name)
	}
	return out, nil
}

func listNodeNames(ctx context.Context, cl *client.Client) ([]string, error) {
	l, err := cl.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range l.Nodes {
		out = append(out, n.Name)
	}
	return out, nil
}

func listSLONames(ctx context.Context, cl *client.Client) ([]string, error) {
	l, err := cl.ListSLOs(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range l.SLOs {
		out = append(out, s.Name)
	}
	return out, nil
}

func listPolicyNames(ctx context.Context, cl *client.Client) ([]string, error) {
	l, err := cl.ListPolicies(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range l.Policies {
		out = append(out, p.Name)
	}
	return out, nil
}

func listTokenIDs(ctx context.Context, cl *client.Client) ([]string, error) {
	l, err := cl.ListTokens(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range l.Tokens {
		out = append(out, t.ID)
	}
	return out, nil
}

// argCompletions maps a command path (without "fermion ") to what its one NAME
// argument names. A verb that takes a deployment or node name adds itself here.
var argCompletions = map[string]nameLister{
	"status":   listDeploymentNames,
	"history":  listDeploymentNames,
	"rollback": listDeploymentNames,
	// Rollouts (issue 15).
	"rollout status":  listDeploymentNames,
	"rollout promote": listDeploymentNames,
	"rollout abort":   listDeploymentNames,
	"rollout pause":   listDeploymentNames,
	"rollout resume":  listDeploymentNames,
	"delete":          listDeploymentNames,
	"top":             listDeploymentNames,
	"slowest":         listDeploymentNames,
	"instances":       listDeploymentNames,
	"nodes":           listNodeNames,
	"node drain":      listNodeNames,
	"node uncordon":   listNodeNames,
	"node remove":     listNodeNames,
	"slo status":      listSLONames,
	"slo delete":      listSLONames,
	"policy delete":   listPolicyNames,
	"token revoke":    listTokenIDs,
}

// flagCompletions maps flags, on every command that has them, to their lister.
var flagCompletions = map[string]nameLister{
	"deployment": listDeploymentNames,
	"node":       listNodeNames,
}

// addCompletions walks the command tree and attaches the listers above.
func addCompletions(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := strings.TrimPrefix(strings.TrimPrefix(c.CommandPath(), root.Name()), " ")
		if l, ok := argCompletions[path]; ok && c.ValidArgsFunction == nil {
			c.ValidArgsFunction = func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
				if len(args) > 0 {
					return nil, cobra.ShellCompDirectiveNoFileComp // one NAME only
				}
				return completeNames(c, l, toComplete)
			}
		}
		for name, l := range flagCompletions {
			if f := c.Flags().Lookup(name); f != nil && f.Value.Type() == "string" {
				c.RegisterFlagCompletionFunc(name, func(c *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
					return completeNames(c, l, toComplete)
				})
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// completeNames asks the control plane for names starting with prefix. Errors end in
// no suggestions (logged to $BASH_COMP_DEBUG_FILE when set), never in output the shell
// would print over the command line.
func completeNames(c *cobra.Command, list nameLister, prefix string) ([]string, cobra.ShellCompDirective) {
	af := apiFlags{}
	for name, dst := range map[string]*string{"server": &af.server, "token": &af.token, "ca-file": &af.caFile} {
		if f := c.Flag(name); f != nil {
			*dst = f.Value.String()
		}
	}
	cl, err := af.client()
	if err != nil {
		cobra.CompDebugln("complete: "+err.Error(), false)
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx := c.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, completeTimeout)
	defer cancel()
	names, err := list(ctx, cl)
	if err != nil {
		cobra.CompDebugln("complete: "+err.Error(), false)
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// CompletedCommands lists the commands whose NAME argument completes, for a test.
func CompletedCommands() []string {
	var out []string
	for p := range argCompletions {
		out = append(out, p)
	}
	return out
}
