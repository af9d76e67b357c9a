package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/telemetry"
)

// BenchmarkGatewayConn is the ABI-only guest served over loopback TCP, keep-alive, by
// the gateway's own server (Gateway.Serve: its limits, deadlines and connection cap)
// and, in the same run, by a bare wazero server (a plain http.Server calling the same
// guest from a pool, as fermion-bench's bare target does). The client is a raw HTTP/1.1
// loop on each of GOMAXPROCS connections, the same for every target, so the difference
// in cpu-ns/op between targets is the server's: what BenchmarkGatewayMinimal, which
// skips the socket, cannot show (deadlines, timers, connection tracking, flushes).
// Compare fermion-off with bare for issue 17's platform budget.
func BenchmarkGatewayConn(b *testing.B) {
	wasm := fermiontest.Guest(b, "examples/testdata/abi/minimal", true)
	for _, tc := range []struct {
		name  string
		serve func(b *testing.B) string // returns the server's address
	}{
		{"fermion-on", func(b *testing.B) string { return serveGateway(b, true) }},
		{"fermion-off", func(b *testing.B) string { return serveGateway(b, false) }},
		{"bare", func(b *testing.B) string { return serveBare(b, wasm) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			addr := tc.serve(b)
			b.ReportAllocs()
			start := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				c, err := newRawClient(addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer c.close()
				for pb.Next() {
					if err := c.get(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}

// serveGateway serves the minimal guest from a Gateway on a loopback listener until
// the benchmark ends.
func serveGateway(b *testing.B, on bool) string {
	cfg := gateway.Config{Telemetry: on}
	var m *telemetry.Metrics
	if on {
		m = telemetry.NewMetrics("bench")
		bw := telemetry.NewBufferedWriter(io.Discard, 200*time.Millisecond)
		b.Cleanup(func() { bw.Close() })
		logger, err := telemetry.NewLogger(bw, "info")
		if err != nil {
			b.Fatal(err)
		}
		cfg.Logger, cfg.Metrics = logger, m
		cfg.SLIs = sli.NewAggregator(sli.Config{Node: "bench", Start: time.Now()})
	}
	f := loadMinimal(b, m)
	g := gateway.New(cfg)
	if err := g.SetRoutes([]gateway.Route{{Prefix: "/hello", Target: f}}); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.Serve(ctx, ln) }()
	b.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// serveBare serves wasm the way fermion-bench's bare target does (bench/cmd/fermion-bench/bare.go):
// no gateway, sandbox limits, ids or telemetry.
func serveBare(b *testing.B, wasm []byte) string {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	b.Cleanup(func() { rt.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	type inst struct {
		mod    api.Module
		handle api.Function
		ctx    context.Context
		ptr    uint32
		stack  [1]uint64
		hdrs   []abi.Header
		req    []byte
		out    []byte
	}
	type key struct{}
	respond := api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
		in := ctx.Value(key{}).(*inst)
		p, _ := m.Memory().Read(uint32(stack[0]), uint32(stack[1]))
		in.out = append(in.out[:0], p...)
	})
	nop := api.GoModuleFunc(func(context.Context, api.Module, []uint64) {})
	i32 := api.ValueTypeI32
	if _, err := rt.NewHostModuleBuilder(abi.HostModule).
		NewFunctionBuilder().WithGoModuleFunction(respond, []api.ValueType{i32, i32}, nil).Export(abi.HostResponse).
		NewFunctionBuilder().WithGoModuleFunction(nop, []api.ValueType{i32, i32}, []api.ValueType{i32}).Export(abi.HostHTTPSend).
		NewFunctionBuilder().WithGoModuleFunction(nop, []api.ValueType{i32, i32}, nil).Export(abi.HostHTTPTake).
		Instantiate(ctx); err != nil {
		b.Fatal(err)
	}
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	const n = 4
	pool := make(chan *inst, n)
	for range n {
		mod, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").
			WithStartFunctions(abi.ExportInitialize).WithSysNanotime().WithSysWalltime())
		if err != nil {
			b.Fatal(err)
		}
		in := &inst{mod: mod, handle: mod.ExportedFunction(abi.ExportHandle)}
		in.ctx = context.WithValue(ctx, key{}, in)
		stack := []uint64{64 << 10}
		if err := mod.ExportedFunction(abi.ExportBuf).CallWithStack(ctx, stack); err != nil {
			b.Fatal(err)
		}
		in.ptr = uint32(stack[0])
		pool <- in
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := <-pool
		defer func() { pool <- in }()
		hs := in.hdrs[:0]
		for k, vs := range r.Header {
			for _, v := range vs {
				hs = append(hs, abi.Header{Name: k, Value: v})
			}
		}
		in.hdrs = hs
		in.req = abi.AppendRequest(in.req[:0], &abi.Request{Method: r.Method, URI: r.RequestURI, Host: r.Host, RemoteAddr: r.RemoteAddr, Headers: hs})
		if !in.mod.Memory().Write(in.ptr, in.req) {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		in.stack[0] = uint64(len(in.req))
		var res abi.Response
		if err := in.handle.CallWithStack(in.ctx, in.stack[:]); err != nil || abi.DecodeResponse(in.out, &res, false) != nil {
			http.Error(w, "guest failed", http.StatusInternalServerError)
			return
		}
		for _, kv := range res.Headers {
			w.Header()[kv.Name] = append(w.Header()[kv.Name], kv.Value)
		}
		w.WriteHeader(int(res.Status))
		w.Write(res.Body)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// rawClient sends GET /hello on one keep-alive connection and reads each response,
// with as little work of its own as HTTP/1.1 allows.
type rawClient struct {
	c net.Conn
	r *bufio.Reader
}

var rawRequest = []byte("GET /hello HTTP/1.1\r\nHost: bench\r\nUser-Agent: wrk\r\n\r\n")

func newRawClient(addr string) (*rawClient, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &rawClient{c: c, r: bufio.NewReaderSize(c, 4096)}, nil
}

func (c *rawClient) close() { c.c.Close() }

// get sends one request and reads its response to the end of the body.
func (c *rawClient) get() error {
	if _, err := c.c.Write(rawRequest); err != nil {
		return err
	}
	status, err := c.r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("status line %q", status)
	}
	n := -1
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			n, err = strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				return fmt.Errorf("content length %q: %w", v, err)
			}
		}
	}
	if n < 0 {
		return fmt.Errorf("response without Content-Length")
	}
	_, err = c.r.Discard(n)
	return err
}
