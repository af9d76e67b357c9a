// Command fermion-bench measures Fermion's data-plane budgets (DESIGN.md) and prints
// markdown rows for bench/RESULTS.md. Every number is paired with a baseline measured
// in the same run, because these machines are noisy:
//
//	gateway    warm throughput and latency of examples/hello through the gateway vs a
//	           native net/http handler returning the same body; telemetry on vs off;
//	           -minimal and -bare add an ABI-only guest and a bare wazero prototype
//	           (bare.go, bench/internal/bare), which split the cost between the Go guest and the platform;
//	           -rust adds examples/hello-rust, the Rust SDK's hello (rust.go);
//	           -ladder adds Fermion's layers to bare wazero one at a time (ladder.go);
//	           -split-cores puts the servers on one CPU and wrk on another;
//	           -counters adds per-request system calls, context switches, goroutines,
//	           allocations and GC cycles (counters.go); -only runs the named targets;
//	           -cpuprofile-target profiles one or several of them
//	coldstart  compile (empty cache, on-disk cache), instantiate and guest init, p50/p99;
//	           the thread's CPU and page faults per new instance and the GC cycles, which
//	           say whether a tail is the code, the kernel or the collector; -cpuprofile
//	           profiles the snapshot rounds
//	memory     RSS per warm instance and idle RSS with one function loaded
//	cmdmemory  RSS that N concurrent 64 MiB command runs add, and what is left after
//	guestcalls guest functions called per request (where a guest spends its time: wasm
//	           has no sampling profiler, so count calls with a function listener), and
//	           the guest's thread CPU per request under the compiler (guestcpu.go); Go
//	           packages or Rust crates (examples/hello-rust)
//	fleet      1,000 simulated agents against one control-plane replica: join, daemon
//	           convergence vs a 10-agent fleet, server CPU and memory while the leases
//	           renew, CPU per heartbeat vs a bare NATS request/reply (fleet.go)
//	clientlimits a node under a 2,000-connection flood and 500 slow clients: a normal
//	           client's latency vs alone, the node's RSS vs idle (clientlimits.go)
//	bigblob    a 1 GiB blob pushed and pulled through the built-in registry, registry
//	           and client in processes of their own, RSS of each sampled from /proc,
//	           time vs the same bytes over loopback HTTP without storage (bigblob.go)
//
// Load is generated on loopback only, bounded by -duration per run (fleet: by -window
// and -timeout per phase).
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/bench/internal/bare"
	"fermion.dev/fermion/internal/agent"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/telemetry"
	"fermion.dev/fermion/internal/threadusage"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: fermion-bench gateway|coldstart|memory|cmdmemory|guestcalls|fleet|autoscale|clientlimits|bigblob [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gateway":
		err = gatewayBench(os.Args[2:])
	case "coldstart":
		err = coldStartBench(os.Args[2:])
	case "memory":
		err = memoryBench(os.Args[2:])
	case "guestcalls":
		err = guestCalls(os.Args[2:])
	case "fleet":
		err = fleetBench(os.Args[2:])
	case "autoscale":
		err = autoscaleBench(os.Args[2:])
	case "cmdmemory":
		err = cmdMemoryBench(os.Args[2:])
	case "fleet-agents": // the child process of fleet
		err = fleetAgents(os.Args[2:])
	case "clientlimits":
		err = clientLimitsBench(os.Args[2:])
	case "clientlimits-node": // the child process of clientlimits
		err = clientLimitsNode(os.Args[2:])
	case "bigblob":
		err = bigBlobBench(os.Args[2:])
	case "bigblob-registry": // the registry process of bigblob
		err = bigBlobRegistry(os.Args[2:])
	case "bigblob-client": // the client process of bigblob
		err = bigBlobClient(os.Args[2:])
	default:
		err = fmt.Errorf("unknown benchmark %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fermion-bench:", err)
		os.Exit(1)
	}
}

func root() (string, error) {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run from inside the repository")
		}
		dir = parent
	}
}

func helloManifest(r string) (*manifest.Manifest, []byte, error) {
	m, err := manifest.Load(filepath.Join(r, "examples/hello"))
	if err != nil {
		return nil, nil, err
	}
	wasm, err := fermiontest.BuildGuest(r, "examples/hello", true)
	return m, wasm, err
}

// helloBody is what examples/hello answers with GREETING unset.
const helloBody = "Hello from Fermion!\n"

type target struct {
	name  string
	url   string
	close func()
}

