package oci_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/artifact"
)

// cosignCLI runs the cosign binary against a test registry, with its own home and
// Docker config so that it neither reads nor writes the user's.
type cosignCLI struct {
	path string
	dir  string // working directory: key files are written and read here
	env  []string
}

const cosignPassword = "interop passphrase"

func newCosign(t *testing.T, registryHost string) *cosignCLI {
	t.Helper()
	path, err := exec.LookPath("cosign")
	if err != nil {
		t.Skip("cosign is not on PATH (go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5)")
	}
	home := t.TempDir()
	dockerConfig := filepath.Join(home, "docker")
	if err := os.MkdirAll(dockerConfig, 0o700); err != nil {
		t.Fatal(err)
	}
	auth, err := json.Marshal(map[string]any{"auths": map[string]any{
		registryHost: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("x:" + pushToken))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dockerConfig, "config.json"), auth, 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"HOME="+home, "DOCKER_CONFIG="+dockerConfig, "TUF_ROOT="+filepath.Join(home, "tuf"),
		"COSIGN_PASSWORD="+cosignPassword, "COSIGN_YES=true")
	return &cosignCLI{path: path, dir: t.TempDir(), env: env}
}

// run runs cosign and returns its combined output.
func (c *cosignCLI) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.path, args...)
	cmd.Dir, cmd.Env = c.dir, c.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("cosign %s (%s): %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), err)
	return out.String(), err
}

