package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/oci"
)

// The fleet benchmark runs one control-plane replica in this process and its simulated
// agents (cptest.SimAgent, the real NATS agent protocol, one connection each) in a
// child process, so that the CPU time and memory read here are the server's alone.
// The parent drives the child with one-line commands on its stdin; the child answers
// each with one line, "ok …" or "err …", on its stdout. The child exits when its stdin
// closes, so it cannot outlive the parent.

type fleetConfig struct {
	agents, baseline    int
	baselineRounds      int
	regions, zones      int
	renew, lost, window time.Duration
	joinConcurrency     int
	phaseTimeout        time.Duration
	selector            string
	profilePhase        string
	cpuprofile          string
	memprofile          string
}

func fleetBench(args []string) error {
	fs := flag.NewFlagSet("fleet", flag.ExitOnError)
	var c fleetConfig
	fs.IntVar(&c.agents, "agents", 1000, "simulated agents in the measured fleet")
	fs.IntVar(&c.baseline, "baseline", 10, "agents in the baseline fleet (same steps, same run)")
	fs.IntVar(&c.baselineRounds, "baseline-rounds", 5, "baseline fleets started; the median of each number is reported")
	fs.IntVar(&c.regions, "regions", 3, "region labels, assigned round-robin")
	fs.IntVar(&c.zones, "zones", 4, "zone labels per region")
	fs.DurationVar(&c.renew, "renew", 10*time.Second, "lease renewal interval (the server's default is 10s)")
	fs.DurationVar(&c.lost, "lost", 0, "lease lost timeout (0: 4 × renew, the server's default ratio)")
	fs.DurationVar(&c.window, "window", 30*time.Second, "each steady-state measurement window (10s to 60s)")
	fs.IntVar(&c.joinConcurrency, "join-concurrency", 50, "agents joining at once")
	fs.DurationVar(&c.phaseTimeout, "timeout", 5*time.Minute, "bound on each phase (join, converge)")
	fs.StringVar(&c.selector, "selector", "", "selector of the daemon deployment (e.g. region == \"eu-west\"); empty: every node")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile of the measured fleet's server to this file")
	fs.StringVar(&c.profilePhase, "profile", "all", "phase the CPU profile covers: join, converge, steady (the heartbeat window), echo or all")
	fs.StringVar(&c.memprofile, "memprofile", "", "write a heap profile at the end of the steady-state window")
	fs.Parse(args)
	if c.lost == 0 {
		c.lost = 4 * c.renew
	}
	switch {
	case c.agents < 1 || c.baseline < 1 || c.baselineRounds < 1:
		return errors.New("fleet: -agents, -baseline and -baseline-rounds must be at least 1")
	case c.window < 10*time.Second || c.window > 60*time.Second:
		return fmt.Errorf("fleet: -window %s: give 10s to 60s", c.window)
	case c.lost <= c.renew+5*time.Second:
		return fmt.Errorf("fleet: -lost %s must exceed -renew %s by more than 5s", c.lost, c.renew)
	case c.regions < 1 || c.zones < 1:
		return errors.New("fleet: -regions and -zones must be at least 1")
	}
	switch c.profilePhase {
	case "join", "converge", "steady", "echo", "all":
	default:
		return fmt.Errorf("fleet: -profile %q: want join, converge, steady, echo or all", c.profilePhase)
	}
	r, err := root()
	if err != nil {
		return err
	}
	m, wasm, err := helloManifest(r)
	if err != nil {
		return err
	}
	a, err := artifact.Package(m, wasm, artifact.Meta{})
	if err != nil {
		return err
	}
	ctx := context.Background()
	rssStart, _ := rss()

	var smalls []*fleetResult
	for i := range c.baselineRounds {
		fmt.Fprintf(os.Stderr, "baseline fleet %d of %d: %d agents\n", i+1, c.baselineRounds, c.baseline)
		small, err := runFleet(ctx, &c, c.baseline, a, false)
		if err != nil {
			return fmt.Errorf("baseline fleet of %d: %w", c.baseline, err)
		}
		smalls = append(smalls, small)
	}
	small := medianFleet(smalls)
	settleMemory()
	fmt.Fprintf(os.Stderr, "measured fleet: %d agents\n", c.agents)
	big, err := runFleet(ctx, &c, c.agents, a, true)
	if err != nil {
		return fmt.Errorf("fleet of %d: %w", c.agents, err)
	}
	printFleet(&c, small, big, rssStart)
	return nil
}

