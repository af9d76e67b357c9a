package controlplane_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/oci"
)

// TestAdmissionSignatureUnderAnotherName: an image signed as localhost:PORT/hello and
// deployed as 127.0.0.1:PORT/hello is admitted as signed (a signature binds the digest),
// unless the server matches repositories (--trust-match-repository).
func TestAdmissionSignatureUnderAnotherName(t *testing.T) {
	key, err := artifact.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := artifact.MarshalPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		match bool
	}{{"digest only", false}, {"repositories matched", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			p := cptest.Start(t, controlplane.Config{TrustedKeys: [][]byte{pub}, TrustedKeyNames: []string{"release"},
				RequireSigned: true, TrustMatchRepository: tc.match})
			c, err := client.New(p.API, p.Token)
			if err != nil {
				t.Fatal(err)
			}
			a, err := cptest.JoinSimAgent(ctx, p.NATSURL(), p.NodeToken(t), "edge-1", v1.Register{
				Capacity: v1.Resources{MemoryBytes: 4 << 30, MilliCPU: 2000, Instances: 64}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(a.Close)
			cptest.WaitNodes(t, p.Server, 1, v1.NodeReady, 10*time.Second)

			image := p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
			_, port, err := net.SplitHostPort(p.Registry)
			if err != nil {
				t.Fatal(err)
			}
			oc := &oci.Client{Token: p.Token, HTTPClient: &http.Client{Timeout: 30 * time.Second}}
			ref, err := oci.ParseRef(image)
			if err != nil {
				t.Fatal(err)
			}
			resolved, err := oc.Resolve(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			alias, err := oci.ParseRef("localhost:" + port + "/hello:1.0.0")
			if err != nil {
				t.Fatal(err)
			}
			if err := oc.Sign(ctx, alias, resolved.ManifestDigest, key); err != nil {
				t.Fatal(err)
			}

			d, _, err := c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Nodes: 1}, client.CreateOnly())
			if tc.match {
				if !client.IsCode(err, v1.CodeArtifact) || !strings.Contains(err.Error(), "different repository") {
					t.Fatalf("deploy of %s signed as %s, matching repositories: %v; want an artifact error", image, alias, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("deploy of %s signed as %s: %v", image, alias, err)
			}
			if !d.Version.Signed || d.Version.Signer != "release" {
				t.Fatalf("admitted version %+v, want signed by release", d.Version)
			}
		})
	}
}
