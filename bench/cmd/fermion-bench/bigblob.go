package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/oci"
	"fermion.dev/fermion/internal/registry"
)

// bigblob pushes and pulls one large blob (1 GiB by default) through the built-in
// registry, with the registry and the client each in a process of its own (children
// of this one), and samples both processes' RSS from /proc while they work. The
// budget (issue 13): registry ≤ 200 MiB and client ≤ 100 MiB above their idle RSS.
// The baseline, measured in the same run between the same two processes, is the same
// bytes over the same loopback HTTP into a handler that only hashes them (upload) and
// out of one that generates them (download): what the transfer costs without JetStream.
func bigBlobBench(args []string) error {
	fs := flag.NewFlagSet("bigblob", flag.ExitOnError)
	sizeMiB := fs.Int64("size", 1024, "blob size in MiB")
	rounds := fs.Int("rounds", 3, "rounds, each with a fresh registry and a new blob")
	fs.Parse(args)
	size := *sizeMiB << 20
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Printf("bigblob: %d MiB, %d rounds, registry and client in separate processes, SyncAlways store\n\n", *sizeMiB, *rounds)
	fmt.Println("| round | phase | seconds | MiB/s | baseline s | time / baseline | registry RSS idle → peak (Δ MiB) | client RSS idle → peak (Δ MiB) |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	type agg struct{ ratio, regDelta, cliDelta []float64 }
	sum := map[string]*agg{"push": {}, "pull": {}}
	for round := 1; round <= *rounds; round++ {
		res, err := bigBlobRound(exe, size, round)
		if err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		for _, r := range res {
			a := sum[r.phase]
			ratio := r.secs / r.baseSecs
			a.ratio = append(a.ratio, ratio)
			a.regDelta = append(a.regDelta, mib(r.regPeak-r.regIdle))
			a.cliDelta = append(a.cliDelta, mib(r.cliPeak-r.cliIdle))
			fmt.Printf("| %d | %s | %.1f | %.0f | %.1f | %.2f | %.0f → %.0f (%.0f) | %.0f → %.0f (%.0f) |\n", round, r.phase, r.secs,
				float64(size)/(1<<20)/r.secs, r.baseSecs, ratio, mib(r.regIdle), mib(r.regPeak), mib(r.regPeak-r.regIdle),
				mib(r.cliIdle), mib(r.cliPeak), mib(r.cliPeak-r.cliIdle))
		}
	}
	fmt.Println()
	for _, phase := range []string{"push", "pull"} {
		a := sum[phase]
		fmt.Printf("%s: time/baseline %.2f–%.2f; registry Δ RSS %.0f–%.0f MiB (budget 200); client Δ RSS %.0f–%.0f MiB (budget 100)\n",
			phase, minOf(a.ratio), maxOf(a.ratio), minOf(a.regDelta), maxOf(a.regDelta), minOf(a.cliDelta), maxOf(a.cliDelta))
	}
	return nil
}

func mib(b uint64) float64 { return float64(int64(b)) / (1 << 20) }

func minOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = min(m, x)
	}
	return m
}

func maxOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

type bigBlobResult struct {
	phase                              string
	secs, baseSecs                     float64
	regIdle, regPeak, cliIdle, cliPeak uint64
}

// child is a bigblob child process answering one line per command on stdin.
type child struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines *bufio.Scanner
}

func startChild(exe string, args ...string) (*child, error) {
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &child{cmd: cmd, in: in, lines: bufio.NewScanner(out)}, nil
}

// ask sends a command and returns the answer line; "error: …" becomes an error.
func (c *child) ask(command string) (string, error) {
	if command != "" {
		if _, err := fmt.Fprintln(c.in, command); err != nil {
			return "", err
		}
	}
	if !c.lines.Scan() {
		return "", fmt.Errorf("child exited (%v)", c.lines.Err())
	}
	line := c.lines.Text()
	if msg, ok := strings.CutPrefix(line, "error: "); ok {
		return "", errors.New(msg)
	}
	return line, nil
}

func (c *child) stop() {
	c.in.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// procRSS reads a process's resident set from /proc.
func procRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize()), err
}

// rssSampler records the peak RSS of some processes until stopped.
type rssSampler struct {
	peaks []atomic.Uint64
	done  chan struct{}
	wg    sync.WaitGroup
}