func gatewayBench(args []string) error {
	fs := flag.NewFlagSet("gateway", flag.ExitOnError)
	duration := fs.Duration("duration", 5*time.Second, "load per run")
	warmup := fs.Duration("warmup", 3*time.Second, "load per target before the rounds, so every server (bare wazero's growing guest memories included) is measured in its steady state")
	conns := fs.Int("conns", 16, "concurrent connections")
	rounds := fs.Int("rounds", 3, "rounds; each runs every target once, interleaved, round k starting k targets further on")
	client := fs.String("client", "wrk", "load generator: wrk (if on PATH) or go")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the first telemetry-on round (with -minimal, of the ABI-only guest's) to this file")
	profTarget := fs.String("cpuprofile-target", "", "profile these targets instead (names as printed, separated by \";\", e.g. \"fermion, ABI-only, tel. off;bare wazero, ABI-only guest\"); with more than one, each profile goes to the -cpuprofile name with the target's name added")
	minimal := fs.Bool("minimal", false, "add targets serving examples/testdata/abi/minimal (ABI only, no SDK): through Fermion with telemetry on, and bare")
	nethttp := fs.Bool("nethttp", false, "add a target serving examples/testdata/hello-nethttp (hello's handler on the net/http SDK) through Fermion with telemetry on")
	bare := fs.Bool("bare", false, "add targets serving each guest from a bare wazero prototype (no gateway, sandbox limits or telemetry)")
	useTLS := fs.Bool("tls", false, "add targets over HTTPS with a self-signed ECDSA P-256 certificate: native net/http, and Fermion with telemetry on (keep-alive connections, so each pays its handshake once)")
	rust := fs.Bool("rust", false, "add targets serving examples/hello-rust (the Rust SDK) through Fermion with telemetry on and off, and bare with -bare (rust.go)")
	weighted := fs.Bool("weighted", false, "add a target serving hello as two versions at 50/50 (a canary weight split) through Fermion with telemetry on, compared with one version (split.go)")
	only := fs.String("only", "", "run only these targets (names as printed, separated by \";\"): for profiling a pair; the budgets whose targets did not run are left out")
	counters := fs.Bool("counters", false, "also print, per target, what a request costs besides CPU time: user and system CPU, system calls, context switches, goroutines, allocations and GC cycles (counters.go)")
	ladder := fs.Bool("ladder", false, "add the ladder: the ABI-only guest served by bare wazero, then with the gateway's server configuration, the gateway, and the full data plane added one at a time (telemetry off), and print what each layer costs per request (ladder.go)")
	split := fs.Bool("split-cores", false, "run every server on CPU 0 and wrk on CPU 1, so the load generator never takes the servers' core (Linux, wrk and taskset)")
	fs.BoolVar(&requestLog.All, "request-log-all", false, "write a request log line for every request (an agent's --request-log-all); by default the targets with telemetry on log as an agent does by default, sampled above telemetry.DefaultRequestLogRate lines per second")
	fs.Parse(args)
	if *client == "wrk" {
		if _, err := exec.LookPath("wrk"); err != nil {
			fmt.Fprintln(os.Stderr, "wrk not on PATH; using the Go load client")
			*client = "go"
		}
	}
	wrkCPU := -1
	if *split {
		if *client != "wrk" {
			return fmt.Errorf("-split-cores needs wrk: the Go load client runs in the servers' process")
		}
		if _, err := exec.LookPath("taskset"); err != nil {
			return fmt.Errorf("-split-cores needs taskset (util-linux) to place wrk: %w", err)
		}
		if runtime.NumCPU() < 2 {
			return fmt.Errorf("-split-cores needs two CPUs; this machine has %d", runtime.NumCPU())
		}
		if err := pinProcess(0); err != nil {
			return err
		}
		runtime.GOMAXPROCS(1)
		wrkCPU = 1
	}
	r, err := root()
	if err != nil {
		return err
	}
	m, wasm, err := helloManifest(r)
	if err != nil {
		return err
	}
	// Warm throughput: one prewarmed instance per connection, so no request waits for a
	// slot or a new instance (those paths are measured by coldstart).
	m.Scaling.MinWarm = *conns
	m.Scaling.MaxInstances = *conns
	m.Limits.MaxConcurrency = *conns

	native, err := nativeTarget("native net/http", "", "")
	if err != nil {
		return err
	}
	logFile, err := os.CreateTemp("", "fermion-bench-log-")
	if err != nil {
		return err
	}
	defer os.Remove(logFile.Name())
	on, err := fermionTarget("fermion (telemetry on)", m, wasm, true, logFile, "", "")
	if err != nil {
		return err
	}
	off, err := fermionTarget("fermion (telemetry off)", m, wasm, false, logFile, "", "")
	if err != nil {
		return err
	}
	targets := []target{native, on, off}
	var nativeTLS, onTLS target
	if *useTLS {
		dir, err := os.MkdirTemp("", "fermion-bench-tls-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		certFile, keyFile, err := selfSigned(dir)
		if err != nil {
			return err
		}
		if nativeTLS, err = nativeTarget("native net/http, HTTPS", certFile, keyFile); err != nil {
			return err
		}
		if onTLS, err = fermionTarget("fermion (telemetry on), HTTPS", m, wasm, true, logFile, certFile, keyFile); err != nil {
			return err
		}
		targets = append(targets, nativeTLS, onTLS)
	}
	if *nethttp {
		nw, err := fermiontest.BuildGuest(r, "examples/testdata/hello-nethttp", true)
		if err != nil {
			return err
		}
		nt, err := fermionTarget("fermion, hello on net/http SDK", m, nw, true, logFile, "", "")
		if err != nil {
			return err
		}
		targets = append(targets, nt)
	}
	var minOff, bareMin string // target names, when they run
	if *minimal {
		// The same platform with a guest that only speaks the ABI (no SDK, no net/http):
		// what the gateway and sandbox cost without the Go guest's own work.
		mw, err := fermiontest.BuildGuest(r, "examples/testdata/abi/minimal", true)
		if err != nil {
			return err
		}
		mt, err := fermionTarget("fermion, ABI-only guest", m, mw, true, logFile, "", "")
		if err != nil {
			return err
		}
		// Telemetry off: the platform's own share, to hold against bare wazero serving
		// the same guest (issue 17's budget, ≥ 0.95).
		mtOff, err := fermionTarget("fermion, ABI-only, tel. off", m, mw, false, logFile, "", "")
		if err != nil {
			return err
		}
		minOff = mtOff.name
		targets = append(targets, mt, mtOff)
		if *bare {
			bt, err := bareTarget("bare wazero, ABI-only guest", mw, *conns)
			if err != nil {
				return err
			}
			bareMin = bt.name
			targets = append(targets, bt)
		}
	}
	if *ladder { // ladder.go
		mw, err := fermiontest.BuildGuest(r, "examples/testdata/abi/minimal", true)
		if err != nil {
			return err
		}
		lt, err := ladderTargets(m, mw, *conns, logFile)
		if err != nil {
			return err
		}
		targets = append(targets, lt...)
	}
	if *bare {
		bt, err := bareTarget("bare wazero, hello", wasm, *conns)
		if err != nil {
			return err
		}
		targets = append(targets, bt)
	}
	var weightedName string
	if *weighted { // split.go
		wt, err := splitTarget("fermion, 50/50 split (tel. on)", m, wasm, logFile)
		if err != nil {
			return err
		}
		weightedName = wt.name
		targets = append(targets, wt)
	}
	if *rust { // rust.go
		rt, err := rustTargets(r, m, *bare, *conns, logFile)
		if err != nil {
			return err
		}
		targets = append(targets, rt...)
	}
	defer func() {
		for _, t := range targets {
			t.close()
		}
	}()
	if *only != "" {
		var keep []target
		for _, n := range strings.Split(*only, ";") {
			i := slices.IndexFunc(targets, func(t target) bool { return t.name == n })
			if i < 0 {
				return fmt.Errorf("-only: no target %q in this run (check the flags that add it, and the name as printed)", n)
			}
			keep = append(keep, targets[i])
		}
		for _, t := range targets {
			if !slices.ContainsFunc(keep, func(k target) bool { return k.name == t.name }) {
				t.close()
			}
		}
		targets = keep
	}
	for _, t := range targets { // check bodies and warm up
		if err := check(t.url); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		if _, err := load(*client, wrkCPU, t.url, *conns, *warmup); err != nil {
			return err
		}
	}
	results := map[string][]loadResult{}
	profNames := []string{on.name}
	if *minimal {
		profNames = []string{"fermion, ABI-only guest"}
	}
	if *profTarget != "" {
		profNames = strings.Split(*profTarget, ";")
		for _, n := range profNames {
			if !slices.ContainsFunc(targets, func(t target) bool { return t.name == n }) {
				return fmt.Errorf("-cpuprofile-target: no target %q in this run (check the flags that add it, and the name as printed)", n)
			}
		}
	}
	profiled := func(t target, round int) bool {
		return *cpuprofile != "" && round == 0 && slices.Contains(profNames, t.name)
	}
	for i := 0; i < *rounds; i++ {
		// Each round starts one target further on: with a fixed order, a target would
		// always run at the same place in the round (native always first, just after the
		// heaviest target), and what the machine carries over from one target to the
		// next (GC work, caches, the scheduler's placement) would bias the same ratios in
		// every round; rotated, it lands on each target in turn.
		for j := range targets {
			t := targets[(i+j)%len(targets)]
			if profiled(t, i) {
				f, err := os.Create(profileFile(*cpuprofile, t.name, len(profNames) > 1))
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
			}
			cpu0 := cpuTime()
			c0 := readCounters()
			res, err := load(*client, wrkCPU, t.url, *conns, *duration)
			if *client == "wrk" && res.rps > 0 {
				res.cpuPerReq = time.Duration(float64(cpuTime()-cpu0) / (res.rps * duration.Seconds()))
				res.counters = readCounters().perRequest(c0, res.rps*duration.Seconds())
			}
			if profiled(t, i) {
				pprof.StopCPUProfile()
			}
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			results[t.name] = append(results[t.name], res)
			fmt.Fprintf(os.Stderr, "round %d %-26s %8.0f req/s p50 %7.3f ms p99 %7.3f ms server CPU %5.1f µs/req\n", i+1, t.name, res.rps, ms(res.p50), ms(res.p99), us(res.cpuPerReq))
		}
	}
	// Ratios are taken within each round, where the targets ran seconds apart, and the
	// median of those reported: on a machine shared with other work, load comes and goes
	// between rounds, and ratios of per-target medians would mix different rounds.
	roundRatio := func(name, base string, f func(r, b loadResult) float64) float64 {
		var rs []float64
		for i := range min(len(results[name]), len(results[base])) { // -only may leave either out
			if v := f(results[name][i], results[base][i]); v > 0 {
				rs = append(rs, v)
			}
		}
		if len(rs) == 0 {
			return 0
		}
		sort.Float64s(rs)
		return rs[len(rs)/2]
	}
	rpsRatio := func(r, b loadResult) float64 { return r.rps / b.rps }
	// spread formats the lowest and highest per-round throughput ratio of name to base.
	spread := func(name, base string) string {
		lo, hi := 0.0, 0.0
		for i := range min(len(results[name]), len(results[base])) {
			v := rpsRatio(results[name][i], results[base][i])
			if i == 0 || v < lo {
				lo = v
			}
			if i == 0 || v > hi {
				hi = v
			}
		}
		return fmt.Sprintf(" (rounds %.3f–%.3f)", lo, hi)
	}
	cpuRatio := func(r, b loadResult) float64 {
		if r.cpuPerReq <= 0 {
			return 0
		}
		return float64(b.cpuPerReq) / float64(r.cpuPerReq)
	}
	type row struct {
		name      string
		rps, cpu  float64
		x         loadResult
		cpuPerReq time.Duration
	}
	var rows []row
	for _, t := range targets { // before median() and medianCPU() reorder the rounds
		rows = append(rows, row{name: t.name, rps: roundRatio(t.name, native.name, rpsRatio), cpu: roundRatio(t.name, native.name, cpuRatio)})
	}
	onOff := roundRatio(on.name, off.name, rpsRatio)
	for i := range rows {
		rows[i].x = median(slices.Clone(results[rows[i].name]))
		rows[i].cpuPerReq = medianCPU(slices.Clone(results[rows[i].name]))
	}
	placement := "servers and client share the CPUs"
	if *split {
		placement = "servers on CPU 0, wrk on CPU 1"
	}
	fmt.Printf("\nclient %s, %d connections, %d rounds × %s per target, GOMAXPROCS %d, %s\n\n", *client, *conns, *rounds, *duration, runtime.GOMAXPROCS(0), placement)
	fmt.Println("| target | req/s (median) | ratio vs native (median of rounds) | p50 ms | p99 ms | server CPU µs/req (median) | CPU ratio vs native (median of rounds) |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %s | %.0f | %.3f | %.3f | %.3f | %.1f | %.3f |\n", r.name, r.x.rps, r.rps, ms(r.x.p50), ms(r.x.p99), us(r.cpuPerReq), r.cpu)
	}
	ran := func(name string) bool { return len(results[name]) > 0 }
	if ran(on.name) && ran(off.name) {
		fmt.Printf("\ntelemetry on / off throughput (median of rounds): %.3f%s\n", onOff, spread(on.name, off.name))
	}
	if minOff != "" && ran(minOff) && ran("fermion, ABI-only guest") {
		fmt.Printf("ABI-only guest, telemetry on / off throughput (median of rounds): %.3f%s\n",
			roundRatio("fermion, ABI-only guest", minOff, rpsRatio), spread("fermion, ABI-only guest", minOff))
	}
	if minOff != "" && bareMin != "" && ran(minOff) && ran(bareMin) {
		fmt.Printf("ABI-only guest, Fermion (telemetry off) / bare wazero throughput (median of rounds): %.3f%s\n",
			roundRatio(minOff, bareMin, rpsRatio), spread(minOff, bareMin))
	}
	printBudgets(results, native.name, on.name, off.name, minOff, bareMin)
	printLadder(results)
	if *counters && *client == "wrk" {
		fmt.Println("\nPer request, in the round with the median server CPU per request (process-wide counters, counters.go):")
		fmt.Println()
		fmt.Println(counterHeader)
		for _, t := range targets {
			rs := slices.Clone(results[t.name])
			slices.SortFunc(rs, func(a, b loadResult) int { return int(a.cpuPerReq - b.cpuPerReq) })
			fmt.Println(rs[len(rs)/2].counters.row(t.name))
		}
	}
	if weightedName != "" {
		fmt.Printf("50/50 weight split / one version, telemetry on, throughput (median of rounds): %.3f%s\n",
			roundRatio(weightedName, on.name, rpsRatio), spread(weightedName, on.name))
	}
	if *useTLS {
		fmt.Printf("HTTPS: fermion / native over HTTPS %.3f; fermion HTTPS / fermion HTTP %.3f; native HTTPS / native HTTP %.3f (medians of rounds)\n",
			roundRatio(onTLS.name, nativeTLS.name, rpsRatio), roundRatio(onTLS.name, on.name, rpsRatio), roundRatio(nativeTLS.name, native.name, rpsRatio))
	}
	return nil
}

// profileFile is where target's CPU profile goes: file itself, or with several
// targets profiled, file with the target's name (letters and digits, the rest as
// dashes) inserted before its extension.
func profileFile(file, target string, several bool) string {
	if !several {
		return file
	}
	slug := strings.Trim(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, target), "-")
	ext := filepath.Ext(file)
	return strings.TrimSuffix(file, ext) + "-" + slug + ext
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

// medianCPU is the median CPU per request over rounds: steadier than throughput on a
// machine shared with other work, since it does not count time the servers waited.
func medianCPU(rs []loadResult) time.Duration {
	cs := make([]time.Duration, 0, len(rs))
	for _, r := range rs {
		cs = append(cs, r.cpuPerReq)
	}
	slices.Sort(cs)
	return cs[len(cs)/2]
}

// nativeTarget serves hello's body from a net/http handler, over HTTPS with certFile.
func nativeTarget(name, certFile, keyFile string) (target, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return target{}, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte(helloBody))
	})}
	scheme := "http://"
	if certFile != "" {
		scheme = "https://"
		go srv.ServeTLS(ln, certFile, keyFile)
	} else {
		go srv.Serve(ln)
	}
	return target{name: name, url: scheme + ln.Addr().String() + "/hello", close: func() { srv.Close() }}, nil
}

