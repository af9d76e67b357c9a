package sli_test

import (
	"fmt"
	"time"

	"fermion.dev/fermion/internal/sli"
)

// An agent aggregates per request, flushes every interval into its local buffer and
// backfills in order; the control plane decodes, merges across nodes and reads the
// fleet's SLIs.
func Example() {
	start := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	key := sli.Key{Deployment: "hello", Version: "v1", Route: "/hello"}
	buf, _ := sli.NewBuffer(1<<20, 1000)

	for _, node := range []string{"edge-1", "edge-2"} {
		agg := sli.NewAggregator(sli.Config{Node: node, Start: start, FirstSeq: sli.SeqFor(start, sli.DefaultInterval)})
		h := agg.Series(key)
		for i := 0; i < 1000; i++ {
			status := 200
			if node == "edge-2" && i%50 == 0 {
				status = 503
			}
			h.Record(status, time.Duration(200+i)*time.Microsecond, i == 0)
		}
		h.Release()
		for _, s := range agg.Flush(start.Add(sli.DefaultInterval)) {
			buf.Push(sli.EncodeSummary(nil, s))
		}
	}

	var fleet sli.Summary
	fleet.Key = key
	batch := buf.Oldest(100)
	for _, b := range batch {
		s, err := sli.DecodeSummary(b)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s seq %d: %d requests, %d errors, %d bytes\n", s.Node, s.Seq, s.Requests(), s.Errors(), len(b))
		sli.Merge(&fleet, s)
	}
	buf.Ack(len(batch))

	fmt.Printf("fleet: availability %.3f, p50 %v, p99 %v, within 1ms %d of %d\n",
		1-float64(fleet.Errors())/float64(fleet.Requests()),
		fleet.Latency.Quantile(0.5).Round(10*time.Microsecond), fleet.Latency.Quantile(0.99).Round(10*time.Microsecond),
		fleet.Latency.CountAtMost(time.Millisecond), fleet.Requests())
	// Exactly 1,602 of the latencies are at most 1 ms; CountAtMost also counts the
	// rest of 1 ms's bucket (up to 1.02 ms).

	// Output:
	// edge-1 seq 179655840: 1000 requests, 0 errors, 249 bytes
	// edge-2 seq 179655840: 1000 requests, 20 errors, 249 bytes
	// fleet: availability 0.990, p50 690µs, p99 1.19ms, within 1ms 1610 of 2000
}
