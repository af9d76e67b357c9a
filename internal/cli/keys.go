package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/atomicfile"
)

// passphrase reads the signing key passphrase the way cosign does: from
// FERMION_PASSWORD, else COSIGN_PASSWORD; unset means an empty passphrase.
func passphrase() []byte {
	if p, ok := os.LookupEnv("FERMION_PASSWORD"); ok {
		return []byte(p)
	}
	return []byte(os.Getenv("COSIGN_PASSWORD"))
}

func newKeysCmd() *cobra.Command {
	c := &cobra.Command{Use: "keys", Short: "Manage signing keys (cosign-compatible ECDSA P-256)"}
	var out string
	var force bool
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Generate a signing key pair: OUT.key (encrypted, cosign format) and OUT.pub",
		Long: `Generate writes an ECDSA P-256 key pair. The private key is encrypted with the
passphrase in FERMION_PASSWORD (or COSIGN_PASSWORD; empty when neither is set) in cosign's
format, so cosign can use it and Fermion can use keys cosign made.`,
		Example: `  FERMION_PASSWORD=… fermion keys generate --out signing`,
		Args:    exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			keyPath, pubPath := out+".key", out+".pub"
			if !force {
				for _, p := range []string{keyPath, pubPath} {
					if _, err := os.Stat(p); err == nil {
						return fmt.Errorf("%s exists; choose another --out or pass --force", p)
					}
				}
			}
			priv, err := artifact.GenerateKey()
			if err != nil {
				return err
			}
			keyPEM, err := artifact.MarshalPrivateKey(priv, passphrase())
			if err != nil {
				return err
			}
			pubPEM, err := artifact.MarshalPublicKey(&priv.PublicKey)
			if err != nil {
				return err
			}
			if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
				return err
			}
			if err := writeFileAtomic(pubPath, pubPEM, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "wrote %s (private, keep it secret) and %s\nkey id %s\n", keyPath, pubPath, artifact.KeyID(&priv.PublicKey))
			return nil
		},
	}
	gen.Flags().StringVar(&out, "out", "signing", "path prefix of the key files")
	gen.Flags().BoolVar(&force, "force", false, "overwrite existing key files")
	c.AddCommand(gen)
	return c
}

// writeFileAtomic replaces path with data, so a failure leaves nothing half-written.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	return atomicfile.Write(path, data, mode)
}