// selfSigned writes a self-signed ECDSA P-256 certificate for 127.0.0.1 and its key.
func selfSigned(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fermion-bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}

// benchTransport does not verify certificates: the benchmark's servers use a
// self-signed one on loopback.
func benchTransport() *http.Transport {
	return &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
}

// requestLog is the request log of every Fermion target (gateway's -request-log-all).
var requestLog telemetry.RequestLogConfig

func fermionTarget(name string, m *manifest.Manifest, wasm []byte, telemetryOn bool, logw io.Writer, certFile, keyFile string) (target, error) {
	// As `fermion run` does: request log lines are batched, not a write per request.
	logger, _ := telemetry.NewLogger(telemetry.NewBufferedWriter(logw, 200*time.Millisecond), "info")
	// With telemetry on, the gateway also aggregates SLIs, flushed every interval as an
	// agent does: telemetry's cost includes them (issue 14's budget).
	var slis *sli.Aggregator
	if telemetryOn {
		slis = sli.NewAggregator(sli.Config{Node: "bench", Start: sli.Boundary(time.Now(), sli.DefaultInterval)})
	}
	// The request log as an agent keeps it (-request-log-all: every line).
	dp, err := agent.NewDataPlane(agent.DataPlaneConfig{Logger: logger, Telemetry: telemetryOn, Version: "bench", TLSCert: certFile, TLSKey: keyFile, SLIs: slis,
		RequestLog: requestLog})
	if err != nil {
		return target{}, err
	}
	if _, err := dp.Deploy(context.Background(), m, wasm); err != nil {
		return target{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return target{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { dp.Serve(ctx, ln, nil); close(done) }()
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		if slis == nil {
			return
		}
		tick := time.NewTicker(slis.Interval())
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				slis.Flush(now)
			}
		}
	}()
	return target{name: name, url: dp.Scheme() + "://" + ln.Addr().String() + "/hello", close: func() { cancel(); <-done; <-flushed }}, nil
}

