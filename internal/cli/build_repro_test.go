package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

var moduleLine = regexp.MustCompile(`(?m)^module (sha256:[0-9a-f]{64}) `)

// TestBuildIsReproducible builds one scaffolded function in two directories of
// different paths and depths, each a git checkout of the same commit, one clean and
// one dirty (an untracked file, which Go's VCS stamping counts as modified): the
// module and the artifact have the same digests. Without -trimpath the directories'
// paths, and without -buildvcs=false the dirty flag, would end up in the module.
func TestBuildIsReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("two wasm builds of a scaffolded function: not in -short")
	}
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not on PATH: the build's VCS state cannot be varied")
	}
	t.Setenv("FERMION_HOME", t.TempDir())
	t.Setenv("SOURCE_DATE_EPOCH", "")
	work := t.TempDir()
	dirs := []string{filepath.Join(work, "clean", "hello"), filepath.Join(work, "a", "deeper", "dirty", "hello")}
	for _, dir := range dirs {
		mustRun(t, "new", "hello", "--dir", dir)
		// The same commit in both: fixed author, committer and dates, no user config.
		for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"commit", "-q", "-m", "hello"}} {
			cmd := exec.Command(git, args...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
				"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_AUTHOR_DATE=2026-01-01T00:00:00Z",
				"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_COMMITTER_DATE=2026-01-01T00:00:00Z")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("git %v in %s: %v\n%s", args, dir, err, out)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dirs[1], "NOTES"), []byte("not committed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir() // shared: the second build's check compiles nothing
	var digests, modules []string
	for _, dir := range dirs {
		out := mustRun(t, "build", dir, "--cache-dir", cache)
		digests = append(digests, match(t, digestLine, out))
		modules = append(modules, match(t, moduleLine, out))
	}
	if modules[0] != modules[1] {
		t.Errorf("the same sources built in %s (clean) and %s (dirty) give modules %s and %s", dirs[0], dirs[1], modules[0], modules[1])
	}
	if digests[0] != digests[1] {
		t.Errorf("the same commit built clean and dirty gives artifacts %s and %s", digests[0], digests[1])
	}
}
