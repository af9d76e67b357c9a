package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/oci"
)

// registryFlags are shared by the verbs that talk to a registry.
type registryFlags struct {
	token     string
	plainHTTP bool
	caFile    string
}

func (f *registryFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.token, "token", "", "registry token (default $FERMION_REGISTRY_TOKEN)")
	c.Flags().BoolVar(&f.plainHTTP, "plain-http", false, "use http:// for a non-loopback registry (a loopback one is asked once whether it speaks TLS)")
	c.Flags().StringVar(&f.caFile, "ca-file", "", "PEM CA certificates to trust besides the system's, for a registry with a private CA (or FERMION_CA_FILE)")
}

// hint adds what to do to the errors a registry user can fix from the command line.
func (f *registryFlags) hint(err error) error {
	if errors.Is(err, oci.ErrNoToken) {
		return fmt.Errorf("%w\npass --token or set FERMION_REGISTRY_TOKEN", err)
	}
	if errors.Is(err, oci.ErrCorrupt) {
		return fmt.Errorf("%w\nthe blob is damaged (in the registry's storage, or altered on the way): pulling again will not help; push the artifact again", err)
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return fmt.Errorf("%w\nthe registry's certificate is not signed by a CA this machine trusts: pass the CA with --ca-file or FERMION_CA_FILE", err)
	}
	return err
}

func (f *registryFlags) client() (*oci.Client, error) {
	t := f.token
	if t == "" {
		t = os.Getenv("FERMION_REGISTRY_TOKEN")
	}
	pool, err := loadCA(f.caFile)
	if err != nil {
		return nil, err
	}
	return &oci.Client{Token: t, PlainHTTP: f.plainHTTP, RootCAs: pool}, nil
}

// pushArtifact pushes a built artifact to ref, signs it with priv when not nil, reports
// both on out and returns ref with the pushed manifest's digest.
func pushArtifact(ctx context.Context, cl *oci.Client, ref oci.Ref, a *artifact.Artifact, priv *privateKey, out io.Writer) (oci.Ref, error) {
	return pushArtifactFrom(ctx, cl, ref, a, "", priv, out)
}

// pushArtifactFrom is pushArtifact with the module streamed from layerFile when it is
// not "" (a.Layer may then be nil), so a large module is not held in memory.
func pushArtifactFrom(ctx context.Context, cl *oci.Client, ref oci.Ref, a *artifact.Artifact, layerFile string, priv *privateKey, out io.Writer) (oci.Ref, error) {
	var desc ocispec.Descriptor
	var err error
	if layerFile != "" {
		desc, err = cl.PushLayerFile(ctx, ref, a, layerFile)
	} else {
		desc, err = cl.Push(ctx, ref, a)
	}
	if err != nil {
		return oci.Ref{}, err
	}
	fmt.Fprintf(out, "pushed %s\ndigest %s\n", ref, desc.Digest)
	if priv != nil {
		if err := cl.Sign(ctx, ref, desc.Digest, priv.key); err != nil {
			return oci.Ref{}, fmt.Errorf("sign %s: %w", ref, err)
		}
		fmt.Fprintf(out, "signed with key %s (tag %s)\n", artifact.KeyID(&priv.key.PublicKey), artifact.SignatureTag(desc.Digest))
	}
	ref.Digest = desc.Digest
	return ref, nil
}

func newPushCmd() *cobra.Command {
	var rf registryFlags
	var dir, signKey, cacheDir string
	var noBuild bool
	c := &cobra.Command{
		Use:   "push REF",
		Short: "Build, package and push the function to an OCI registry, optionally signing it",
		Long: `Push builds the function in --dir (as fermion build does), pushes the artifact to REF
(host:port/repository:tag) and, with --sign, pushes a cosign-compatible signature of the
manifest digest (tag sha256-<hex>.sig), verifiable with 'cosign verify --key'.
Version tags are immutable in Fermion's registry: push a new version instead of moving one.`,
		Example: `  fermion push localhost:5000/acme/hello:1.2.0 --sign signing.key`,
		Args:    exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ref, err := oci.ParseRef(args[0])
			if err != nil {
				return usageError{err}
			}
			if ref.Digest != "" {
				return usageError{fmt.Errorf("push to a tag, not a digest: %s", args[0])}
			}
			var priv = (*privateKey)(nil)
			if signKey != "" {
				priv, err = loadPrivateKey(signKey)
				if err != nil {
					return err
				}
			}
			m, a, err := buildArtifact(c.Context(), dir, noBuild, cacheDir, c.ErrOrStderr())
			if err != nil {
				return err
			}
			cl, err := rf.client()
			if err != nil {
				return err
			}
			cl.Progress = newProgress(c.ErrOrStderr()) // progress.go
			// The build wrote the module next to the manifest: stream it from there and
			// let the bytes in memory go.
			layerFile := filepath.Join(buildOutput(m), "module.wasm")
			a.Layer = nil
			_, err = pushArtifactFrom(c.Context(), cl, ref, a, layerFile, priv, c.OutOrStdout())
			return rf.hint(err)
		},
	}
	rf.add(c)
	c.Flags().StringVar(&dir, "dir", ".", "function directory (holding fermion.toml)")
	c.Flags().StringVar(&signKey, "sign", "", "sign with this private key (passphrase from FERMION_PASSWORD or COSIGN_PASSWORD)")
	c.Flags().BoolVar(&noBuild, "no-build", false, "do not run the build command; package the existing module")
	c.Flags().StringVar(&cacheDir, "cache-dir", defaultCacheDir(), "compilation cache directory (default under $FERMION_HOME when set)")
	return c
}