func check(url string) error {
	resp, err := (&http.Client{Transport: benchTransport()}).Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != helloBody {
		return fmt.Errorf("unexpected answer %d %q", resp.StatusCode, b)
	}
	return nil
}

type loadResult struct {
	rps      float64
	p50, p99 time.Duration
	// cpuPerReq is this process's CPU time per request during the run: the servers'
	// cost when the load generator is another process (wrk), 0 otherwise.
	cpuPerReq time.Duration
	counters  procCounters // per request, with -counters (zero otherwise)
}

func median(rs []loadResult) loadResult {
	sort.Slice(rs, func(i, j int) bool { return rs[i].rps < rs[j].rps })
	return rs[len(rs)/2]
}

// load runs the load generator against url for d. cpu places wrk on one CPU (-1: any).
func load(client string, cpu int, url string, conns int, d time.Duration) (loadResult, error) {
	if client == "wrk" {
		return loadWrk(cpu, url, conns, d)
	}
	return loadGo(url, conns, d), nil
}

var wrkLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
var wrkRate = regexp.MustCompile(`(?m)^Requests/sec:\s+([\d.]+)`)

func loadWrk(cpu int, url string, conns int, d time.Duration) (loadResult, error) {
	args := []string{"wrk", "-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency", url}
	if cpu >= 0 {
		args = append([]string{"taskset", "-c", strconv.Itoa(cpu)}, args...)
	}
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return loadResult{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	if strings.Contains(string(out), "Non-2xx") {
		return loadResult{}, fmt.Errorf("wrk saw errors: %s", out)
	}
	var res loadResult
	m := wrkRate.FindSubmatch(out)
	if m == nil {
		return res, fmt.Errorf("cannot parse wrk output: %s", out)
	}
	res.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	for _, l := range wrkLatency.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(l[2]), 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(l[3])]
		dur := time.Duration(v * float64(unit))
		if string(l[1]) == "50" {
			res.p50 = dur
		} else {
			res.p99 = dur
		}
	}
	return res, nil
}

