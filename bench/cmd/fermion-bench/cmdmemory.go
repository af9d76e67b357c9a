package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
)

// cmdMemoryBench runs N command guests at once, each filling most of a 64 MiB memory
// (examples/testdata/faults/fill), and reports the RSS they add at their peak against
// N × limits.memory, and the RSS left once they have ended (after a GC, without asking
// the Go runtime to return memory): the baseline is the process's RSS just before each
// round.
func cmdMemoryBench(args []string) error {
	fs := flag.NewFlagSet("cmdmemory", flag.ExitOnError)
	ns := fs.String("n", "1,4", "concurrent command runs, comma-separated")
	fill := fs.Int("mib", 40, "MiB each run allocates and touches (the Go guest's heap grows its memory past this)")
	hold := fs.Duration("hold", 500*time.Millisecond, "time each run keeps its memory before answering")
	rounds := fs.Int("rounds", 3, "rounds per N")
	fs.Parse(args)
	r, err := root()
	if err != nil {
		return err
	}
	dir := "examples/testdata/faults/fill"
	m, err := manifest.Load(filepath.Join(r, dir))
	if err != nil {
		return err
	}
	wasm, err := fermiontest.BuildGuest(r, dir, false)
	if err != nil {
		return err
	}
	var counts []int
	for _, s := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-n %q: want positive whole numbers", *ns)
		}
		counts = append(counts, n)
	}
	ctx := context.Background()
	e, err := sandbox.NewEngine(sandbox.EngineConfig{})
	if err != nil {
		return err
	}
	defer e.Close(ctx)
	spec := sandbox.SpecFromManifest(m, wasm)
	spec.Limits.MaxConcurrency = max(spec.Limits.MaxConcurrency, slicesMax(counts))
	spec.Limits.Timeout = 30 * time.Second
	f, err := e.Load(ctx, spec)
	if err != nil {
		return err
	}
	defer f.Close(ctx)
	uri := fmt.Sprintf("/fill?mib=%d&hold=%s", *fill, *hold)
	run := func(n int) error {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := f.Invoke(ctx, &sandbox.Request{Method: "GET", URI: uri, Host: "localhost", Header: http.Header{}})
				if err == nil && resp.Status != http.StatusOK {
					err = fmt.Errorf("status %d: %s", resp.Status, resp.Body)
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		var all []error
		for err := range errs {
			all = append(all, err)
		}
		return errors.Join(all...)
	}
	if err := run(1); err != nil { // compile, first-run costs: not in any baseline
		return err
	}
	limit := float64(spec.Limits.MemoryBytes)
	mib := func(v float64) float64 { return v / (1 << 20) }
	fmt.Printf("\n| concurrent runs | limits.memory | added RSS at peak, MiB (min–max of %d) | peak / (N × limits.memory) (min–max) | RSS left after, MiB (min–max) |\n|---|---|---|---|---|\n", *rounds)
	for _, n := range counts {
		var peaks, afters []float64
		for range *rounds {
			runtime.GC()
			debug.FreeOSMemory()
			base, err := rssStatus("VmRSS")
			if err != nil {
				return err
			}
			stopPeak := peakRSS(base)
			if err := run(n); err != nil {
				return err
			}
			peak := stopPeak()
			runtime.GC()
			after, err := rssStatus("VmRSS")
			if err != nil {
				return err
			}
			peaks = append(peaks, float64(peak-base))
			afters = append(afters, float64(after-base))
		}
		lo, hi := minMax(peaks)
		alo, ahi := minMax(afters)
		fmt.Printf("| %d | %d MiB | %.1f–%.1f | %.2f–%.2f | %.1f–%.1f |\n", n, spec.Limits.MemoryBytes>>20,
			mib(lo), mib(hi), lo/(float64(n)*limit), hi/(float64(n)*limit), mib(alo), mib(ahi))
	}
	return nil
}

// peakRSS tracks the process's peak RSS from now until the returned function is called:
// the kernel's own high-water mark (VmHWM, reset through /proc/self/clear_refs) when it
// can be reset, otherwise RSS sampled every millisecond.
func peakRSS(base int64) (stop func() int64) {
	if os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil {
		return func() int64 {
			v, _ := rssStatus("VmHWM")
			return v
		}
	}
	done := make(chan struct{})
	out := make(chan int64)
	go func() {
		peak := base
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			v, _ := rssStatus("VmRSS")
			peak = max(peak, v)
			select {
			case <-done:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 { close(done); return <-out }
}

// rssStatus reads a size field (VmRSS, VmHWM) of /proc/self/status in bytes.
func rssStatus(field string) (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

func minMax(v []float64) (lo, hi float64) {
	lo, hi = v[0], v[0]
	for _, x := range v[1:] {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

func slicesMax(v []int) int {
	m := 0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}
