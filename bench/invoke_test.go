package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

func loadHello(b *testing.B, metrics *telemetry.Metrics) *sandbox.Function {
	b.Helper()
	return loadGuest(b, metrics, "examples/hello")
}

// loadGuest loads the Go guest package pkg (built once per test binary) with
// examples/hello's manifest, on an engine of its own.
func loadGuest(b *testing.B, metrics *telemetry.Metrics, pkg string) *sandbox.Function {
	b.Helper()
	root := fermiontest.Root(b)
	m, err := manifest.Load(filepath.Join(root, "examples/hello"))
	if err != nil {
		b.Fatal(err)
	}
	e, err := sandbox.NewEngine(sandbox.EngineConfig{CacheDir: filepath.Join(b.TempDir(), "cache"), Metrics: metrics})
	if err != nil {
		b.Fatal(err)
	}
	f, err := e.Load(context.Background(), sandbox.SpecFromManifest(m, fermiontest.Guest(b, pkg, true)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close(context.Background()); e.Close(context.Background()) })
	return f
}

// BenchmarkInvoke is one warm reactor call without HTTP: the sandbox's share of a request.
func BenchmarkInvoke(b *testing.B) {
	f := loadHello(b, nil)
	req := &sandbox.Request{ID: "x", Method: "GET", URI: "/hello", Host: "localhost",
		Header: http.Header{"User-Agent": {"bench"}, "Accept": {"*/*"}}}
	b.ReportAllocs()
	reportCPU(b, func() {
		if _, err := f.Invoke(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkGatewayServeHTTP is the gateway plus sandbox without sockets, telemetry on,
// against BenchmarkNativeServeHTTP as the baseline.
func BenchmarkGatewayServeHTTP(b *testing.B) {
	for _, tc := range []struct {
		name string
		on   bool
	}{{"telemetry=on", true}, {"telemetry=off", false}} {
		b.Run(tc.name, func(b *testing.B) {
			var m *telemetry.Metrics
			if tc.on {
				m = telemetry.NewMetrics("bench")
			}
			f := loadHello(b, m)
			g := gateway.New(gateway.Config{Metrics: m, Telemetry: tc.on})
			if err := g.SetRoutes([]gateway.Route{{Prefix: "/hello", Target: f}}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				r, cancel := serverRequest()
				w := httptest.NewRecorder()
				g.ServeHTTP(w, r)
				cancel()
				if w.Code != 200 {
					b.Fatal(w.Code)
				}
			}
		})
	}
}

func BenchmarkNativeServeHTTP(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("Hello from Fermion!\n"))
	})
	b.ReportAllocs()
	for b.Loop() {
		r, cancel := serverRequest()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		cancel()
	}
}

// serverRequest is a GET /hello whose context, as net/http's server gives its handlers,
// can be canceled (the client going away); cancel ends it, as the server does after the
// handler returns.
func serverRequest() (*http.Request, context.CancelFunc) {
	ctx, cancel := context.WithCancel(serverConnCtx)
	return httptest.NewRequestWithContext(ctx, "GET", "/hello", nil), cancel
}

// serverConnCtx stands for a connection's context, the parent of its requests'.
var serverConnCtx, _ = context.WithCancel(context.Background())

// BenchmarkGuestCall is a guest's own share of a request: wazero calling fermion_handle
// directly with a prepared request, host functions doing nothing, no sandbox around it.
// hello against Invoke, and minimal against InvokeMinimal, show what the sandbox adds;
// against the gateway's CPU profile under load, how much slower the same code runs there.
func BenchmarkGuestCall(b *testing.B) {
	for _, g := range guestCallGuests {
		b.Run(g.name, func(b *testing.B) { benchGuestCall(b, g.pkg, 0) })
	}
}

// BenchmarkGuestCallCold is BenchmarkGuestCall with 8 MiB of other memory written
// between calls, as a server's network stack and HTTP code do between a guest's
// requests: the guest's code, data and heap must come back from memory each time.
// Read guest-ns/call (the guest calls alone, each timed); ns/op includes the eviction.
func BenchmarkGuestCallCold(b *testing.B) {
	for _, g := range guestCallGuests {
		b.Run(g.name, func(b *testing.B) { benchGuestCall(b, g.pkg, 8<<20) })
	}
}

var guestCallGuests = []struct{ name, pkg string }{
	{"hello", "examples/hello"},
	{"hello-nethttp", "examples/testdata/hello-nethttp"},
	{"minimal", "examples/testdata/abi/minimal"},
}

// benchGuestCall calls the guest in pkg's handler in a loop, writing evict bytes of
// other memory before each call when evict > 0.
func benchGuestCall(b *testing.B, pkg string, evict int) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	nop := api.GoModuleFunc(func(context.Context, api.Module, []uint64) {})
	i32 := api.ValueTypeI32
	if _, err := rt.NewHostModuleBuilder(abi.HostModule).
		NewFunctionBuilder().WithGoModuleFunction(nop, []api.ValueType{i32, i32}, nil).Export(abi.HostResponse).
		NewFunctionBuilder().WithGoModuleFunction(nop, []api.ValueType{i32, i32}, []api.ValueType{i32}).Export(abi.HostHTTPSend).
		NewFunctionBuilder().WithGoModuleFunction(nop, []api.ValueType{i32, i32}, nil).Export(abi.HostHTTPTake).
		Instantiate(ctx); err != nil {
		b.Fatal(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, fermiontest.Guest(b, pkg, true),
		wazero.NewModuleConfig().WithStartFunctions(abi.ExportInitialize).WithSysNanotime().WithSysWalltime())
	if err != nil {
		b.Fatal(err)
	}
	enc := abi.AppendRequest(nil, &abi.Request{Method: "GET", URI: "/hello", Host: "localhost:8080", RemoteAddr: "127.0.0.1:5555",
		Headers: []abi.Header{{Name: "User-Agent", Value: "wrk"}, {Name: "X-Request-Id", Value: "0123456789abcdef0123456789abcdef"},
			{Name: "Traceparent", Value: "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"}}})
	var stack [1]uint64
	stack[0] = uint64(len(enc))
	if err := mod.ExportedFunction(abi.ExportBuf).CallWithStack(ctx, stack[:]); err != nil {
		b.Fatal(err)
	}
	mod.Memory().Write(uint32(stack[0]), enc)
	handle := mod.ExportedFunction(abi.ExportHandle)
	b.ReportAllocs()
	if evict == 0 {
		for b.Loop() {
			stack[0] = uint64(len(enc))
			if err := handle.CallWithStack(ctx, stack[:]); err != nil || stack[0] != abi.HandleOK {
				b.Fatal(err, stack[0])
			}
		}
		return
	}
	other := make([]byte, evict)
	var inGuest time.Duration
	calls := 0
	for b.Loop() {
		for i := 0; i < len(other); i += 64 { // one write per cache line
			other[i]++
		}
		stack[0] = uint64(len(enc))
		start := time.Now()
		err := handle.CallWithStack(ctx, stack[:])
		inGuest += time.Since(start)
		calls++
		if err != nil || stack[0] != abi.HandleOK {
			b.Fatal(err, stack[0])
		}
	}
	b.ReportMetric(float64(inGuest.Nanoseconds())/float64(calls), "guest-ns/call")
}