// loadGo is a closed-loop Go client: conns workers, each on its own keep-alive
// connection, for d.
func loadGo(url string, conns int, d time.Duration) loadResult {
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := getUntil(&http.Client{Transport: benchTransport()}, url, deadline)
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	res := loadResult{rps: float64(len(all)) / d.Seconds()}
	if len(all) > 0 {
		res.p50 = all[len(all)/2]
		res.p99 = all[len(all)*99/100]
	}
	return res
}

// getUntil sends GET url on c, one request after another, until deadline, and returns
// the latency of each that was answered.
func getUntil(c *http.Client, url string, deadline time.Time) []time.Duration {
	lat := make([]time.Duration, 0, 1<<16)
	for time.Now().Before(deadline) {
		t0 := time.Now()
		resp, err := c.Get(url)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		lat = append(lat, time.Since(t0))
	}
	return lat
}

func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2], ds[min(len(ds)-1, len(ds)*99/100)]
}

func coldStartBench(args []string) error {
	fs := flag.NewFlagSet("coldstart", flag.ExitOnError)
	coldN := fs.Int("cold", 5, "compiles with an empty cache")
	cachedN := fs.Int("cached", 20, "compiles from the on-disk cache (new engine each time)")
	instN := fs.Int("instances", 200, "instances created with each start (normal, snapshot), over all rounds")
	rounds := fs.Int("rounds", 2, "rounds alternating normal starts and snapshot restores")
	guest := fs.String("guest", "examples/hello", "reactor guest package, served with examples/hello's manifest")
	warmN := fs.Int("warm", 20, "instances prewarmed at once per round and start, each on fresh memory (0: none)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of each snapshot round (new instances, requests, prewarms) to this file, then file.1, file.2…")
	fs.Parse(args)
	r, err := root()
	if err != nil {
		return err
	}
	m, wasm, err := helloManifest(r)
	if err != nil {
		return err
	}
	if *guest != "examples/hello" {
		if wasm, err = fermiontest.BuildGuest(r, *guest, true); err != nil {
			return err
		}
	}
	m.Scaling.MinWarm = 0
	spec := sandbox.SpecFromManifest(m, wasm)
	ctx := context.Background()

	// loadOnce also returns the process's CPU time during the Load (every thread: the
	// collector's too), which on a shared machine varies less than the wall time.
	loadOnce := func(dir string) (time.Duration, time.Duration, error) {
		e, err := sandbox.NewEngine(sandbox.EngineConfig{CacheDir: dir})
		if err != nil {
			return 0, 0, err
		}
		defer e.Close(ctx)
		c0, t0 := cpuTime(), time.Now()
		f, err := e.Load(ctx, spec)
		if err != nil {
			return 0, 0, err
		}
		d, c := time.Since(t0), cpuTime()-c0
		f.Close(ctx)
		return d, c, nil
	}
	var cold, cached, cachedCPU []time.Duration
	cacheDir, err := os.MkdirTemp("", "fermion-bench-cache-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cacheDir)
	for i := 0; i < *coldN; i++ {
		dir, _ := os.MkdirTemp("", "fermion-bench-cold-")
		d, _, err := loadOnce(dir)
		os.RemoveAll(dir)
		if err != nil {
			return err
		}
		cold = append(cold, d)
	}
	if _, _, err := loadOnce(cacheDir); err != nil { // populate
		return err
	}
	for i := 0; i < *cachedN; i++ {
		d, c, err := loadOnce(cacheDir)
		if err != nil {
			return err
		}
		cached, cachedCPU = append(cached, d), append(cachedCPU, c)
	}

	// Instances: a function whose instances serve one request each, so every request
	// creates a new instance (taking the memory the last one left, sandbox's memory
	// pool); the hook reports the phases. Then a prewarm of -warm instances at once,
	// each on fresh memory (nothing discarded yet): a scale-up burst. Normal starts
	// (_initialize in every instance) and restores from a snapshot alternate in rounds,
	// in one process.
	type phases struct {
		inst, init, total, first, fresh, cpu []time.Duration
		faults                               []int64 // the thread's page faults, with cpu
		inGC                                 []bool  // a GC cycle ended during it
		// Each fresh-memory start's thread CPU and page faults, from the end of the
		// previous start (the prewarm runs them one after another on Load's thread).
		freshCPU    []time.Duration
		freshFaults []int64
		gcs         uint32 // GC cycles during the rounds
	}
	var modes [2]phases // 0: _initialize, 1: snapshot
	var info sandbox.SnapshotInfo
	for round := 0; round < *rounds; round++ {
		for mode := range modes {
			if *cpuprofile != "" && mode == 1 {
				stop, err := startProfile(*cpuprofile, round)
				if err != nil {
					return err
				}
				defer stop()
			}
			var ms0 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			var mu sync.Mutex
			p := &modes[mode]
			var starts *[]time.Duration // where the hook records a new instance's total
			var lastCPU time.Duration   // the prewarm's thread at the end of its last start
			var lastFaults int64
			firstFresh := true
			e, err := sandbox.NewEngine(sandbox.EngineConfig{CacheDir: cacheDir, NoSnapshots: mode == 0,
				OnInstanceStart: func(a, b time.Duration) {
					mu.Lock()
					defer mu.Unlock()
					if starts == nil {
						return // the instance the snapshot is taken from: it ran _initialize
					}
					if starts == &p.total {
						p.inst = append(p.inst, a)
						p.init = append(p.init, b)
					}
					if starts == &p.fresh {
						c, f := threadusage.CPU(), threadusage.Faults()
						if !firstFresh { // the first also took the snapshot
							p.freshCPU = append(p.freshCPU, c-lastCPU)
							p.freshFaults = append(p.freshFaults, f-lastFaults)
						}
						lastCPU, lastFaults, firstFresh = c, f, false
					}
					*starts = append(*starts, a+b)
				}})
			if err != nil {
				return err
			}
			s := spec
			s.Scaling.MaxRequestsPerInstance = 1
			n0 := len(p.total)
			f, err := e.Load(ctx, s)
			if err != nil {
				e.Close(ctx)
				return err
			}
			if mode == 1 {
				info = f.Snapshot()
			}
			mu.Lock()
			starts = &p.total
			mu.Unlock()
			req := &sandbox.Request{ID: "bench", Method: "GET", URI: "/hello", Host: "localhost", Header: http.Header{}}
			perRound := *instN / *rounds
			// The thread's CPU time around each request (new instance, the request,
			// discarding the instance) leaves out the time the thread waited for a
			// core: on a shared machine that wait is most of the wall-clock p99.
			runtime.LockOSThread()
			for i := 0; i < perRound; i++ {
				c0, f0, g0 := threadusage.CPU(), threadusage.Faults(), gcCycles()
				t0 := time.Now()
				if _, err := f.Invoke(ctx, req); err != nil {
					runtime.UnlockOSThread()
					return err
				}
				p.first = append(p.first, time.Since(t0))
				p.cpu = append(p.cpu, threadusage.CPU()-c0)
				p.faults = append(p.faults, threadusage.Faults()-f0)
				p.inGC = append(p.inGC, gcCycles() != g0)
			}
			runtime.UnlockOSThread()
			f.Close(ctx)
			mu.Lock()
			starts = &p.fresh
			mu.Unlock()
			if *warmN > 0 {
				w := s
				w.Version += "-warm"
				w.Scaling.MinWarm, w.Scaling.MaxInstances = *warmN, max(*warmN, w.Scaling.MaxInstances)
				runtime.LockOSThread()
				mu.Lock()
				lastCPU, lastFaults = threadusage.CPU(), threadusage.Faults()
				mu.Unlock()
				fw, err := e.Load(ctx, w) // the snapshot's instance, then the prewarm
				runtime.UnlockOSThread()
				if err != nil {
					e.Close(ctx)
					return err
				}
				fw.Close(ctx)
			}
			e.Close(ctx)
			if *cpuprofile != "" && mode == 1 {
				pprof.StopCPUProfile()
			}
			var ms1 runtime.MemStats
			runtime.ReadMemStats(&ms1)
			p.gcs += ms1.NumGC - ms0.NumGC
			p50, p99 := percentiles(append([]time.Duration(nil), p.total[n0:]...))
			fmt.Fprintf(os.Stderr, "round %d snapshot=%v: new instance p50 %.3f ms p99 %.3f ms\n", round, mode == 1, ms(p50), ms(p99))
		}
	}

	fmt.Printf("\nmodule %s, %d bytes, GOMAXPROCS %d\n\n", *guest, len(wasm), runtime.GOMAXPROCS(0))
	fmt.Printf("snapshot: used %v (%s) memory %d bytes, stored %d bytes (host writes the data %v), %d globals, init read %d random bytes and the clock %d times, taken in %.1f ms\n\n",
		info.Used, info.Code, info.MemoryBytes, info.StoredBytes, info.HostData, info.Globals, info.RandomBytes, info.ClockReads, float64(info.Took.Microseconds())/1000)
	fmt.Println("| phase | n | p50 ms | p99 ms |")
	fmt.Println("|---|---|---|---|")
	row := func(name string, ds []time.Duration) {
		if len(ds) == 0 {
			return
		}
		p50, p99 := percentiles(ds)
		fmt.Printf("| %s | %d | %.3f | %.3f |\n", name, len(ds), ms(p50), ms(p99))
	}
	row("compile, empty cache (Load, min_warm 0)", cold)
	row("compile, on-disk cache, new engine", cached)
	row("process CPU of a compile from the on-disk cache, new engine", cachedCPU)
	for mode, name := range []string{"_initialize", "snapshot"} {
		p := modes[mode]
		row("instantiate (wazero), "+name, p.inst)
		row(map[bool]string{false: "guest init (_initialize)", true: "restore from the snapshot"}[mode == 1], p.init)
		row("new instance, "+name, p.total)
		row("first request on a new instance, "+name, p.first)
		row("thread CPU of new instance + first request + discard, "+name, p.cpu)
		row(fmt.Sprintf("new instance, fresh memory (prewarm of %d), %s", *warmN, name), p.fresh)
		row(fmt.Sprintf("thread CPU of a new instance but each load's first, fresh memory (prewarm of %d), %s", *warmN, name), p.freshCPU)
	}
	// Where the CPU tail comes from: page faults (a first touch of a page, slow on a
	// virtual machine) and GC cycles, beside the thread CPU rows above.
	fmt.Println("\n| start | thread page faults per new instance + request + discard, p50 / p99 / mean | in the 2 % with the most thread CPU, mean | GC cycles per 100 new instances | share of all / of the 2 % with the most thread CPU during which a GC cycle ended |")
	fmt.Println("|---|---|---|---|---|")
	for mode, name := range []string{"_initialize", "snapshot"} {
		p := modes[mode]
		if len(p.faults) == 0 {
			continue
		}
		fs := slices.Clone(p.faults)
		slices.Sort(fs)
		var sum int64
		for _, v := range fs {
			sum += v
		}
		idx := make([]int, len(p.cpu))
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(a, b int) bool { return p.cpu[idx[a]] > p.cpu[idx[b]] })
		top := idx[:max(1, len(idx)/50)]
		var topSum int64
		topGC, allGC := 0, 0
		for _, i := range top {
			topSum += p.faults[i]
			if p.inGC[i] {
				topGC++
			}
		}
		for _, g := range p.inGC {
			if g {
				allGC++
			}
		}
		fmt.Printf("| %s | %d / %d / %.1f | %.1f | %.1f | %.2f / %.2f |\n", name, fs[len(fs)/2], fs[min(len(fs)-1, len(fs)*99/100)],
			float64(sum)/float64(len(fs)), float64(topSum)/float64(len(top)), 100*float64(p.gcs)/float64(len(p.total)),
			float64(allGC)/float64(len(p.inGC)), float64(topGC)/float64(len(top)))
		if len(p.freshFaults) > 0 {
			ff := slices.Clone(p.freshFaults)
			slices.Sort(ff)
			fmt.Printf("| %s, fresh memory (prewarm) | %d / %d / — | — | — | — |\n", name, ff[len(ff)/2], ff[len(ff)-1])
		}
	}
	if len(modes[0].total) > 0 && len(modes[1].total) > 0 {
		p50s, _ := percentiles(modes[1].total)
		p50n, _ := percentiles(modes[0].total)
		fmt.Printf("\nnew instance p50, snapshot / _initialize: %.3f\n", float64(p50s)/float64(p50n))
	}
	if len(cold) > 0 && len(cached) > 0 { // -cold 0 or -cached 0 skip them
		p50c, _ := percentiles(cold)
		p50h, _ := percentiles(cached)
		fmt.Printf("\ncached / cold compile (p50): %.4f\n", float64(p50h)/float64(p50c))
	}
	return nil
}

