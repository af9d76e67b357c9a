package agent_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/oci"
)

// TestNodeTrustOtherName: an artifact signed under another name for its registry (here
// the proxy in front of it) runs on a node, since a signature binds the digest, unless
// the control plane tells the node to match repositories; the node keeps that setting
// for restarts.
func TestNodeTrustOtherName(t *testing.T) {
	for _, tc := range []struct {
		name  string
		match bool
	}{{"digest only", false}, {"repositories matched", true}} {
		t.Run(tc.name, func(t *testing.T) {
			reg := startRegistry(t)
			cp := startControlPlane(t, false)
			key, err := artifact.GenerateKey()
			if err != nil {
				t.Fatal(err)
			}
			pub, err := artifact.MarshalPublicKey(&key.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			cp.mu.Lock()
			cp.trusted, cp.match = []string{string(pub)}, tc.match
			cp.mu.Unlock()
			helloM, helloWasm := example(t, "hello")
			a, v := reg.pushApp(t, reg.host, "acme/hello", helloM, helloWasm)
			// Signed as the proxy's name; assigned under the registry's.
			signedAs, err := oci.ParseRef(reg.proxd + "/acme/hello:0.1.0")
			if err != nil {
				t.Fatal(err)
			}
			c := &oci.Client{Token: pushToken, HTTPClient: &http.Client{Timeout: 30 * time.Second}}
			if err := c.Sign(context.Background(), signedAs, a.ManifestDigest, key); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			n := startNode(t, cp, "n1", dir, joinToken)
			cp.assign("n1", v1.AssignmentSet{Revision: 1, Assignments: []v1.Assignment{assignment("web", "n1", 1, v)}})
			if tc.match {
				s := reported(t, cp, "n1", "web", v1.InstanceFailed, v, 1)
				if !strings.Contains(s.LastError, "different repository") {
					t.Fatalf("lastError %q, want the repository mismatch", s.LastError)
				}
				if r := fermiontest.RepeatedContext(s.LastError); r != "" {
					t.Fatalf("lastError %q names %q twice", s.LastError, r)
				}
				t.Logf("refused: %s", s.LastError)
			} else {
				reported(t, cp, "n1", "web", v1.InstanceReady, v, 1)
				waitFor(t, func() error { return serves(n.url+"/hello", hello1) })
			}
			var saved struct{ MatchRepository bool }
			b, err := os.ReadFile(filepath.Join(dir, "trust.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &saved); err != nil || saved.MatchRepository != tc.match {
				t.Fatalf("trust.json = %s (%v), want matchRepository %v", b, err, tc.match)
			}
		})
	}
}
