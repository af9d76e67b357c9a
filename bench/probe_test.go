package bench

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
)

func BenchmarkInvokeMinimal(b *testing.B) {
	root := fermiontest.Root(b)
	m, _ := manifest.Load(filepath.Join(root, "examples/hello"))
	e, _ := sandbox.NewEngine(sandbox.EngineConfig{})
	f, err := e.Load(context.Background(), sandbox.SpecFromManifest(m, fermiontest.Guest(b, "examples/testdata/abi/minimal", true)))
	if err != nil {
		b.Fatal(err)
	}
	req := &sandbox.Request{ID: "x", Method: "GET", URI: "/hello", Host: "localhost",
		Header: http.Header{"User-Agent": {"bench"}, "Accept": {"*/*"}}}
	b.ReportAllocs()
	reportCPU(b, func() {
		if _, err := f.Invoke(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	})
}