func (c *cosignCLI) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run(t, args...)
	if err != nil {
		t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// verify runs `cosign verify --key pub` on image and fails the test unless it succeeds
// and reports the digest.
func (c *cosignCLI) verify(t *testing.T, pub, image string) {
	t.Helper()
	out := c.must(t, "verify", "--key", pub, "--insecure-ignore-tlog=true", "--allow-insecure-registry", image)
	if d := image[strings.LastIndexByte(image, '@')+1:]; !strings.Contains(out, `"docker-manifest-digest":"`+d+`"`) {
		t.Fatalf("cosign verify output does not name %s:\n%s", d, out)
	}
}

// writeKeyPair writes k as Fermion writes key files: NAME.key (encrypted with
// cosignPassword) and NAME.pub.
func (c *cosignCLI) writeKeyPair(t *testing.T, name string, k *ecdsa.PrivateKey) (keyPath, pubPath string) {
	t.Helper()
	priv, err := artifact.MarshalPrivateKey(k, []byte(cosignPassword))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := artifact.MarshalPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPath, pubPath = filepath.Join(c.dir, name+".key"), filepath.Join(c.dir, name+".pub")
	if err := os.WriteFile(keyPath, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubPath, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return keyPath, pubPath
}

func loadPolicy(t *testing.T, pubPath string) artifact.TrustPolicy {
	t.Helper()
	b, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	p, err := artifact.LoadTrustPolicy([][]byte{b}, true)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCosignInterop checks that cosign and Fermion verify each other's signatures and
// use each other's keys, against the built-in registry.
func TestCosignInterop(t *testing.T) {
	reg := startRegistry(t)
	cosign := newCosign(t, reg.host)
	cl := newClient()
	ctx := context.Background()

	fermionKey := generateKey(t)
	fermionKeyPath, fermionPub := cosign.writeKeyPair(t, "fermion", fermionKey)
	_, strangerPub := cosign.writeKeyPair(t, "stranger", generateKey(t))
	cosign.must(t, "generate-key-pair")
	cosignKeyPath, cosignPub := filepath.Join(cosign.dir, "cosign.key"), filepath.Join(cosign.dir, "cosign.pub")

	// Each case signs its own artifact (a distinct manifest digest), so that no
	// signature from another case can make a verification pass.
	push := func(t *testing.T, repo string) (tagRef, image string) {
		t.Helper()
		a := helloArtifact(t, artifact.Meta{Revision: repo})
		byTag, byDigest := pushed(t, cl, reg.host, repo, "1.0.0", a)
		return byTag.String(), byDigest.String()
	}

	t.Run("cosign verifies a Fermion signature", func(t *testing.T) {
		tag, image := push(t, "interop/fermion-signed")
		sign(t, cl, parseRef(t, tag), parseRef(t, image).Digest, fermionKey)
		cosign.verify(t, fermionPub, image)
		if out, err := cosign.run(t, "verify", "--key", strangerPub, "--insecure-ignore-tlog=true", "--allow-insecure-registry", image); err == nil {
			t.Fatalf("cosign verify with an unrelated key succeeded:\n%s", out)
		}
	})

	t.Run("Fermion verifies a cosign signature", func(t *testing.T) {
		tag, image := push(t, "interop/cosign-signed")
		cosign.must(t, "sign", "--key", cosignKeyPath, "--tlog-upload=false", "--allow-insecure-registry", "-y", image)
		for _, ref := range []string{tag, image} {
			p, err := cl.Pull(ctx, parseRef(t, ref), loadPolicy(t, cosignPub))
			if err != nil {
				t.Fatalf("pull %s: %v", ref, err)
			}
			pub, _ := os.ReadFile(cosignPub)
			k, err := artifact.ParsePublicKey(pub)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Verified.Signed || p.Verified.KeyID != artifact.KeyID(k) {
				t.Fatalf("pull %s: verified = %+v, want key %s", ref, p.Verified, artifact.KeyID(k))
			}
		}
		if _, err := cl.Pull(ctx, parseRef(t, tag), loadPolicy(t, fermionPub)); !errors.Is(err, artifact.ErrUntrustedSignature) {
			t.Fatalf("pull of a cosign-signed artifact trusting another key: %v", err)
		}

		// Fermion appends its signature to the signature manifest cosign wrote: both
		// tools then see both signatures.
		sign(t, cl, parseRef(t, tag), parseRef(t, image).Digest, fermionKey)
		sigs, err := cl.Signatures(ctx, parseRef(t, tag), parseRef(t, image).Digest)
		if err != nil || len(sigs) != 2 {
			t.Fatalf("signatures after cosign and Fermion signed: %d, %v", len(sigs), err)
		}
		cosign.verify(t, cosignPub, image)
		cosign.verify(t, fermionPub, image)
		if _, err := cl.Pull(ctx, parseRef(t, tag), loadPolicy(t, fermionPub)); err != nil {
			t.Fatalf("pull trusting the Fermion key: %v", err)
		}
	})

	// A signature binds the manifest digest: a mirror made with cosign copy verifies
	// in both tools, and in Fermion only until it is asked to match repositories.
	t.Run("signatures travel with cosign copy", func(t *testing.T) {
		tag, image := push(t, "interop/origin")
		d := parseRef(t, image).Digest
		sign(t, cl, parseRef(t, tag), d, fermionKey)
		mirror := reg.host + "/interop/mirror:1.0.0"
		cosign.must(t, "copy", "--allow-insecure-registry", "--force", image, mirror)
		cosign.verify(t, fermionPub, reg.host+"/interop/mirror@"+d.String())
		p, err := cl.Pull(ctx, parseRef(t, mirror), loadPolicy(t, fermionPub))
		if err != nil {
			t.Fatalf("pull of a cosign copy: %v", err)
		}
		if p.ManifestDigest != d || p.Verified.KeyID != artifact.KeyID(&fermionKey.PublicKey) {
			t.Fatalf("pull of a cosign copy: digest %s, verified %+v", p.ManifestDigest, p.Verified)
		}
		strict := loadPolicy(t, fermionPub)
		strict.MatchRepository = true
		if _, err := cl.Pull(ctx, parseRef(t, mirror), strict); !errors.Is(err, artifact.ErrIdentityMismatch) {
			t.Fatalf("pull of a cosign copy matching repositories: %v, want %v", err, artifact.ErrIdentityMismatch)
		}
	})

	t.Run("Fermion signs with a key cosign generated", func(t *testing.T) {
		b, err := os.ReadFile(cosignKeyPath)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := artifact.ParsePrivateKey(b, []byte("wrong")); !errors.Is(err, artifact.ErrWrongPassphrase) {
			t.Fatalf("cosign.key with a wrong passphrase: %v", err)
		}
		k, err := artifact.ParsePrivateKey(b, []byte(cosignPassword))
		if err != nil {
			t.Fatalf("read cosign.key: %v", err)
		}
		tag, image := push(t, "interop/cosign-key")
		sign(t, cl, parseRef(t, tag), parseRef(t, image).Digest, k)
		cosign.verify(t, cosignPub, image)
	})

	t.Run("cosign signs with a key Fermion generated", func(t *testing.T) {
		tag, image := push(t, "interop/fermion-key")
		cosign.must(t, "sign", "--key", fermionKeyPath, "--tlog-upload=false", "--allow-insecure-registry", "-y", image)
		p, err := cl.Pull(ctx, parseRef(t, tag), loadPolicy(t, fermionPub))
		if err != nil {
			t.Fatal(err)
		}
		if p.Verified.KeyID != artifact.KeyID(&fermionKey.PublicKey) {
			t.Fatalf("verified = %+v", p.Verified)
		}
	})
}