// gcCycles counts the GC cycles finished so far, without stopping the world.
func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// startProfile starts a CPU profile of one round into name (round 0) or name.<round>;
// go tool pprof merges them when given all. stop closes the file.
func startProfile(name string, round int) (stop func(), err error) {
	if round > 0 {
		name = fmt.Sprintf("%s.%d", name, round)
	}
	pf, err := os.Create(name)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(pf); err != nil {
		pf.Close()
		return nil, err
	}
	return func() { pf.Close() }, nil
}

func rss() (uint64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize()), err
}

func memoryBench(args []string) error {
	fs := flag.NewFlagSet("memory", flag.ExitOnError)
	n := fs.Int("instances", 64, "warm instances to create")
	fs.Parse(args)
	r, err := root()
	if err != nil {
		return err
	}
	m, wasm, err := helloManifest(r)
	if err != nil {
		return err
	}
	ctx := context.Background()
	settle := func() uint64 {
		runtime.GC()
		debug.FreeOSMemory()
		v, _ := rss()
		return v
	}
	before := settle()
	// withWarm measures RSS with the function loaded and warm instances prewarmed.
	withWarm := func(warm int) (uint64, error) {
		dp, err := agent.NewDataPlane(agent.DataPlaneConfig{Telemetry: true, Version: "bench"})
		if err != nil {
			return 0, err
		}
		defer dp.Close(ctx)
		m.Scaling.MinWarm, m.Scaling.MaxInstances = warm, max(warm, m.Scaling.MaxInstances)
		if _, err := dp.Deploy(ctx, m, wasm); err != nil {
			return 0, err
		}
		return settle(), nil
	}
	one, err := withWarm(1)
	if err != nil {
		return err
	}
	many, err := withWarm(*n + 1)
	if err != nil {
		return err
	}
	mib := func(v uint64) float64 { return float64(v) / (1 << 20) }
	fmt.Printf("\n| measure | value |\n|---|---|\n")
	fmt.Printf("| process RSS before anything (harness baseline) | %.1f MiB |\n", mib(before))
	fmt.Printf("| RSS with data plane + hello loaded, 1 warm instance | %.1f MiB |\n", mib(one))
	fmt.Printf("| RSS per additional warm instance (%d instances) | %.2f MiB |\n", *n, mib((many-one)/uint64(*n)))
	return nil
}

