package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"fermion.dev/fermion/internal/agent"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/telemetry"
)

// clientLimitsBench measures what abusive clients cost a node (issue 12): a node process
// (a child, so that its RSS is its own) serves examples/hello under the gateway's
// client limits while this process runs, on loopback, a connection flood (clients that
// send a request, keep the connection and ask again every second, reconnecting a second
// after a refusal or a close) and slow clients (a declared 100 KB body sent at 1 byte/s,
// reconnecting when cut). A normal client sends one request every -interval on a new
// connection, first alone (the baseline) and then under the attack; the node's RSS is
// sampled throughout.
func clientLimitsBench(args []string) error {
	fs := flag.NewFlagSet("clientlimits", flag.ExitOnError)
	flood := fs.Int("flood", 2000, "flood connections")
	slow := fs.Int("slow", 500, "slow clients")
	maxConns := fs.Int("max-connections", gateway.DefaultMaxConnections, "the node's --max-connections")
	baseline := fs.Duration("baseline", 3*time.Second, "normal requests alone, per round")
	attack := fs.Duration("duration", 15*time.Second, "normal requests under attack, per round (longer than the body timeout, so slow clients are cut)")
	interval := fs.Duration("interval", 10*time.Millisecond, "time between normal requests")
	rounds := fs.Int("rounds", 3, "rounds, each with a fresh node")
	fs.Parse(args)
	raiseFileLimit()
	r, err := root()
	if err != nil {
		return err
	}
	wasm, err := fermiontest.BuildGuest(r, "examples/hello", true)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "fermion-bench-limits-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	wasmFile := filepath.Join(tmp, "hello.wasm")
	if err := os.WriteFile(wasmFile, wasm, 0o644); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Printf("clientlimits: %d flood connections, %d slow clients, --max-connections %d, GOMAXPROCS %d, %d rounds\n",
		*flood, *slow, *maxConns, runtime.GOMAXPROCS(0), *rounds)
	fmt.Println("| round | idle RSS | peak RSS under attack (Δ) | normal p50 / p99 alone | normal p50 / p99 under attack (ratio p99) | normal non-200 | flood 200 / 503 (Retry-After) / closed | slow clients cut |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for round := 1; round <= *rounds; round++ {
		res, err := clientLimitsRound(self, r, wasmFile, *maxConns, *flood, *slow, *baseline, *attack, *interval)
		if err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		fmt.Printf("| %d | %.1f MiB | %.1f MiB (+%.1f MiB) | %s / %s | %s / %s (%.2f×) | %d of %d | %d / %d (%d) / %d | %d |\n",
			round, mib(uint64(res.idleRSS)), mib(uint64(res.peakRSS)), mib(uint64(res.peakRSS-res.idleRSS)),
			msText(res.alone.p50), msText(res.alone.p99), msText(res.attacked.p50), msText(res.attacked.p99),
			float64(res.attacked.p99)/float64(max(res.alone.p99, 1)),
			res.attacked.failed, res.attacked.n, res.flood.ok.Load(), res.flood.refused.Load(), res.flood.retryAfter.Load(),
			res.flood.closed.Load(), res.slowCut.Load())
	}
	return nil
}

type normalResult struct {
	p50, p99  time.Duration
	n, failed int
}

type floodStats struct{ ok, refused, retryAfter, closed atomic.Int64 }

type limitsRound struct {
	idleRSS, peakRSS int64
	alone, attacked  normalResult
	flood            floodStats
	slowCut          atomic.Int64
}

func clientLimitsRound(self, root, wasmFile string, maxConns, flood, slow int, baseline, attack, interval time.Duration) (*limitsRound, error) {
	cmd := exec.Command(self, "clientlimits-node", "-root", root, "-wasm", wasmFile, "-max-connections", strconv.Itoa(maxConns))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		stdin.Close() // the node stops when its stdin closes
		cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		return nil, fmt.Errorf("node did not start: %q %v", line, err)
	}
	res := &limitsRound{}
	url := "http://" + addr + "/hello"
	if err := check(url); err != nil {
		return nil, err
	}
	// Idle: loaded, one request served, the heap settled.
	time.Sleep(2 * time.Second)
	if res.idleRSS, err = processRSS(cmd.Process.Pid); err != nil {
		return nil, err
	}
	res.alone = normalClient(context.Background(), url, baseline, interval)

	ctx, cancel := context.WithTimeout(context.Background(), attack+2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range slow {
		wg.Go(func() { slowClient(ctx, addr, &res.slowCut) })
	}
	for range flood {
		wg.Go(func() { floodClient(ctx, addr, &res.flood) })
	}
	var peak atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if v, err := processRSS(cmd.Process.Pid); err == nil && v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	// Let the flood arrive before measuring.
	time.Sleep(time.Second)
	res.attacked = normalClient(ctx, url, attack, interval)
	cancel()
	wg.Wait()
	<-sampled
	res.peakRSS = peak.Load()
	return res, nil
}

