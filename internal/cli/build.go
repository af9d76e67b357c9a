package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"fermion.dev/fermion/internal/manifest"
)

// buildGuest runs the manifest's build command (if any) and returns the module bytes.
// The command runs through the shell in the build's workdir with the build's env added
// to the current environment; its output goes to out.
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
		cmd.Env = os.Environ()
		for k, v := range b.Env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
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
