package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
)

// buildGuest runs the manifest's build command (if any) and returns the module bytes.
// The command runs through the shell in the build's workdir with the build's env added
// to the current environment, and go flags that make the module reproducible
// (buildEnv); its output goes to out.
func buildGuest(ctx context.Context, m *manifest.Manifest, skipBuild bool, out io.Writer) ([]byte, error) {
	if b := m.Component.Build; b != nil && b.Command != "" && !skipBuild {
		dir := m.Dir
		if b.Workdir != "" {
			dir = b.Workdir
			if !filepath.IsAbs(dir) {
				dir = filepath.Join(m.Dir, dir)
			}
		}
		fmt.Fprintf(out, "building %s: %s\n", m.ID(), b.Command)
		shell, flag := "sh", "-c"
		if runtime.GOOS == "windows" {
			shell, flag = "cmd", "/C"
		}
		cmd := exec.CommandContext(ctx, shell, flag, b.Command)
		cmd.Dir = dir
		cmd.Env = buildEnv(b.Env) // GOFLAGS gains -trimpath -buildvcs=false (buildenv.go)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("build %s (%s in %s): %w; fix the build or run with --no-build", m.ID(), b.Command, dir, err)
		}
	}
	wasm, err := os.ReadFile(m.SourcePath())
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%s: component.source %s does not exist; build it first or add a [component.build] command", m.Path, m.SourcePath())
		}
		return nil, fmt.Errorf("read module: %w", err)
	}
	return wasm, nil
}

// buildOutput is where `fermion build` leaves the artifact: beside the manifest.
func buildOutput(m *manifest.Manifest) string { return filepath.Join(m.Dir, ".fermion", "artifact") }

// buildArtifact builds the guest, checks that the sandbox can run it, scans and
// packages it, and stores the artifact's three blobs under .fermion/artifact.
func buildArtifact(ctx context.Context, dir string, skipBuild bool, cacheDir string, log io.Writer) (*manifest.Manifest, *artifact.Artifact, error) {
	m, err := manifest.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	wasm, err := buildGuest(ctx, m, skipBuild, log)
	if err != nil {
		return nil, nil, err
	}
	// Again after the build command, which may have written into a files grant.
	if err := manifest.CheckGrants(m); err != nil {
		return nil, nil, err
	}
	e, err := sandbox.NewEngine(sandbox.EngineConfig{CacheDir: cacheDir, CompileWorker: compileWorker()})
	if err != nil {
		return nil, nil, err
	}
	defer e.Close(ctx)
	if len(wasm) >= progressMin {
		// Compiling a large module to check it takes seconds: say what is going on.
		fmt.Fprintf(log, "checking %s (%s): compiling it once (cached for the next build)\n", m.SourcePath(), formatBytes(int64(len(wasm))))
	}
	if _, err := e.Check(ctx, wasm, m.Component.ABI, m.Limits.Load); err != nil {
		return nil, nil, fmt.Errorf("%s: %s is not a module Fermion can run: %w", m.Path, m.SourcePath(), err)
	}
	a, err := artifact.Package(m, wasm, buildMeta(m.Dir))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", m.Path, err)
	}
	out := buildOutput(m)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, nil, err
	}
	for name, data := range map[string][]byte{"manifest.json": a.Manifest, "config.json": a.Config, "module.wasm": a.Layer} {
		if err := writeFileAtomic(filepath.Join(out, name), data, 0o644); err != nil {
			return nil, nil, err
		}
	}
	return m, a, nil
}

// buildMeta records where the build came from. Created is taken only from
// SOURCE_DATE_EPOCH, so that the same inputs give the same digest.
func buildMeta(dir string) artifact.Meta {
	var meta artifact.Meta
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		b, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	meta.Revision = git("rev-parse", "HEAD")
	if src := git("config", "--get", "remote.origin.url"); src != "" && !strings.Contains(src, "@") {
		meta.Source = src
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
			meta.Created = time.Unix(sec, 0).UTC()
		}
	}
	return meta
}

func newBuildCmd() *cobra.Command {
	var noBuild bool
	var cacheDir string
	c := &cobra.Command{
		Use:   "build [DIR]",
		Short: "Build the function and package it as an OCI artifact; print its digest",
		Long: `Build runs the manifest's build command, checks that the sandbox can run the module
(compiling it through the compilation cache), scans its imports against the manifest's
capabilities and packages an OCI artifact (config = normalised manifest and scan results,
layer = the module). The same inputs give the same digest; set SOURCE_DATE_EPOCH to
record a creation time. The artifact is written to DIR/.fermion/artifact.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			m, a, err := buildArtifact(c.Context(), dir, noBuild, cacheDir, c.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg, err := artifact.ParseConfig(a.Config)
			if err != nil {
				return fmt.Errorf("read the config just packaged: %w", err)
			}
			fmt.Fprintf(c.OutOrStdout(), "built %s\ndigest %s\nmodule %s (%d bytes, %s)\nwritten to %s\n",
				m.ID(), a.ManifestDigest, a.LayerDigest, len(a.Layer), cfg.Module.ABI, displayPath(buildOutput(m)))
			return nil
		},
	}
	c.Flags().BoolVar(&noBuild, "no-build", false, "do not run the build command; package the existing module")
	c.Flags().StringVar(&cacheDir, "cache-dir", defaultCacheDir(), "compilation cache directory (default under $FERMION_HOME when set)")
	return c
}
