package main

import (
	"fmt"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
)

// procCounters are the process-wide counters gateway -counters reads around each run:
// what a request costs besides CPU time, to tell apart targets whose CPU per request
// differs by more than their in-process benchmarks say (syscalls, context switches,
// goroutines, garbage collection). All targets share the process, so each run's
// counters include the idle targets' background work; it is the same for every run.
type procCounters struct {
	user, sys        float64 // CPU seconds
	reads, writes    float64 // read and write system calls (/proc/self/io; 0 elsewhere)
	volCS, involCS   float64 // context switches of the process's threads
	faults           float64 // minor page faults
	goroutines       float64 // goroutines created
	gcCycles         float64
	allocBytes       float64
	allocObjects     float64
	gcCPU, schedIdle float64 // CPU seconds: garbage collection, and Ps idle
}

var counterSamples = []metrics.Sample{
	{Name: "/sched/goroutines-created:goroutines"},
	{Name: "/gc/cycles/total:gc-cycles"},
	{Name: "/gc/heap/allocs:bytes"},
	{Name: "/gc/heap/allocs:objects"},
	{Name: "/cpu/classes/gc/total:cpu-seconds"},
	{Name: "/cpu/classes/idle:cpu-seconds"},
}

func readCounters() procCounters {
	var c procCounters
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.user = float64(ru.Utime.Nano()) / 1e9
		c.sys = float64(ru.Stime.Nano()) / 1e9
		c.volCS, c.involCS = float64(ru.Nvcsw), float64(ru.Nivcsw)
		c.faults = float64(ru.Minflt)
	}
	if b, err := os.ReadFile("/proc/self/io"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ": ")
			n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			switch k {
			case "syscr":
				c.reads = n
			case "syscw":
				c.writes = n
			}
		}
	}
	metrics.Read(counterSamples)
	val := func(i int) float64 {
		switch s := counterSamples[i].Value; s.Kind() {
		case metrics.KindUint64:
			return float64(s.Uint64())
		case metrics.KindFloat64:
			return s.Float64()
		}
		return 0 // a metric this Go release does not have
	}
	c.goroutines, c.gcCycles, c.allocBytes, c.allocObjects, c.gcCPU, c.schedIdle = val(0), val(1), val(2), val(3), val(4), val(5)
	return c
}

// perRequest is the change from c0 to c per request, for n requests.
func (c procCounters) perRequest(c0 procCounters, n float64) procCounters {
	if n <= 0 {
		return procCounters{}
	}
	d := func(a, b float64) float64 { return (a - b) / n }
	return procCounters{
		user: d(c.user, c0.user), sys: d(c.sys, c0.sys),
		reads: d(c.reads, c0.reads), writes: d(c.writes, c0.writes),
		volCS: d(c.volCS, c0.volCS), involCS: d(c.involCS, c0.involCS), faults: d(c.faults, c0.faults),
		goroutines: d(c.goroutines, c0.goroutines), gcCycles: d(c.gcCycles, c0.gcCycles),
		allocBytes: d(c.allocBytes, c0.allocBytes), allocObjects: d(c.allocObjects, c0.allocObjects),
		gcCPU: d(c.gcCPU, c0.gcCPU), schedIdle: d(c.schedIdle, c0.schedIdle),
	}
}

// counterHeader and row print per-request counters as a markdown table.
const counterHeader = "| target | user µs | sys µs | GC CPU µs | read syscalls | write syscalls | ctx switches (vol.+invol.) | page faults | goroutines made | allocs | alloc bytes | GC cycles per 10k |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|---|"

func (c procCounters) row(name string) string {
	return fmt.Sprintf("| %s | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f+%.2f | %.3f | %.2f | %.1f | %.0f | %.2f |",
		name, c.user*1e6, c.sys*1e6, c.gcCPU*1e6, c.reads, c.writes, c.volCS, c.involCS, c.faults, c.goroutines,
		c.allocObjects, c.allocBytes, c.gcCycles*1e4)
}