type callCounter map[string]int

func (c callCounter) NewFunctionListener(def api.FunctionDefinition) experimental.FunctionListener {
	name := def.DebugName()
	return experimental.FunctionListenerFunc(func(context.Context, api.Module, api.FunctionDefinition, []uint64, experimental.StackIterator) {
		c[name]++
	})
}

// guestCalls runs a guest's handler under wazero's interpreter with a function listener
// and prints the functions called per request, most frequent first.
func guestCalls(args []string) error {
	fs := flag.NewFlagSet("guestcalls", flag.ExitOnError)
	guest := fs.String("guest", "examples/hello", "reactor guest package to build")
	n := fs.Int("n", 1000, "requests")
	top := fs.Int("top", 30, "functions to list")
	cpuCalls := fs.Int("cpu-calls", 20000, "calls per round of the CPU measurement under the compiler (0: skip it)")
	cpuRounds := fs.Int("cpu-rounds", 7, "rounds of the CPU measurement")
	baseRoot := fs.String("base-root", "", "also build the guest from this checkout (e.g. an earlier commit's git archive) and measure both CPUs in alternating rounds, the base first")
	uri := fs.String("uri", guestCallRequest.URI, "request target to send (a longer one shows per-byte costs)")
	fs.Parse(args)
	if !strings.HasPrefix(*uri, "/") {
		return fmt.Errorf("-uri %q: want a request target starting with /, such as /hello?x=1", *uri)
	}
	guestCallRequest.URI = *uri
	r, err := root()
	if err != nil {
		return err
	}
	wasm, err := buildGuestDir(r, *guest)
	if err != nil {
		return err
	}
	if *cpuCalls > 0 {
		wasms, names := [][]byte{wasm}, []string{*guest}
		if *baseRoot != "" {
			base, err := buildGuestDir(*baseRoot, *guest)
			if err != nil {
				return fmt.Errorf("-base-root: %w", err)
			}
			wasms, names = [][]byte{base, wasm}, []string{*guest + " from " + *baseRoot, *guest}
		}
		per, ratio, err := guestCPU(wasms, *cpuCalls, *cpuRounds)
		if err != nil {
			return fmt.Errorf("guest CPU of %s: %w", *guest, err)
		}
		for i, p := range per {
			fmt.Printf("%s: %.0f ns of thread CPU per request under wazero's compiler (median of %d rounds of %d; %.0f–%.0f)",
				names[i], p.med, *cpuRounds, *cpuCalls, p.lo, p.hi)
			if i > 0 {
				fmt.Printf(", %.3f× the base (rounds %.3f–%.3f)", ratio[i].med, ratio[i].lo, ratio[i].hi)
			}
			fmt.Println()
		}
	}
	counts := callCounter{}
	ctx := experimental.WithFunctionListenerFactory(context.Background(), counts)
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	if err := bare.InstantiateHost(ctx, rt, bare.Nop); err != nil {
		return err
	}
	mod, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithStartFunctions(abi.ExportInitialize).WithSysNanotime().WithSysWalltime())
	if err != nil {
		return err
	}
	enc := abi.AppendRequest(nil, &guestCallRequest)
	res, err := mod.ExportedFunction(abi.ExportBuf).Call(ctx, uint64(len(enc)))
	if err != nil {
		return err
	}
	mod.Memory().Write(uint32(res[0]), enc)
	handle := mod.ExportedFunction(abi.ExportHandle)
	for i := 0; i < 100; i++ { // warm up: first requests initialise lazily
		handle.Call(ctx, uint64(len(enc)))
	}
	clear(counts)
	for i := 0; i < *n; i++ {
		if _, err := handle.Call(ctx, uint64(len(enc))); err != nil {
			return err
		}
	}
	type kv struct {
		name string
		n    int
	}
	var all []kv
	total := 0
	for k, v := range counts {
		all = append(all, kv{k, v})
		total += v
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n || all[i].n == all[j].n && all[i].name < all[j].name })
	// Every heap allocation of a Go guest goes through runtime.mallocgc, so its calls
	// are the guest's allocations; a Rust guest's go through __rust_alloc into
	// wasi-libc's malloc (nested, so the largest count, in case LTO inlined one).
	mallocs, allocFn := 0, "runtime.mallocgc"
	for k, v := range counts {
		switch strings.TrimPrefix(k, ".") {
		case "runtime.mallocgc":
			mallocs += v
		case "__rust_alloc", "__rdl_alloc", "malloc", "dlmalloc":
			if v > mallocs {
				mallocs, allocFn = v, "malloc"
			}
		}
	}
	fmt.Printf("%s: %.0f guest function calls per request, %.2f allocations (%s calls)\n\n| calls/request | function |\n|---|---|\n",
		*guest, float64(total)/float64(*n), float64(mallocs)/float64(*n), allocFn)
	for _, e := range all[:min(*top, len(all))] {
		fmt.Printf("| %.3g | %s |\n", float64(e.n)/float64(*n), strings.TrimPrefix(e.name, "."))
	}
	return nil
}

