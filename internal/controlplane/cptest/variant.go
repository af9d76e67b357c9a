package cptest

import (
	"path/filepath"
	"testing"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
)

// FlakyGuest is the fault guest rollout tests deploy in versions: one build, with the
// app version and its env (FAIL_EVERY, TRAP_ON_START, SLOW_MS) set per push.
const FlakyGuest = "examples/testdata/faults/flaky"

// PushVariant packages the reactor guest in dir (built once per test binary) with its
// manifest's app version set to version and env merged into its granted env, pushes
// it as <repo>:<version> and returns the image. One build gives versions that differ
// in behaviour and in the version the SLIs are keyed by, as a rollout needs.
func (p *Plane) PushVariant(t testing.TB, dir, repo, version string, env map[string]string) string {
	t.Helper()
	m, err := manifest.Load(filepath.Join(fermiontest.Root(t), dir))
	if err != nil {
		t.Fatal(err)
	}
	m.App.Version = version
	if m.Capabilities.Env == nil {
		m.Capabilities.Env = map[string]string{}
	}
	for k, v := range env {
		m.Capabilities.Env[k] = v
	}
	a, err := artifact.Package(m, fermiontest.Guest(t, dir, true), artifact.Meta{Revision: version})
	if err != nil {
		t.Fatal(err)
	}
	return p.pushArtifact(t, a, repo, version)
}
