// Package cptest starts control planes and simulated agents in-process for tests and
// benchmarks: a real server (embedded NATS, registry and API on loopback) and
// lightweight agents that speak the real agent protocol over NATS, hold leases and
// report assignments ready without running a sandbox.
package cptest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/oci"
)

// Plane is a running control-plane replica with its API and registry on loopback.
type Plane struct {
	*controlplane.Server
	API      string // http://127.0.0.1:port
	Registry string // 127.0.0.1:port
	Token    string // admin token
	apiSrv   *http.Server
	regSrv   *http.Server
}

// Start starts a single replica with fast lease timing unless cfg says otherwise.
// DataDir defaults to a temporary directory; the replica stops when the test ends.
func Start(t testing.TB, cfg controlplane.Config) *Plane {
	t.Helper()
	p, err := StartPlane(context.Background(), t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// StartPlane starts a replica (for benchmarks and harnesses without a testing.TB).
func StartPlane(ctx context.Context, dir string, cfg controlplane.Config) (*Plane, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = dir
	}
	if cfg.NATSListen == "" {
		cfg.NATSListen = "127.0.0.1:0"
	}
	if cfg.LeaseRenew == 0 {
		cfg.LeaseRenew, cfg.LeaseLost = 200*time.Millisecond, 2*time.Second
	}
	if cfg.LeaderTTL == 0 {
		cfg.LeaderTTL = 2 * time.Second
	}
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = time.Second
	}
	cfg.Registry = true
	regLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cfg.RegistryHost = regLn.Addr().String()
	s, err := controlplane.Start(ctx, cfg)
	if err != nil {
		regLn.Close()
		return nil, err
	}
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		regLn.Close()
		s.Close()
		return nil, err
	}
	p := &Plane{Server: s, API: "http://" + apiLn.Addr().String(), Registry: cfg.RegistryHost, Token: s.AdminToken(),
		apiSrv: &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second},
		regSrv: &http.Server{Handler: s.Registry(), ReadHeaderTimeout: 10 * time.Second}}
	go p.apiSrv.Serve(apiLn)
	go p.regSrv.Serve(regLn)
	return p, nil
}

// StopRegistry closes the registry's listener and connections: nodes can no longer
// pull (the control plane still resolves images in-process).
func (p *Plane) StopRegistry() { p.regSrv.Close() }

// Close stops the servers and the replica.
func (p *Plane) Close() {
	p.apiSrv.Close()
	p.regSrv.Close()
	p.Server.Close()
}

// PushExample packages examples/<name> (built once per test binary), with meta to vary
// its digest, pushes it to the plane's registry as <name>:<tag> and returns the image.
func (p *Plane) PushExample(t testing.TB, name, tag string, meta artifact.Meta) string {
	t.Helper()
	return p.PushGuest(t, "examples/"+name, name, tag, meta)
}

// PushGuest packages the guest in dir (relative to the repository root, built once per
// test binary, as a command module when its manifest says abi = "command", else as a
// reactor) with meta, pushes it as <repo>:<tag> and returns the image.
func (p *Plane) PushGuest(t testing.TB, dir, repo, tag string, meta artifact.Meta) string {
	t.Helper()
	m, err := manifest.Load(filepath.Join(fermiontest.Root(t), dir))
	if err != nil {
		t.Fatal(err)
	}
	a, err := artifact.Package(m, fermiontest.Guest(t, dir, m.Component.ABI != artifact.ABICommand), meta)
	if err != nil {
		t.Fatal(err)
	}
	return p.pushArtifact(t, a, repo, tag)
}

// pushArtifact pushes a to the plane's registry as <repo>:<tag> and returns the image.
func (p *Plane) pushArtifact(t testing.TB, a *artifact.Artifact, repo, tag string) string {
	t.Helper()
	image := p.Registry + "/" + repo + ":" + tag
	ref, err := oci.ParseRef(image)
	if err != nil {
		t.Fatal(err)
	}
	c := &oci.Client{Token: p.Token, HTTPClient: &http.Client{Timeout: 30 * time.Second}}
	if _, err := c.Push(context.Background(), ref, a); err != nil {
		t.Fatal(err)
	}
	return image
}

// NodeToken creates a node-role join token.
func (p *Plane) NodeToken(t testing.TB) string {
	t.Helper()
	tok, err := p.CreateToken(context.Background(), v1.RoleNode)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// WaitNodes waits until n nodes are in state.
func WaitNodes(t testing.TB, p *controlplane.Server, n int, state string, timeout time.Duration) {
	t.Helper()
	fermiontest.WaitFor(t, timeout, func() error {
		got := 0
		for _, node := range p.Nodes() {
			if node.State == state {
				got++
			}
		}
		if got != n {
			return errors.New("have " + strconv.Itoa(got) + " nodes " + state + ", want " + strconv.Itoa(n))
		}
		return nil
	})
}