// normalClient sends GET url every interval, each on a new connection, for d.
func normalClient(ctx context.Context, url string, d, interval time.Duration) normalResult {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var lat []time.Duration
	var res normalResult
	end := time.Now().Add(d)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for time.Now().Before(end) && ctx.Err() == nil {
		<-tick.C
		start := time.Now()
		resp, err := c.Get(url)
		res.n++
		if err != nil {
			res.failed++
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			res.failed++
			continue
		}
		lat = append(lat, time.Since(start))
	}
	if len(lat) > 0 {
		res.p50, res.p99 = percentiles(lat)
	}
	return res
}

// wait waits d or until ctx is done.
func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// floodClient holds a connection and asks on it every second; after a refusal or a close
// it waits a second (Retry-After) and connects again.
func floodClient(ctx context.Context, addr string, st *floodStats) {
	for ctx.Err() == nil {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			st.closed.Add(1)
			wait(ctx, time.Second)
			continue
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		br := bufio.NewReaderSize(c, 1024)
		for ctx.Err() == nil {
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, "GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
				st.closed.Add(1)
				break
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				if ctx.Err() == nil {
					st.closed.Add(1)
				}
				break
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				st.refused.Add(1)
				if resp.Header.Get("Retry-After") != "" {
					st.retryAfter.Add(1)
				}
				break
			}
			st.ok.Add(1)
			wait(ctx, time.Second)
		}
		stop()
		c.Close()
		wait(ctx, time.Second)
	}
}

// slowClient declares a 100 KB body and sends it at 1 byte/s until the node cuts it,
// then connects again.
func slowClient(ctx context.Context, addr string, cut *atomic.Int64) {
	var buf [512]byte
	for ctx.Err() == nil {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			wait(ctx, time.Second)
			continue
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		_, err = io.WriteString(c, "POST /hello HTTP/1.1\r\nHost: bench\r\nContent-Length: 100000\r\n\r\n")
		for err == nil && ctx.Err() == nil {
			// The read's timeout paces the client: a byte a second until the node answers
			// (408) or closes.
			c.SetReadDeadline(time.Now().Add(time.Second))
			if _, rerr := c.Read(buf[:]); rerr == nil || !isTimeout(rerr) {
				if ctx.Err() == nil {
					cut.Add(1)
				}
				break
			}
			_, err = c.Write([]byte("x"))
		}
		stop()
		c.Close()
		wait(ctx, time.Second)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// clientLimitsNode is the node of clientlimits: examples/hello behind a gateway with the
// given connection cap (other limits at their defaults), telemetry on, until stdin closes.
func clientLimitsNode(args []string) error {
	fs := flag.NewFlagSet("clientlimits-node", flag.ExitOnError)
	rootDir := fs.String("root", "", "repository root")
	wasmFile := fs.String("wasm", "", "examples/hello module")
	maxConns := fs.Int("max-connections", gateway.DefaultMaxConnections, "connection cap")
	fs.Parse(args)
	raiseFileLimit()
	m, err := manifest.Load(filepath.Join(*rootDir, "examples/hello"))
	if err != nil {
		return err
	}
	wasm, err := os.ReadFile(*wasmFile)
	if err != nil {
		return err
	}
	logger, _ := telemetry.NewLogger(io.Discard, "error")
	dp, err := agent.NewDataPlane(agent.DataPlaneConfig{Logger: logger, Telemetry: true, Version: "bench",
		Limits: gateway.Limits{MaxConnections: *maxConns}})
	if err != nil {
		return err
	}
	if _, err := dp.Deploy(context.Background(), m, wasm); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	fmt.Printf("listening %s\n", ln.Addr())
	return dp.Serve(ctx, ln, nil)
}

// raiseFileLimit lifts the soft open-file limit to the hard one: thousands of loopback
// connections need as many descriptors.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// processRSS is a process's resident set size, from /proc (Linux).
func processRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for process %d", pid)
}

func msText(d time.Duration) string { return fmt.Sprintf("%.2f ms", ms(d)) }