// fleetResult is what one fleet size measured. CPU is the server process's user +
// system time over the phase.
type fleetResult struct {
	n, rounds               int
	join, joinCPU           time.Duration
	joinRetries             int
	converge, convergeCPU   time.Duration
	assigned                time.Duration // PUT → every assignment written (in the server's table)
	reconcilesConverge      float64
	reconcileSecondsConv    float64
	rssIdle, heapIdle       uint64 // plane started, no agents, after GC
	steady                  *steadyResult
	agentCPUSteady          time.Duration // the child's CPU in the heartbeat window
	hbReqBytes, hbReplBytes int
}

type steadyResult struct {
	hbWindow, idleWindow, echoWindow time.Duration
	hbCPU, idleCPU, echoCPU          time.Duration
	heartbeats, idleHeartbeats       float64
	echoes                           int
	echoErrors                       int
	echoP50, echoP99                 time.Duration
	reconciles                       float64
	reconcileSeconds                 float64
	rssMean, rssMax                  uint64
	heapMean, heapMax                uint64
	heapLive, rssAfterGC             uint64
	goroutines                       int
	nodesReady, leaseLost            int
}

// medianFleet takes the median of each phase's numbers over several fleets.
func medianFleet(rs []*fleetResult) *fleetResult {
	med := func(get func(*fleetResult) time.Duration) time.Duration {
		ds := make([]time.Duration, len(rs))
		for i, r := range rs {
			ds[i] = get(r)
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	out := *rs[0]
	out.join = med(func(r *fleetResult) time.Duration { return r.join })
	out.joinCPU = med(func(r *fleetResult) time.Duration { return r.joinCPU })
	out.converge = med(func(r *fleetResult) time.Duration { return r.converge })
	out.assigned = med(func(r *fleetResult) time.Duration { return r.assigned })
	out.convergeCPU = med(func(r *fleetResult) time.Duration { return r.convergeCPU })
	out.rounds = len(rs)
	rec := make([]float64, len(rs))
	for i, r := range rs {
		rec[i] = r.reconcileSecondsConv
	}
	slices.Sort(rec)
	for _, r := range rs { // the passes of the round with the median pass time
		if r.reconcileSecondsConv == rec[len(rec)/2] {
			out.reconcilesConverge, out.reconcileSecondsConv = r.reconcilesConverge, r.reconcileSecondsConv
		}
	}
	return &out
}

func settleMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

// cpuTime is this process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// metricSum sums a counter's (or a histogram's sum's) values over every label set.
func metricSum(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			total += m.GetCounter().GetValue() + m.GetHistogram().GetSampleSum()
		}
	}
	return total
}

// eventCount counts one event type recorded by the server.
func eventCount(reg *prometheus.Registry, typ string) int {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "fermion_controlplane_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "type" && l.GetValue() == typ {
					return int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return 0
}

// profiler starts and stops the CPU profile around the chosen phase.
type profiler struct {
	file, phase string
	f           *os.File
}

func (p *profiler) start(phase string) error {
	if p.file == "" || p.f != nil || (p.phase != "all" && p.phase != phase) {
		return nil
	}
	f, err := os.Create(p.file)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return err
	}
	p.f = f
	return nil
}

// stop stops the profile if it covers phase alone.
func (p *profiler) stop(phase string) {
	if p.phase == phase {
		p.finish()
	}
}

func (p *profiler) finish() {
	if p.f == nil {
		return
	}
	pprof.StopCPUProfile()
	p.f.Close()
	p.f = nil
}

