package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
)

func newTokenCmd() *cobra.Command {
	var af apiFlags
	c := &cobra.Command{Use: "token", Short: "Create, list and revoke API and node join tokens (admin)"}
	af.add(c)

	var role, ttl, description string
	var createOut outputFlag
	create := &cobra.Command{
		Use:   "create --role ROLE",
		Short: "Create a token and print its secret (shown only once)",
		Long: `Create makes a token for the control plane's API or, with --role node, for an agent to
join with. Roles: admin (everything, including tokens), deployer (deployments, drains,
reads), viewer (reads only), node (joins an agent; no API access). The secret is printed
once; the control plane keeps only its hash.`,
		Example: `  fermion token create --role deployer --ttl 720h --description ci
  fermion token create --role node --ttl 1h`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := createOut.check(); err != nil {
				return err
			}
			if role == "" {
				return usageError{fmt.Errorf("--role is required: one of %s", strings.Join(v1.Roles, ", "))}
			}
			if !slices.Contains(v1.Roles, role) {
				return usageError{fmt.Errorf("--role %q: want one of %s", role, strings.Join(v1.Roles, ", "))}
			}
			if ttl != "" {
				d, err := time.ParseDuration(ttl)
				if err != nil || d <= 0 {
					return usageError{fmt.Errorf("--ttl %q: want a positive duration such as 24h or 90m", ttl)}
				}
			}
			ctx := c.Context()
			cl, err := af.client()
			if err != nil {
				return err
			}
			t, err := cl.CreateToken(ctx, v1.TokenRequest{Role: role, TTL: ttl, Description: description})
			if err != nil {
				return af.explain(ctx, err)
			}
			w := c.OutOrStdout()
			if createOut.json() {
				return createOut.print(w, t)
			}
			expires := "never"
			if t.Expires != nil {
				expires = formatTime(*t.Expires)
			}
			fmt.Fprintf(w, "token    %s\nid       %s\nrole     %s\nexpires  %s\n", t.Secret, t.ID, t.Role, expires)
			if t.Role == v1.RoleNode {
				// The join command needs the NATS URL; without it the token is still printed.
				if info, err := cl.Info(ctx); err == nil && len(info.NATS) > 0 {
					fmt.Fprintf(w, "join a node with:\n  fermion agent --server %s --token %s\n", info.NATS[0], t.Secret)
				}
			}
			return nil
		},
	}
	create.Flags().StringVar(&role, "role", "", "admin, deployer, viewer or node (required)")
	create.Flags().StringVar(&ttl, "ttl", "", "lifetime, a Go duration such as 24h (default: does not expire)")
	create.Flags().StringVar(&description, "description", "", "free text to recognise the token by")
	createOut.add(create)

	list := listVerb(&af, &cobra.Command{
		Use:   "list",
		Short: "List the tokens (without their secrets)",
	}, func(ctx context.Context, cl *client.Client) (*v1.TokenList, error) { return cl.ListTokens(ctx) },
		func(tw io.Writer, l *v1.TokenList) {
			fmt.Fprintln(tw, "ID\tROLE\tCREATED\tEXPIRES\tDESCRIPTION")
			for _, t := range l.Tokens {
				expires := "never"
				if t.Expires != nil {
					expires = formatTime(*t.Expires)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Role, formatTime(t.Created), expires, or(t.Description))
			}
		})

	revoke := af.nameVerb(&cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token; it stops working at once",
	}, func(ctx context.Context, cl *client.Client, id string) (string, error) {
		return "revoked token " + id, cl.RevokeToken(ctx, id)
	})
	c.AddCommand(create, list, revoke)
	return c
}
