package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"fermion.dev/fermion/internal/agent"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/telemetry"
)

// autoscaleBench ramps concurrency up against a function whose requests wait (a guest
// sleeping per request, as one waiting on a backend does) and counts the cold starts:
// with target_utilization_percentage 100 every new level of concurrency starts an
// instance in a request's path; below 100 the node's autoscaler makes them ahead.
func autoscaleBench(args []string) error {
	fs := flag.NewFlagSet("autoscale", flag.ExitOnError)
	workers := fs.Int("workers", 32, "concurrency at the top of the ramp")
	step := fs.Duration("step", 500*time.Millisecond, "time between one more worker and the next")
	hold := fs.Duration("hold", 2*time.Second, "time at the top")
	sleep := fs.String("sleep", "20ms", "what each request waits in the guest")
	rounds := fs.Int("rounds", 2, "rounds; each ramps every setting once, interleaved")
	fs.Parse(args)
	r, err := root()
	if err != nil {
		return err
	}
	m, _, err := helloManifest(r)
	if err != nil {
		return err
	}
	wasm, err := fermiontest.BuildGuest(r, "examples/testdata/faults/slow", true)
	if err != nil {
		return err
	}
	m.Scaling.MinWarm = 1
	m.Scaling.MaxInstances = *workers * 2
	m.Limits.MaxConcurrency = *workers * 2
	m.Scaling.IdleTimeout = 5 * time.Minute
	type result struct {
		cold, requests  float64
		p50, p99        time.Duration
		warmAtTop, peak int
	}
	settings := []int{100, 70}
	results := map[int][]result{}
	for round := 1; round <= *rounds; round++ {
		for _, pct := range settings {
			m.Scaling.TargetUtilizationPercentage = pct
			logger, _ := telemetry.NewLogger(io.Discard, "error")
			dp, err := agent.NewDataPlane(agent.DataPlaneConfig{Logger: logger, Telemetry: true, Version: "bench"})
			if err != nil {
				return err
			}
			fn, err := dp.Deploy(context.Background(), m, wasm)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { dp.Serve(ctx, ln, nil); close(done) }()
			url := "http://" + ln.Addr().String() + "/hello?d=" + *sleep

			var mu sync.Mutex
			var lat []time.Duration
			var wg sync.WaitGroup
			start := time.Now()
			end := start.Add(time.Duration(*workers)*(*step) + *hold)
			peak := 0
			for i := 0; i < *workers; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(time.Until(start.Add(time.Duration(i) * (*step))))
					mine := getUntil(&http.Client{Transport: benchTransport()}, url, end)
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				}()
			}
			for time.Now().Before(end) {
				if s := fn.Stats(); s.Total > peak {
					peak = s.Total
				}
				time.Sleep(50 * time.Millisecond)
			}
			wg.Wait()
			st := fn.Stats()
			res := result{cold: testutil.ToFloat64(dp.Metrics.ColdStarts.WithLabelValues(m.App.Name, m.App.Version)),
				requests: float64(len(lat)), warmAtTop: st.Total, peak: peak}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			if len(lat) > 0 {
				res.p50, res.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
			}
			cancel()
			<-done
			results[pct] = append(results[pct], res)
			fmt.Fprintf(os.Stderr, "round %d target %3d%%: %4.0f cold starts in %6.0f requests, p50 %6.2f ms p99 %6.2f ms, instances %d\n",
				round, pct, res.cold, res.requests, ms(res.p50), ms(res.p99), res.peak)
		}
	}
	fmt.Printf("\nramp 1 → %d concurrent requests, one more every %s, then %s at the top; each request waits %s in the guest; %d rounds\n\n",
		*workers, *step, *hold, *sleep, *rounds)
	fmt.Println("| target_utilization_percentage | cold starts (median) | requests | p50 ms | p99 ms | instances at the top |")
	fmt.Println("|---|---|---|---|---|---|")
	med := map[int]result{}
	for _, pct := range settings {
		rs := results[pct]
		sort.Slice(rs, func(i, j int) bool { return rs[i].cold < rs[j].cold })
		x := rs[len(rs)/2]
		med[pct] = x
		fmt.Printf("| %d | %.0f | %.0f | %.2f | %.2f | %d |\n", pct, x.cold, x.requests, ms(x.p50), ms(x.p99), x.peak)
	}
	if med[100].cold > 0 {
		fmt.Printf("\ncold starts at 70%% / at 100%%: %.3f\n", med[70].cold/med[100].cold)
	}
	return nil
}