func runFleet(ctx context.Context, c *fleetConfig, n int, a *artifact.Artifact, measured bool) (*fleetResult, error) {
	res := &fleetResult{n: n}
	dir, err := os.MkdirTemp("", "fermion-bench-fleet-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	reg := prometheus.NewRegistry()
	// The server's own defaults, not cptest's fast test timing.
	p, err := cptest.StartPlane(ctx, dir, controlplane.Config{Name: "bench", LeaseRenew: c.renew, LeaseLost: c.lost,
		LeaderTTL: 10 * time.Second, ResyncInterval: 5 * time.Second, Metrics: reg})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if err := waitUntil(30*time.Second, func() error {
		if !p.IsLeader() {
			return errors.New("the replica does not lead")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	// Before the push: JetStream keeps the blocks it just wrote (the 5 MB module) cached
	// for a while, and they would be counted against the agents.
	settleMemory()
	res.rssIdle, _ = rss()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.heapIdle = ms.HeapAlloc
	image, err := pushArtifact(ctx, p, a)
	if err != nil {
		return nil, err
	}
	joinToken, err := p.CreateToken(ctx, v1.RoleNode)
	if err != nil {
		return nil, err
	}
	cl, err := client.New(p.API, p.Token)
	if err != nil {
		return nil, err
	}
	child, err := startAgents(p.NATSURL(), joinToken, n, c)
	if err != nil {
		return nil, err
	}
	defer child.close()

	prof := &profiler{file: c.cpuprofile, phase: c.profilePhase}
	if !measured {
		prof.file = ""
	}
	defer prof.finish()

	// A poll reads every node: poll a small fleet often enough to resolve its
	// milliseconds, a large one rarely enough not to load the server.
	poll := max(5*time.Millisecond, time.Duration(n)*50*time.Microsecond)

	// Join: from the command to every node ready in the server's table.
	if err := prof.start("join"); err != nil {
		return nil, err
	}
	cpu0, t0 := cpuTime(), time.Now()
	out, err := child.call("join", c.phaseTimeout)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	res.joinRetries = atoiField(out, "retries")
	if err := pollUntil(c.phaseTimeout, poll, func() error {
		if got := countNodes(p, v1.NodeReady); got != n {
			return fmt.Errorf("%d of %d nodes ready", got, n)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	res.join, res.joinCPU = time.Since(t0), cpuTime()-cpu0
	prof.stop("join")
	fmt.Fprintf(os.Stderr, "  %d agents joined and ready in %s (%d retries)\n", n, res.join.Round(time.Millisecond), res.joinRetries)

	// Converge: PUT a daemon deployment, then poll the status in-process (a poll over
	// HTTP would add the encoding of a thousand rows to the server's CPU every time).
	if err := prof.start("converge"); err != nil {
		return nil, err
	}
	rec0, recS0 := metricSum(reg, "fermion_controlplane_reconciles_total"), metricSum(reg, "fermion_controlplane_reconcile_duration_seconds")
	cpu0, t0 = cpuTime(), time.Now()
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, _, err = cl.PutDeployment(pctx, "fleet", v1.DeploymentSpec{Image: image, Daemon: true, Selector: c.selector}, client.Unconditional())
	cancel()
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	var last v1.DeploymentStatus
	if err := pollUntil(c.phaseTimeout, poll, func() error {
		st, ok := p.Status("fleet")
		if !ok {
			return errors.New("no deployment fleet")
		}
		last = st
		if res.assigned == 0 && st.Desired == n && c.selector == "" {
			res.assigned = time.Since(t0)
		}
		if !st.Converged || st.Desired == 0 || st.Ready != st.Desired {
			return fmt.Errorf("not converged: %d of %d ready, placement %q", st.Ready, st.Desired, st.Deployment.Placement.Message)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("converge: %w", err)
	}
	res.converge, res.convergeCPU = time.Since(t0), cpuTime()-cpu0
	res.reconcilesConverge = metricSum(reg, "fermion_controlplane_reconciles_total") - rec0
	res.reconcileSecondsConv = metricSum(reg, "fermion_controlplane_reconcile_duration_seconds") - recS0
	prof.stop("converge")
	pctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	st, err := cl.DeploymentStatus(pctx, "fleet")
	cancel()
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	if !st.Converged || (c.selector == "" && st.Ready != n) {
		return nil, fmt.Errorf("status over the API: converged %v, %d of %d ready", st.Converged, st.Ready, n)
	}
	fmt.Fprintf(os.Stderr, "  daemon deployment converged on %d nodes in %s\n", st.Ready, res.converge.Round(time.Millisecond))
	res.hbReqBytes, res.hbReplBytes = heartbeatSizes(&last.Deployment)
	if !measured {
		return res, nil
	}

	// Let the convergence burst drain: one renewal interval.
	time.Sleep(c.renew)
	s, err := measureSteady(ctx, c, p, reg, child, res, prof)
	if err != nil {
		return nil, err
	}
	res.steady = s
	return res, nil
}

func measureSteady(ctx context.Context, c *fleetConfig, p *cptest.Plane, reg *prometheus.Registry, child *agentProc, res *fleetResult, prof *profiler) (*steadyResult, error) {
	s := &steadyResult{}
	n := res.n
	hb := func() float64 { return metricSum(reg, "fermion_controlplane_heartbeats_total") }

	// 1. The leases renew: server CPU, heartbeats, memory.
	fmt.Fprintf(os.Stderr, "  steady state: %s with %d leases renewing every %s\n", c.window, n, c.renew)
	smp := startSampler()
	childCPU0, err := child.cpu()
	if err != nil {
		return nil, err
	}
	rec0, recS0 := metricSum(reg, "fermion_controlplane_reconciles_total"), metricSum(reg, "fermion_controlplane_reconcile_duration_seconds")
	if err := prof.start("steady"); err != nil {
		return nil, err
	}
	hb0, cpu0, t0 := hb(), cpuTime(), time.Now()
	time.Sleep(c.window)
	s.hbCPU, s.hbWindow, s.heartbeats = cpuTime()-cpu0, time.Since(t0), hb()-hb0
	prof.stop("steady")
	s.reconciles = metricSum(reg, "fermion_controlplane_reconciles_total") - rec0
	s.reconcileSeconds = metricSum(reg, "fermion_controlplane_reconcile_duration_seconds") - recS0
	childCPU1, err := child.cpu()
	if err != nil {
		return nil, err
	}
	res.agentCPUSteady = childCPU1 - childCPU0
	s.rssMean, s.rssMax, s.heapMean, s.heapMax = smp.stop()
	s.goroutines = runtime.NumGoroutine()
	if c.memprofile != "" {
		f, err := os.Create(c.memprofile)
		if err != nil {
			return nil, err
		}
		runtime.GC()
		pprof.WriteHeapProfile(f)
		f.Close()
	}
	settleMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.heapLive = ms.HeapAlloc
	s.rssAfterGC, _ = rss()

	// The baseline: the same number of bare NATS request/reply round trips, with the
	// heartbeat's request and reply sizes, at the same rate, over as many agent
	// connections, answered on the control plane's own connection to the same server.
	// Both it and the heartbeats are measured against an idle window (agents paused) so
	// that the controllers' periodic passes cancel out.
	reply := make([]byte, res.hbReplBytes)
	for i := range reply {
		reply[i] = 'x'
	}
	sub, err := p.Engine().Conn().QueueSubscribe("fermion.agent.*.echo", v1.QueueServers, func(m *nats.Msg) { m.Respond(reply) })
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if _, err := child.call("echo-join", c.phaseTimeout); err != nil {
		return nil, fmt.Errorf("echo connections: %w", err)
	}
	// A paused agent's lease ages from its last renewal: renew all just before pausing,
	// and keep each pause well inside the lease lost timeout.
	paused := min(c.window, c.lost-c.renew/2-5*time.Second)
	renewAllThenPause := func() error {
		before := hb()
		if _, err := child.call("kick", 30*time.Second); err != nil {
			return err
		}
		if err := waitUntil(30*time.Second, func() error {
			if got := hb() - before; got < float64(n) {
				return fmt.Errorf("%.0f of %d agents renewed", got, n)
			}
			return nil
		}); err != nil {
			return err
		}
		if _, err := child.call("pause", 30*time.Second); err != nil {
			return err
		}
		// Renewals already sent are still answered: wait for a quiet second.
		last, quiet := hb(), time.Now()
		return waitUntil(30*time.Second, func() error {
			if now := hb(); now != last {
				last, quiet = now, time.Now()
			}
			if time.Since(quiet) < time.Second {
				return errors.New("renewals still arriving after the pause")
			}
			return nil
		})
	}
	if err := renewAllThenPause(); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "  idle: %s with the agents paused\n", paused)
	hb0, cpu0, t0 = hb(), cpuTime(), time.Now()
	time.Sleep(paused)
	s.idleCPU, s.idleWindow, s.idleHeartbeats = cpuTime()-cpu0, time.Since(t0), hb()-hb0
	if err := renewAllThenPause(); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "  echo: %s, %d connections, one %d-byte request every %s each, %d-byte replies\n", paused, n, res.hbReqBytes, c.renew, res.hbReplBytes)
	if err := prof.start("echo"); err != nil {
		return nil, err
	}
	cpu0, t0 = cpuTime(), time.Now()
	out, err := child.call(fmt.Sprintf("echo %s %s %d", c.renew, paused, res.hbReqBytes), paused+30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("echo: %w", err)
	}
	s.echoCPU, s.echoWindow = cpuTime()-cpu0, time.Since(t0)
	prof.stop("echo")
	s.echoes, s.echoErrors = atoiField(out, "ok"), atoiField(out, "errors")
	s.echoP50, s.echoP99 = time.Duration(atoiField(out, "p50us"))*time.Microsecond, time.Duration(atoiField(out, "p99us"))*time.Microsecond
	before := hb()
	if _, err := child.call("kick", 30*time.Second); err != nil {
		return nil, err
	}
	if err := waitUntil(30*time.Second, func() error {
		if got := hb() - before; got < float64(n) {
			return fmt.Errorf("%.0f of %d agents renewed after the pause", got, n)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	s.nodesReady = countNodes(p, v1.NodeReady)
	s.leaseLost = eventCount(reg, v1.EventLeaseLost)
	return s, nil
}

// heartbeatSizes is the size of a converged agent's heartbeat and of its reply: one
// ready status, one assignment.
func heartbeatSizes(d *v1.Deployment) (req, reply int) {
	node := "edge-0000"
	hb, _ := json.Marshal(v1.Heartbeat{Statuses: []v1.InstanceStatus{{Deployment: d.Name, Node: node, Generation: d.Generation,
		Digest: d.Version.Digest, Version: d.Version.Version, State: v1.InstanceReady, Instances: 1}}})
	inst := max(d.Version.Instances, 1)
	rp, _ := json.Marshal(v1.HeartbeatReply{Assignments: v1.AssignmentSet{Node: node, Revision: 12345, Assignments: []v1.Assignment{{
		Deployment: d.Name, Node: node, Generation: d.Generation, Version: d.Version,
		Reserved: v1.Resources{MemoryBytes: d.Version.MemoryBytes * int64(inst), Instances: inst}}}}})
	return len(hb), len(rp)
}

func pushArtifact(ctx context.Context, p *cptest.Plane, a *artifact.Artifact) (string, error) {
	image := p.Registry + "/hello:1.0.0"
	ref, err := oci.ParseRef(image)
	if err != nil {
		return "", err
	}
	c := &oci.Client{Token: p.Token, HTTPClient: &http.Client{Timeout: 30 * time.Second}}
	if _, err := c.Push(ctx, ref, a); err != nil {
		return "", fmt.Errorf("push %s: %w", image, err)
	}
	return image, nil
}

func countNodes(p *cptest.Plane, state string) int {
	got := 0
	for _, node := range p.Nodes() {
		if node.State == state {
			got++
		}
	}
	return got
}

// waitUntil polls cond every 50ms until it returns nil or timeout passes.
func waitUntil(timeout time.Duration, cond func() error) error {
	return pollUntil(timeout, 50*time.Millisecond, cond)
}

// pollUntil polls cond every interval until it returns nil or timeout passes.
func pollUntil(timeout, interval time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}

// sampler reads RSS and the Go heap once a second.
type sampler struct {
	stopc               chan struct{}
	done                chan struct{}
	rssSum, heapSum     uint64
	rssMax, heapMax, nS uint64
}

func startSampler() *sampler {
	s := &sampler{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			r, _ := rss()
			s.rssSum, s.heapSum, s.nS = s.rssSum+r, s.heapSum+ms.HeapAlloc, s.nS+1
			s.rssMax, s.heapMax = max(s.rssMax, r), max(s.heapMax, ms.HeapAlloc)
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) stop() (rssMean, rssMax, heapMean, heapMax uint64) {
	close(s.stopc)
	<-s.done
	return s.rssSum / s.nS, s.rssMax, s.heapSum / s.nS, s.heapMax
}

// atoiField returns the integer after "key=" in a reply line, or 0.
func atoiField(line, key string) int {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// agentProc is the child process running the simulated agents.
type agentProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

func startAgents(natsURL, joinToken string, n int, c *fleetConfig) (*agentProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "fleet-agents", "-nats", natsURL, "-n", strconv.Itoa(n),
		"-regions", strconv.Itoa(c.regions), "-zones", strconv.Itoa(c.zones),
		"-concurrency", strconv.Itoa(c.joinConcurrency), "-lifetime", (c.phaseTimeout*3 + 10*time.Minute).String())
	// The token goes in the environment, not on a command line others can read.
	cmd.Env = append(os.Environ(), "FERMION_BENCH_JOIN_TOKEN="+joinToken)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the agents' process: %w", err)
	}
	ap := &agentProc{cmd: cmd, in: in, lines: make(chan string)}
	go func() {
		defer close(ap.lines)
		sc := bufio.NewScanner(outp)
		for sc.Scan() {
			ap.lines <- sc.Text()
		}
	}()
	if _, err := ap.read(30 * time.Second); err != nil {
		ap.close()
		return nil, fmt.Errorf("agents' process: %w", err)
	}
	return ap, nil
}

func (a *agentProc) read(timeout time.Duration) (string, error) {
	select {
	case l, ok := <-a.lines:
		if !ok {
			return "", errors.New("the agents' process exited")
		}
		if rest, ok := strings.CutPrefix(l, "ok"); ok {
			return strings.TrimSpace(rest), nil
		}
		return "", errors.New(strings.TrimSpace(strings.TrimPrefix(l, "err")))
	case <-time.After(timeout):
		return "", fmt.Errorf("no answer from the agents' process after %s", timeout)
	}
}

// call sends one command and waits for its answer.
func (a *agentProc) call(cmd string, timeout time.Duration) (string, error) {
	if _, err := fmt.Fprintln(a.in, cmd); err != nil {
		return "", fmt.Errorf("agents' process: %w", err)
	}
	return a.read(timeout)
}

// cpu is the child's CPU time so far.
func (a *agentProc) cpu() (time.Duration, error) {
	out, err := a.call("cpu", 10*time.Second)
	if err != nil {
		return 0, err
	}
	return time.Duration(atoiField(out, "us")) * time.Microsecond, nil
}

func (a *agentProc) close() {
	a.in.Close() // the child exits on EOF
	done := make(chan struct{})
	go func() { a.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		a.cmd.Process.Kill()
		<-done
	}
}

// fleetAgents is the child: it runs the simulated agents and answers the parent's
// commands (join, kick, pause, echo-join, echo, cpu) until its stdin closes.
func fleetAgents(args []string) error {
	fs := flag.NewFlagSet("fleet-agents", flag.ExitOnError)
	natsURL := fs.String("nats", "", "the control plane's NATS URL")
	n := fs.Int("n", 1000, "agents")
	regions := fs.Int("regions", 3, "region labels")
	zones := fs.Int("zones", 4, "zone labels per region")
	conc := fs.Int("concurrency", 50, "agents joining at once")
	lifetime := fs.Duration("lifetime", 30*time.Minute, "exit after this long, whatever happens")
	fs.Parse(args)
	token := os.Getenv("FERMION_BENCH_JOIN_TOKEN")
	if *natsURL == "" || token == "" {
		return errors.New("fleet-agents is started by `fermion-bench fleet`")
	}
	time.AfterFunc(*lifetime, func() {
		fmt.Fprintln(os.Stderr, "fleet-agents: lifetime exceeded; exiting")
		os.Exit(3)
	})
	ctx := context.Background()
	out := bufio.NewWriter(os.Stdout)
	answer := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	var agents []*cptest.SimAgent
	var echo []*nats.Conn
	defer func() {
		var wg sync.WaitGroup
		for _, a := range agents {
			wg.Go(a.Close)
		}
		for _, nc := range echo {
			nc.Close()
		}
		wg.Wait()
	}()
	regionNames := []string{"eu-west", "us-east", "ap-south", "sa-east", "af-south", "me-central"}
	labels := func(i int) map[string]string {
		r := i % *regions
		region := "region-" + strconv.Itoa(r)
		if r < len(regionNames) {
			region = regionNames[r]
		}
		return map[string]string{"region": region, "zone": region + "-" + string(rune('a'+(i / *regions)%*zones))}
	}
	answer("ok started")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "join":
			t0 := time.Now()
			list := make([]*cptest.SimAgent, *n)
			retries, err := parallel(*n, *conc, func(i int) error {
				a, err := cptest.JoinSimAgent(ctx, *natsURL, token, fmt.Sprintf("edge-%04d", i), v1.Register{
					Labels: labels(i), Capacity: v1.Resources{MemoryBytes: 4 << 30, MilliCPU: 2000, Instances: 64}, AgentVersion: "bench"})
				list[i] = a
				return err
			})
			for _, a := range list {
				if a != nil {
					agents = append(agents, a)
				}
			}
			if err != nil {
				answer("err %v", err)
				continue
			}
			answer("ok joined=%d retries=%d ms=%d", len(agents), retries, time.Since(t0).Milliseconds())
		case "kick":
			for _, a := range agents {
				a.Resume() // also renews at once
			}
			answer("ok")
		case "pause":
			for _, a := range agents {
				a.Pause()
			}
			answer("ok")
		case "echo-join":
			conns := make([]*nats.Conn, *n)
			_, err := parallel(*n, *conc, func(i int) error {
				name := fmt.Sprintf("echo-%04d", i)
				nc, err := joinConn(ctx, *natsURL, token, name)
				if err != nil {
					return err
				}
				// The first request on a connection subscribes its reply inbox: do it
				// now, not in the measured window (an agent did it when it joined).
				if _, err := nc.Request("fermion.agent."+name+".echo", nil, 5*time.Second); err != nil {
					nc.Close()
					return fmt.Errorf("echo %s: %w", name, err)
				}
				conns[i] = nc
				return nil
			})
			for _, nc := range conns {
				if nc != nil {
					echo = append(echo, nc)
				}
			}
			if err != nil {
				answer("err %v", err)
				continue
			}
			answer("ok conns=%d", len(echo))
		case "echo":
			if len(f) != 4 {
				answer("err usage: echo <interval> <duration> <request bytes>")
				continue
			}
			every, err1 := time.ParseDuration(f[1])
			d, err2 := time.ParseDuration(f[2])
			size, err3 := strconv.Atoi(f[3])
			if err := errors.Join(err1, err2, err3); err != nil {
				answer("err %v", err)
				continue
			}
			ok, fails, p50, p99 := echoLoad(echo, every, d, size)
			answer("ok ok=%d errors=%d p50us=%d p99us=%d", ok, fails, p50.Microseconds(), p99.Microseconds())
		case "cpu":
			answer("ok us=%d", cpuTime().Microseconds())
		default:
			answer("err unknown command %q", f[0])
		}
	}
	return sc.Err()
}

// parallel runs fn for 0..n-1, conc at a time, retrying each up to 5 times with a
// growing pause (as a real agent does); it returns the retries and the first error of
// an index that never succeeded.
func parallel(n, conc int, fn func(i int) error) (int, error) {
	var retries atomic.Int64
	var mu sync.Mutex
	var first error
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(conc, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				var err error
				for attempt := 0; attempt < 5; attempt++ {
					if attempt > 0 {
						retries.Add(1)
						time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
					}
					if err = fn(i); err == nil {
						break
					}
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return int(retries.Load()), first
}

// joinConn joins a node the way an agent does and returns its authenticated
// connection, which may publish on fermion.agent.<name>.>.
func joinConn(ctx context.Context, natsURL, token, name string) (*nats.Conn, error) {
	jc, err := nats.Connect(natsURL, nats.UserInfo(v1.JoinUser, token), nats.Name("bench-join "+name))
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", name, err)
	}
	defer jc.Close()
	b, _ := json.Marshal(v1.JoinRequest{Node: name})
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := jc.RequestWithContext(rctx, v1.SubjectJoin, b)
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", name, err)
	}
	var jr v1.JoinReply
	if err := json.Unmarshal(m.Data, &jr); err != nil {
		return nil, fmt.Errorf("join %s: %w", name, err)
	}
	if jr.Error != nil {
		return nil, fmt.Errorf("join %s: %w", name, jr.Error)
	}
	nc, err := nats.Connect(natsURL, nats.UserInfo(v1.NodeUserPrefix+name, jr.Secret), nats.Name("bench-echo "+name))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", name, err)
	}
	return nc, nil
}

// echoLoad sends, on each connection, one request of size bytes every interval (the
// connections staggered across the interval, as renewals are) for d.
func echoLoad(conns []*nats.Conn, every, d time.Duration, size int) (ok, fails int, p50, p99 time.Duration) {
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = 'x'
	}
	var mu sync.Mutex
	var lat []time.Duration
	var failed atomic.Int64
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for i, nc := range conns {
		name := strings.TrimPrefix(nc.Opts.Name, "bench-echo ")
		subject := "fermion.agent." + name + ".echo"
		offset := time.Duration(int64(every) * int64(i) / int64(len(conns)))
		wg.Go(func() {
			var mine []time.Duration
			for at := start.Add(offset); at.Before(end); at = at.Add(every) {
				time.Sleep(time.Until(at))
				t0 := time.Now()
				if _, err := nc.Request(subject, payload, 5*time.Second); err != nil {
					failed.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(lat) > 0 {
		p50, p99 = percentiles(lat)
	}
	return len(lat), int(failed.Load()), p50, p99
}

func printFleet(c *fleetConfig, small, big *fleetResult, rssStart uint64) {
	mib := func(v uint64) float64 { return float64(v) / (1 << 20) }
	sec := func(d time.Duration) float64 { return d.Seconds() }
	s := big.steady
	ratio := float64(big.n) / float64(small.n)
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\n%d simulated agents (%d regions × %d zones, own NATS connection each, child process) against one control-plane replica; lease renewal %s, lost after %s; GOMAXPROCS %d, %d CPUs, load average %s\n\n",
		big.n, c.regions, c.zones, c.renew, c.lost, runtime.GOMAXPROCS(0), runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "))
	fmt.Printf("| phase | %d agents (baseline, median of %d) | %d agents | ratio | ratio / %.0f× nodes |\n|---|---|---|---|---|\n", small.n, small.rounds, big.n, ratio)
	row := func(name string, a, b float64, unit string) {
		fmt.Printf("| %s | %.3f %s | %.3f %s | %.1f | %.2f |\n", name, a, unit, b, unit, b/a, b/a/ratio)
	}
	row("join, every node ready (wall)", sec(small.join), sec(big.join), "s")
	row("join, server CPU", sec(small.joinCPU), sec(big.joinCPU), "s")
	row("daemon deployment, PUT → converged, all ready (wall)", sec(small.converge), sec(big.converge), "s")
	if small.assigned > 0 && big.assigned > 0 { // without a selector
		row("… of which PUT → every assignment written", sec(small.assigned), sec(big.assigned), "s")
	}
	row("daemon deployment, server CPU", sec(small.convergeCPU), sec(big.convergeCPU), "s")
	fmt.Printf("| controller passes during convergence (their wall time) | %.0f (%.3f s) | %.0f (%.3f s) | | |\n",
		small.reconcilesConverge, small.reconcileSecondsConv, big.reconcilesConverge, big.reconcileSecondsConv)
	fmt.Printf("\njoin retries (5 s agent timeout): %d at %d agents; join concurrency %d\n", big.joinRetries, big.n, c.joinConcurrency)
	if s == nil {
		return
	}
	idleCores := sec(s.idleCPU) / sec(s.idleWindow)
	marginal := func(cpu, window time.Duration, count float64) float64 {
		return (sec(cpu) - idleCores*sec(window)) / count * 1e6
	}
	hbUS := marginal(s.hbCPU, s.hbWindow, s.heartbeats)
	echoUS := marginal(s.echoCPU, s.echoWindow, float64(s.echoes))
	fmt.Printf("\nsteady state, %d agents: windows of %s (heartbeats), %s (idle, agents paused), %s (echo)\n\n",
		big.n, s.hbWindow.Round(time.Second), s.idleWindow.Round(time.Second), s.echoWindow.Round(time.Second))
	fmt.Println("| measure | value |")
	fmt.Println("|---|---|")
	fmt.Printf("| heartbeats answered | %.0f (%.1f/s; expected %.1f/s) |\n", s.heartbeats, s.heartbeats/sec(s.hbWindow), float64(big.n)/sec(c.renew))
	fmt.Printf("| server CPU while the leases renew | **%.4f cores** (%.1f ms/s) |\n", sec(s.hbCPU)/sec(s.hbWindow), sec(s.hbCPU)/sec(s.hbWindow)*1000)
	fmt.Printf("| server CPU idle (agents paused, %d heartbeats) | %.4f cores |\n", int(s.idleHeartbeats), idleCores)
	fmt.Printf("| controller passes in the heartbeat window | %.0f, %.1f ms each (wall) |\n", s.reconciles, s.reconcileSeconds/max(s.reconciles, 1)*1000)
	fmt.Printf("| server CPU per heartbeat, all in | %.0f µs |\n", sec(s.hbCPU)/s.heartbeats*1e6)
	fmt.Printf("| server CPU per heartbeat, above idle | **%.0f µs** |\n", hbUS)
	fmt.Printf("| baseline: server CPU per bare NATS request/reply (%d B / %d B, same rate and connections), above idle | %.0f µs (%d sent, %d errors; p50 %.2f ms, p99 %.2f ms at the agent) |\n",
		big.hbReqBytes, big.hbReplBytes, echoUS, s.echoes, s.echoErrors, ms(s.echoP50), ms(s.echoP99))
	fmt.Printf("| **heartbeat / bare request-reply** | **%.1f×** |\n", hbUS/echoUS)
	fmt.Printf("| RSS: harness start / plane, no agents / %d agents mean, max / after GC | %.1f / %.1f / %.1f, %.1f / %.1f MiB |\n",
		big.n, mib(rssStart), mib(big.rssIdle), mib(s.rssMean), mib(s.rssMax), mib(s.rssAfterGC))
	fmt.Printf("| Go heap: no agents / %d agents mean, max / live after GC | %.1f / %.1f, %.1f / %.1f MiB |\n",
		big.n, mib(big.heapIdle), mib(s.heapMean), mib(s.heapMax), mib(s.heapLive))
	fmt.Printf("| per agent, live heap / RSS after GC | %.1f KiB / %.1f KiB |\n",
		float64(s.heapLive-min(s.heapLive, big.heapIdle))/float64(big.n)/1024, float64(s.rssAfterGC-min(s.rssAfterGC, big.rssIdle))/float64(big.n)/1024)
	fmt.Printf("| server goroutines | %d |\n", s.goroutines)
	fmt.Printf("| agents' process CPU in the heartbeat window (not the server's) | %.4f cores |\n", sec(big.agentCPUSteady)/sec(s.hbWindow))
	fmt.Printf("| nodes ready at the end / lease_lost events | %d / %d |\n", s.nodesReady, s.leaseLost)
	fmt.Println("\n\"above idle\" subtracts the idle window's CPU rate (the controllers' periodic passes over every node, the leader lease) from the window's CPU, then divides by the messages answered.")
}
