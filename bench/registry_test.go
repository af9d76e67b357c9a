package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/prometheus/client_golang/prometheus"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/nodecache"
	"fermion.dev/fermion/internal/oci"
	"fermion.dev/fermion/internal/registry"
)

// moduleSize is the reference module: 2 MB.
const moduleSize = 2 << 20

// bigModule is a valid WASI command module padded to size with a custom section; seq
// makes each one distinct so pushes are not deduplicated.
func bigModule(size int, seq uint64) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	b = append(b, 1, 4, 1, 0x60, 0, 0) // type: () -> ()
	b = append(b, 3, 2, 1, 0)          // one function
	b = append(b, 5, 3, 1, 0, 1)       // memory min 1
	// exports: "memory" (mem 0), "_start" (func 0)
	b = append(b, 7, 19, 2, 6, 'm', 'e', 'm', 'o', 'r', 'y', 2, 0, 6, '_', 's', 't', 'a', 'r', 't', 0, 0)
	b = append(b, 10, 4, 1, 2, 0, 0x0b) // code: empty body
	pad := size - len(b) - 12
	payload := make([]byte, pad)
	rand.Read(payload)
	binary.LittleEndian.PutUint64(payload, seq)
	name := "pad"
	sec := append([]byte{byte(len(name))}, name...)
	sec = append(sec, payload...)
	b = append(b, 0)
	b = appendLEB(b, uint32(len(sec)))
	return append(b, sec...)
}

func appendLEB(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func benchManifest(b *testing.B) *manifest.Manifest {
	m, err := manifest.Parse("fermion.toml", []byte(`manifest_version = 1
[app]
name = "big"
version = "1.0.0"
[component]
source = "big.wasm"
[[routes]]
path = "/big"
`), "")
	if err != nil {
		b.Fatal(err)
	}
	return m
}

type target struct {
	name  string
	host  string
	token string
}

// registries starts Fermion's registry (JetStream, synced writes) and
// go-containerregistry's in-memory reference registry, both on loopback.
func registries(b *testing.B) []target {
	b.Helper()
	ctx := context.Background()
	eng, err := engine.Start(ctx, engine.Config{DataDir: b.TempDir(), SyncAlways: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(eng.Close)
	reg, err := registry.New(ctx, eng.JetStream(), registry.Config{PushTokens: []string{"t"}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { reg.Close() })
	fs := httptest.NewServer(reg)
	b.Cleanup(fs.Close)
	gs := httptest.NewServer(ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0))))
	b.Cleanup(gs.Close)
	host := func(url string) string { return strings.TrimPrefix(url, "http://") }
	return []target{{"fermion", host(fs.URL), "t"}, {"ggcr-inmemory", host(gs.URL), ""}}
}

// BenchmarkPush pushes a distinct 2 MB artifact per iteration; the reference registry
// in the same run is the baseline.
func BenchmarkPush(b *testing.B) {
	m := benchManifest(b)
	for _, t := range registries(b) {
		b.Run(t.name, func(b *testing.B) {
			cl := &oci.Client{Token: t.token}
			arts := make([]*artifact.Artifact, 0, 64)
			seq := uint64(0)
			next := func() *artifact.Artifact {
				seq++
				a, err := artifact.Package(m, bigModule(moduleSize, seq), artifact.Meta{})
				if err != nil {
					b.Fatal(err)
				}
				return a
			}
			b.SetBytes(moduleSize)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				a := next()
				arts = append(arts[:0], a)
				ref, _ := oci.ParseRef(fmt.Sprintf("%s/bench/push:%d", t.host, i))
				b.StartTimer()
				if _, err := cl.Push(context.Background(), ref, a); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPull pulls (and verifies digests of) one 2 MB artifact per iteration.
func BenchmarkPull(b *testing.B) {
	m := benchManifest(b)
	a, err := artifact.Package(m, bigModule(moduleSize, 1), artifact.Meta{})
	if err != nil {
		b.Fatal(err)
	}
	for _, t := range registries(b) {
		b.Run(t.name, func(b *testing.B) {
			cl := &oci.Client{Token: t.token}
			ref, _ := oci.ParseRef(t.host + "/bench/pull:1.0.0")
			if _, err := cl.Push(context.Background(), ref, a); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(moduleSize)
			for b.Loop() {
				if _, err := cl.Pull(context.Background(), ref, artifact.TrustPolicy{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify is the verification work of one pull without the network: the
// signature against a trust policy and the module's digest.
func BenchmarkVerify(b *testing.B) {
	m := benchManifest(b)
	a, err := artifact.Package(m, bigModule(moduleSize, 1), artifact.Meta{})
	if err != nil {
		b.Fatal(err)
	}
	priv, _ := artifact.GenerateKey()
	payload, sig, err := artifact.Sign(priv, "reg.test/bench", a.ManifestDigest)
	if err != nil {
		b.Fatal(err)
	}
	policy := artifact.TrustPolicy{Keys: []*ecdsa.PublicKey{&priv.PublicKey}, RequireSignature: true}
	sigs := []artifact.Signature{{Payload: payload, Base64: sig}}
	b.Run("signature", func(b *testing.B) {
		for b.Loop() {
			if _, err := policy.Verify("reg.test/bench", a.ManifestDigest, sigs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("module-digest", func(b *testing.B) {
		b.SetBytes(moduleSize)
		desc := a.LayerDescriptor()
		for b.Loop() {
			if err := artifact.VerifyLayer(desc, a.Layer); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCacheHit is a node cache hit: the module read from disk and re-hashed.
func BenchmarkCacheHit(b *testing.B) {
	m := benchManifest(b)
	a, err := artifact.Package(m, bigModule(moduleSize, 1), artifact.Meta{})
	if err != nil {
		b.Fatal(err)
	}
	targets := registries(b)
	t := targets[0]
	cl := &oci.Client{Token: t.token}
	ref, _ := oci.ParseRef(t.host + "/bench/cache:1.0.0")
	if _, err := cl.Push(context.Background(), ref, a); err != nil {
		b.Fatal(err)
	}
	src := &oci.CacheSource{Client: cl}
	c, err := nodecache.Open(nodecache.Config{Dir: b.TempDir(), MaxBytes: 64 << 20, Fetcher: src, Verifier: src,
		Metrics: prometheus.NewRegistry(), Now: time.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	nref := nodecache.Ref{Repo: t.host + "/bench/cache", Digest: a.ManifestDigest.String()}
	if _, err := c.Get(context.Background(), nref); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(moduleSize)
	for b.Loop() {
		e, err := c.Get(context.Background(), nref)
		if err != nil || !e.FromCache {
			b.Fatal(err)
		}
	}
}
