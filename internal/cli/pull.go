package cli

import (
	"crypto/ecdsa"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/oci"
)

type privateKey struct{ key *ecdsa.PrivateKey }

func loadPrivateKey(path string) (*privateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	k, err := artifact.ParsePrivateKey(b, passphrase())
	if err != nil {
		return nil, fmt.Errorf("%s: %w; set FERMION_PASSWORD (or COSIGN_PASSWORD) to the key's passphrase", path, err)
	}
	return &privateKey{k}, nil
}

// matchRepositoryUsage is the help of pull's and inspect's --match-repository.
const matchRepositoryUsage = "with --verify, also require the signature to name this repository (off: it binds the digest, so copies in mirrors and under other host names verify, as with cosign verify --key)"

// trustPolicy loads public keys; with any key given, a signature is required. match
// also requires the signature to name the repository pulled from.
func trustPolicy(paths []string, match bool) (artifact.TrustPolicy, error) {
	var pems [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return artifact.TrustPolicy{}, fmt.Errorf("read public key: %w", err)
		}
		pems = append(pems, b)
	}
	p, err := artifact.LoadTrustPolicy(pems, len(pems) > 0)
	p.MatchRepository = match
	return p, err
}

func newPullCmd() *cobra.Command {
	var rf registryFlags
	var verify []string
	var match bool
	var out string
	c := &cobra.Command{
		Use:   "pull REF",
		Short: "Pull an artifact, verify its digests and (with --verify) its signature, write the module",
		Long: `Pull fetches REF's manifest and config, checks every digest, and with --verify
requires a signature by one of the given public keys (cosign.pub files work) before it
downloads the module. Nothing unverified is written.`,
		Example: `  fermion pull localhost:5000/acme/hello:1.2.0 --verify signing.pub`,
		Args:    exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ref, err := oci.ParseRef(args[0])
			if err != nil {
				return usageError{err}
			}
			policy, err := trustPolicy(verify, match)
			if err != nil {
				return err
			}
			cl, err := rf.client()
			if err != nil {
				return err
			}
			cl.Progress = newProgress(c.ErrOrStderr()) // progress.go
			p, err := cl.Pull(c.Context(), ref, policy)
			if err != nil {
				return rf.hint(err)
			}
			if out == "" {
				out = p.Parsed.Config.Module.Digest.Encoded() + ".wasm"
				if name := appName(p); name != "" {
					out = name + ".wasm"
				}
			}
			if err := writeFileAtomic(out, p.Wasm, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "pulled %s\ndigest %s\n", ref, p.ManifestDigest)
			if p.Verified.Signed {
				fmt.Fprintf(c.OutOrStdout(), "verified signature by key %s\n", p.Verified.KeyID)
			} else {
				fmt.Fprintln(c.OutOrStdout(), "not signature-checked (no --verify key given)")
			}
			fmt.Fprintf(c.OutOrStdout(), "wrote %s (%d bytes)\n", out, len(p.Wasm))
			return nil
		},
	}
	rf.add(c)
	c.Flags().StringSliceVar(&verify, "verify", nil, "require a signature by this public key (repeatable)")
	c.Flags().BoolVar(&match, "match-repository", false, matchRepositoryUsage)
	c.Flags().StringVarP(&out, "output", "o", "", "module file to write (default APP.wasm)")
	return c
}