// printBudgets prints issue 17's four gateway budgets (and issue 14's telemetry one)
// as same-run ratios, each with the median and the spread (min–max) of its rounds, in
// throughput and in server CPU per request (baseline's ÷ target's, so higher is better
// in both): CPU time does not count the time a server waited for a neighbour's
// process, so on a shared machine it spreads less. Ratios whose targets did not run
// are left out.
func printBudgets(results map[string][]loadResult, native, on, off, minOff, bareMin string) {
	type budget struct {
		what, target, base string
		min                float64
	}
	budgets := []budget{
		{"ABI-only guest, Fermion (telemetry off) / bare wazero", minOff, bareMin, 0.95},
		{"examples/hello, Fermion (telemetry off) / native", off, native, 0.75},
		{"Rust hello, Fermion (telemetry on) / native", rustOnName, native, 0.85},
		{"Rust hello, Fermion (telemetry off) / native", rustOffName, native, 0.85},
		{"Rust hello, Fermion (telemetry off) / bare wazero", rustOffName, rustBareName, 0},
		{"examples/hello, telemetry on / off", on, off, 0.95},
	}
	ratios := func(name, base string, f func(r, b loadResult) float64) (med, lo, hi float64) {
		var rs []float64
		for i := range min(len(results[name]), len(results[base])) {
			if v := f(results[name][i], results[base][i]); v > 0 {
				rs = append(rs, v)
			}
		}
		if len(rs) == 0 {
			return 0, 0, 0
		}
		sort.Float64s(rs)
		return rs[len(rs)/2], rs[0], rs[len(rs)-1]
	}
	rps := func(r, b loadResult) float64 { return r.rps / b.rps }
	cpu := func(r, b loadResult) float64 {
		if r.cpuPerReq <= 0 {
			return 0
		}
		return float64(b.cpuPerReq) / float64(r.cpuPerReq)
	}
	fmt.Println("\n| budget | ≥ | throughput ratio, median (min–max of rounds) | CPU-per-request ratio, median (min–max) |")
	fmt.Println("|---|---|---|---|")
	for _, b := range budgets {
		if b.target == "" || b.base == "" || len(results[b.target]) == 0 || len(results[b.base]) == 0 {
			continue
		}
		m, lo, hi := ratios(b.target, b.base, rps)
		cm, clo, chi := ratios(b.target, b.base, cpu)
		want := "—"
		if b.min > 0 {
			want = fmt.Sprintf("%.2f", b.min)
		}
		cpuCol := "—"
		if cm > 0 {
			cpuCol = fmt.Sprintf("%.3f (%.3f–%.3f)", cm, clo, chi)
		}
		fmt.Printf("| %s | %s | %.3f (%.3f–%.3f) | %s |\n", b.what, want, m, lo, hi, cpuCol)
	}
}