func sampleRSS(pids ...int) *rssSampler {
	s := &rssSampler{peaks: make([]atomic.Uint64, len(pids)), done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			for i, pid := range pids {
				if v, err := procRSS(pid); err == nil && v > s.peaks[i].Load() {
					s.peaks[i].Store(v)
				}
			}
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) stop() []uint64 {
	close(s.done)
	s.wg.Wait()
	out := make([]uint64, len(s.peaks))
	for i := range s.peaks {
		out[i] = s.peaks[i].Load()
	}
	return out
}

func bigBlobRound(exe string, size int64, round int) ([]bigBlobResult, error) {
	dir, err := os.MkdirTemp("", "fermion-bigblob-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "blob")
	d, err := writePattern(file, uint64(round), size)
	if err != nil {
		return nil, err
	}
	reg, err := startChild(exe, "bigblob-registry", "-data", filepath.Join(dir, "store"), "-file", file)
	if err != nil {
		return nil, err
	}
	defer reg.stop()
	addr, err := reg.ask("")
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	cli, err := startChild(exe, "bigblob-client", "-registry", addr, "-file", file, "-digest", d.String(), "-size", strconv.FormatInt(size, 10))
	if err != nil {
		return nil, err
	}
	defer cli.stop()
	if _, err := cli.ask(""); err != nil { // ready: connected once
		return nil, fmt.Errorf("client: %w", err)
	}
	// Idle: both processes started, the client connected once, nothing moved yet.
	regIdle, err := procRSS(reg.cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	cliIdle, err := procRSS(cli.cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	var out []bigBlobResult
	for _, phase := range []struct{ name, baseline string }{{"push", "sink-put"}, {"pull", "sink-get"}} {
		timed := func(command string) (float64, uint64, uint64, uint64, uint64, error) {
			s := sampleRSS(reg.cmd.Process.Pid, cli.cmd.Process.Pid)
			start := time.Now()
			_, err = cli.ask(command)
			secs := time.Since(start).Seconds()
			peaks := s.stop()
			return secs, regIdle, max(peaks[0], regIdle), cliIdle, max(peaks[1], cliIdle), err
		}
		baseSecs, _, _, _, _, err := timed(phase.baseline)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", phase.baseline, err)
		}
		secs, ri, rp, ci, cp, err := timed(phase.name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", phase.name, err)
		}
		out = append(out, bigBlobResult{phase: phase.name, secs: secs, baseSecs: baseSecs, regIdle: ri, regPeak: rp, cliIdle: ci, cliPeak: cp})
	}
	return out, nil
}

// patternReader yields n pseudo-random bytes from seed, the same every time.
type patternReader struct {
	rng *rand.ChaCha8
	n   int64
}

func newPattern(seed uint64, n int64) *patternReader {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return &patternReader{rng: rand.NewChaCha8(s), n: n}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	_, _ = p.rng.Read(b)
	p.n -= int64(len(b))
	return len(b), nil
}

// writePattern writes size pattern bytes to path and returns their digest.
func writePattern(path string, seed uint64, size int64) (digest.Digest, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), newPattern(seed, size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return digest.NewDigest(digest.SHA256, h), err
}

// bigBlobRegistry is the registry child: Fermion's registry on an embedded JetStream
// (synced, as registry serve runs it) on a loopback port, plus /sink for the baseline.
// It prints its address and serves until stdin closes.
func bigBlobRegistry(args []string) error {
	fs := flag.NewFlagSet("bigblob-registry", flag.ExitOnError)
	data := fs.String("data", "", "JetStream store directory")
	file := fs.String("file", "", "the blob's file, which GET /sink serves")
	fs.Parse(args)
	if *data == "" {
		return errors.New("bigblob-registry is started by `fermion-bench bigblob`")
	}
	ctx := context.Background()
	eng, err := engine.Start(ctx, engine.Config{Name: "bigblob", DataDir: *data, SyncAlways: true})
	if err != nil {
		return err
	}
	defer eng.Close()
	reg, err := registry.New(ctx, eng.JetStream(), registry.Config{PushTokens: []string{"bench"}})
	if err != nil {
		return err
	}
	defer reg.Close()
	mux := http.NewServeMux()
	mux.Handle("/v2/", reg)
	mux.HandleFunc("PUT /sink", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	})
	mux.HandleFunc("GET /sink", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(*file)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(st.Size(), 10))
		_, _ = io.Copy(w, io.TeeReader(f, sha256.New())) // hashed, as the registry's reads are
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	fmt.Println(ln.Addr().String())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes stdin
	return nil
}

// bigBlobClient is the client child: Fermion's OCI client pushing the blob from its
// file (PushBlob streams it) and pulling it (FetchBlob checks it on the way, into
// io.Discard). It answers one line per command read on stdin.
func bigBlobClient(args []string) error {
	fs := flag.NewFlagSet("bigblob-client", flag.ExitOnError)
	addr := fs.String("registry", "", "registry host:port")
	file := fs.String("file", "", "the blob's file")
	ds := fs.String("digest", "", "the blob's digest")
	size := fs.Int64("size", 0, "the blob's size")
	fs.Parse(args)
	d, err := digest.Parse(*ds)
	if err != nil || *addr == "" {
		return errors.New("bigblob-client is started by `fermion-bench bigblob`")
	}
	ctx := context.Background()
	c := &oci.Client{Token: "bench", PlainHTTP: true}
	ref, err := oci.ParseRef(*addr + "/bench/big:latest")
	if err != nil {
		return err
	}
	desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: *size}
	hc := &http.Client{}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var err error
		switch in.Text() {
		case "push":
			err = c.PushBlob(ctx, ref, desc, func() (io.ReadCloser, error) { return os.Open(*file) })
		case "pull":
			err = c.FetchBlob(ctx, ref, desc, io.Discard)
		case "sink-put":
			var f *os.File
			if f, err = os.Open(*file); err == nil {
				var resp *http.Response
				req, _ := http.NewRequest("PUT", "http://"+*addr+"/sink", f)
				req.ContentLength = *size
				if resp, err = hc.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				f.Close()
			}
		case "sink-get":
			var resp *http.Response
			if resp, err = hc.Get("http://" + *addr + "/sink"); err == nil {
				h := sha256.New()
				_, err = io.Copy(h, resp.Body)
				resp.Body.Close()
			}
		default:
			err = fmt.Errorf("unknown command %q", in.Text())
		}
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println("ok")
	}
	return in.Err()
}
