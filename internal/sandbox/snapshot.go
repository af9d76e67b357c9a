package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"

	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/telemetry"
)

// Why snapshots? A new reactor instance used to run the guest's _initialize, which for
// a Go guest starts its runtime and runs every package's init: most of a cold start, the
// same work with the same result every time. Instead, when a version is loaded, one
// instance runs _initialize and its state is recorded: the linear memory and every
// mutable global (exported for the host by the interrupt rewrite, snapshot_rewrite.go).
// Each new instance is then instantiated as before, its memory brought to the snapshot's
// contents and size and the globals set, and _initialize is not called (what Wizer does
// ahead of time for Wasmtime, done here at load time).
//
// The snapshot keeps the 4 KiB pages that differ from a new instance's memory before
// init: the data segments over zeros. When the rewrite made the segments passive
// (datapassive.go: every Go and Rust reactor), the host writes them and then the pages;
// when wazero writes them at instantiation, the restore copies the pages over them. A
// memory reused from a discarded instance (memory_linux.go) is reset to the segments
// and the pages in one pass as it is handed to the new instance (writeInto).

// Everything else an instance has is the same for a restored one as for a started one:
// tables (filled by instantiation; a module whose code writes a table is not
// snapshotted), the WASI configuration (arguments, environment, preopened grants, the
// standard streams), the host functions. What init read from outside is fixed per loaded
// version: the clock readings and random numbers its runtime took at start (a Go guest's
// runtime seeds math/rand and its map hash from random numbers at start; restored
// instances of one loaded version share those seeds, while crypto/rand reads fresh
// random numbers on every call). A guest whose init opens files is not snapshotted: the
// open files would not exist in a restored instance. Anything else makes the function
// fall back to running _initialize in every new instance, and the reason is logged,
// counted (fermion_instance_snapshots_total) and returned by Function.Snapshot.

// Snapshot reason codes: the result label of fermion_instance_snapshots_total.
const (
	SnapshotTaken         = telemetry.SnapshotTaken         // new instances start from the snapshot
	SnapshotDisabled      = telemetry.SnapshotDisabled      // EngineConfig.NoSnapshots
	SnapshotNotRewritten  = telemetry.SnapshotNotRewritten  // the interrupt rewrite could not handle the module
	SnapshotStartFunction = telemetry.SnapshotStartFunction // a start function would run again
	SnapshotTableWrites   = telemetry.SnapshotTableWrites   // code writes tables, which are not recorded
	SnapshotGlobalType    = telemetry.SnapshotGlobalType    // a mutable v128 or reference global
	SnapshotInitFailed    = telemetry.SnapshotInitFailed    // _initialize failed while the snapshot was taken
	SnapshotInitFiles     = telemetry.SnapshotInitFiles     // _initialize opened files
	SnapshotNodeMemory    = telemetry.SnapshotNodeMemory    // no node memory for the snapshot's instance
)

// SnapshotInfo says whether a function's new instances start from a snapshot, and what
// the snapshot holds.
type SnapshotInfo struct {
	Used bool // new instances are restored from the snapshot instead of running _initialize
	// Code is SnapshotTaken, or why no snapshot is used (one of the Snapshot… codes);
	// Reason says it for people. Both are empty for command modules, which run once per
	// request and have nothing to snapshot.
	Code, Reason string
	MemoryBytes  int64 // linear memory of a restored instance
	StoredBytes  int64 // the pages the snapshot keeps: those that differ from the data segments over zeros
	HostData     bool  // the host writes the data segments, then the pages (datapassive.go)
	Globals      int   // mutable globals restored
	// What _initialize read while the snapshot was taken, fixed for every restored
	// instance: bytes of random numbers, clock readings, files opened.
	RandomBytes, ClockReads, FileOpens int64
	Took                               time.Duration // taking the snapshot, at load
}

// snapshots is a Function's snapshot state. snap and info are set while the function
// loads, before any other instance exists, and only read afterwards.
type snapshots struct {
	snap *snapshot
	info SnapshotInfo
	rec  *initRecorder // set while the snapshot is being taken
}

// snapshot is an initialised instance's state.
type snapshot struct {
	pages uint32 // memory size, in 64 KiB pages
	// base, when set, is the data segments the host writes before the pages (fresh
	// memory is then empty). runs and data are the pages that differ from the data
	// segments over zeros.
	base []dataSegment
	runs []pageRun
	data []byte // the runs' contents, back to back
	// layout is the initialised memory's contents as one ordered list of writes, the
	// segments with the runs cut out of them and the runs themselves (planWrites): set
	// when the host writes the segments and they are in address order without
	// overlaps, which writeInto's and restore's one pass needs.
	layout []memWrite
	names  []string // the mutable globals' export names
	values []uint64 // their values, as api.Global.Get returns them
}

// memWrite is bytes written at off into a new instance's memory.
type memWrite struct {
	off uint64
	b   []byte
}

// pageRun is a run of memory that differs from a freshly instantiated memory: it starts
// at off and its contents are data[start:end].
type pageRun struct {
	off, start, end uint32
}

// snapshotPage is the granularity of the recorded memory: the host's page size, so a
// restore touches no page the guest's init left as instantiation made it.
const snapshotPage = 4 << 10

// Snapshot reports whether new instances start from a snapshot, and why not.
func (f *Function) Snapshot() SnapshotInfo { return f.snaps.info }

// takeSnapshot takes the function's snapshot, or records why it cannot. code is the
// module as compiled. It runs while the function loads, before any other instance.
func (f *Function) takeSnapshot(ctx context.Context, code []byte) {
	if f.abi != ABIReactor {
		return
	}
	t0 := time.Now()
	info := f.snapshotOnce(ctx, code)
	info.Took = time.Since(t0)
	f.snaps.info = info
	f.engine.metrics.InstanceSnapshot(info.Code)
	if info.Used {
		f.logger.Info("instances start from a snapshot", "memory_bytes", info.MemoryBytes,
			"stored_bytes", info.StoredBytes, "globals", info.Globals, "init_random_bytes", info.RandomBytes,
			"init_clock_reads", info.ClockReads, "took_ms", float64(info.Took.Microseconds())/1000)
		return
	}
	f.logger.Warn("instances start without a snapshot", "reason_code", info.Code, "reason", info.Reason)
}

func (f *Function) snapshotOnce(ctx context.Context, code []byte) SnapshotInfo {
	no := func(c, reason string) SnapshotInfo { return SnapshotInfo{Code: c, Reason: reason} }
	if f.engine.noSnapshots {
		return no(SnapshotDisabled, "snapshots are switched off on this node; every new instance runs _initialize")
	}
	if f.spec.NoSnapshot {
		return no(SnapshotDisabled, "the manifest sets component.snapshot = false; every new instance runs _initialize")
	}
	if !f.interruptible {
		return no(SnapshotNotRewritten, "the module could not be rewritten for interrupts, so its mutable globals cannot be read; every new instance runs _initialize")
	}
	o, err := readOutline(code)
	if err != nil {
		return no(SnapshotNotRewritten, fmt.Sprintf("%v; every new instance runs _initialize", err))
	}
	if reason, c := staticRefusal(o); c != "" {
		return no(c, reason)
	}

	rec := &initRecorder{}
	f.snaps.rec = rec
	defer func() { f.snaps.rec = nil }()
	// What a new instance's memory holds before it is restored: the data segments
	// over zeros, written by wazero (read from an instance made without init) or by
	// the host (datapassive.go; built here).
	var pristine []byte
	if f.data == nil {
		var err error
		if pristine, err = f.pristineMemory(ctx); err != nil {
			return no(SnapshotInitFailed, fmt.Sprintf("instantiate for a snapshot: %v; every new instance runs _initialize", err))
		}
	}
	inst, err := f.newInstance(ctx, telemetry.StartPrewarm) // not counted: f.snaps.rec is set
	if err != nil {
		var nm *nodeMemoryError
		if errors.As(err, &nm) {
			return no(SnapshotNodeMemory, fmt.Sprintf("no node memory to take a snapshot (%v); every new instance runs _initialize", err))
		}
		return no(SnapshotInitFailed, fmt.Sprintf("%v; the snapshot is not taken and every new instance runs _initialize (and fails the same way)", err))
	}
	defer f.dropSnapshotInstance(inst)
	info := SnapshotInfo{RandomBytes: rec.random.Load(), ClockReads: rec.clock.Load(), FileOpens: rec.opens.Load()}
	if info.FileOpens > 0 {
		return no(SnapshotInitFiles, fmt.Sprintf("_initialize opened %d file(s), which a restored instance would not have open; every new instance runs _initialize", info.FileOpens))
	}
	mem, ok := inst.mem.Read(0, inst.mem.Size())
	if !ok {
		return no(SnapshotInitFailed, "read the initialised memory: out of range")
	}
	s := &snapshot{pages: inst.mem.Size() / 65536}
	if f.data != nil {
		pristine = make([]byte, len(mem))
		if err := writeData(pristine, f.data); err != nil {
			return no(SnapshotInitFailed, fmt.Sprintf("%v; every new instance runs _initialize", err))
		}
		s.base = f.data
	}
	s.runs, s.data = diffPages(pristine, mem)
	s.planWrites()
	info.StoredBytes, info.HostData = int64(len(s.data)), s.base != nil
	for _, g := range o.facts.globals {
		gl := inst.mod.ExportedGlobal(g.name())
		if gl == nil {
			return no(SnapshotNotRewritten, fmt.Sprintf("the module does not export global %s; every new instance runs _initialize", g.name()))
		}
		s.names = append(s.names, g.name())
		s.values = append(s.values, gl.Get())
	}
	f.snaps.snap = s
	info.Used, info.Code = true, SnapshotTaken
	info.MemoryBytes, info.Globals = int64(len(mem)), len(s.names)
	return info
}

// staticRefusal says why a module's outline rules out a snapshot, if it does.
func staticRefusal(o moduleOutline) (reason, code string) {
	switch {
	case o.hasStart:
		return "the module has a start function, which would run again in every restored instance; every new instance runs _initialize", SnapshotStartFunction
	case o.facts.tableWrites:
		return "the module's code writes to its tables, which a snapshot does not record; every new instance runs _initialize", SnapshotTableWrites
	}
	for _, g := range o.facts.globals {
		switch g.typ {
		case valI32, valI64, valF32, valF64:
		default:
			return fmt.Sprintf("mutable global %d holds a %s, which a snapshot cannot carry; every new instance runs _initialize",
				g.index, api.ValueTypeName(g.typ)), SnapshotGlobalType
		}
	}
	return "", ""
}

// pristineMemory instantiates the module without running _initialize and returns a
// copy of its memory: what every new instance holds before it is restored.
func (f *Function) pristineMemory(ctx context.Context) ([]byte, error) {
	stdout, stderr := &guestLog{f: f, stream: "stdout"}, &guestLog{f: f, stream: "stderr"}
	mod, err := f.rt.InstantiateModule(ctx, f.compiled, f.snaps.rec.config(f.moduleConfig(stdout, stderr, make(chan struct{}), new(time.Duration)), f))
	if err != nil {
		return nil, err
	}
	defer mod.Close(ctx)
	mem := mod.Memory()
	if mem == nil {
		return nil, errors.New("module has no memory")
	}
	b, _ := mem.Read(0, mem.Size())
	return bytes.Clone(b), nil
}

// Why one ordered list of writes? A reset used to write the data segments (zeroing the
// bytes between them) and then copy the snapshot's pages over them: every byte of a
// page init changed was written twice, about a tenth of the bytes of a reset of hello
// or echo (348 and 487 KB of 3.2 and 4.4 MB), and a reset is nothing but memory
// bandwidth. planWrites cuts the pages out of the segments once, when the snapshot is
// taken; a reset then writes every byte below the snapshot's size exactly once. The
// writes point into the segments and the pages the snapshot holds anyway: no copy.

// planWrites sets s.layout from the segments and the runs, when the host writes the
// segments and they are in address order without overlaps; else it leaves it nil and
// writeInto and restore write the segments and then the runs.
func (s *snapshot) planWrites() {
	s.layout = nil
	if s.base == nil || !sortedSegments(s.base) {
		return
	}
	// w is non-nil even when empty: planned. done: every byte below it is planned, the
	// writes go up from there. ri: the next run to write.
	w := make([]memWrite, 0, len(s.base)+2*len(s.runs))
	var done uint64
	ri := 0
	runEnd := func(r pageRun) uint64 { return uint64(r.off) + uint64(r.end-r.start) }
	for _, d := range s.base {
		off, end := max(uint64(d.off), done), uint64(d.off)+uint64(len(d.data))
		for off < end {
			if ri < len(s.runs) && uint64(s.runs[ri].off) <= off { // the run's pages replace the segment's bytes
				r := s.runs[ri]
				ri++
				w = append(w, memWrite{off: uint64(r.off), b: s.data[r.start:r.end]})
				done = runEnd(r)
				off = max(off, done)
				continue
			}
			next := end
			if ri < len(s.runs) {
				next = min(next, uint64(s.runs[ri].off))
			}
			w = append(w, memWrite{off: off, b: d.data[off-uint64(d.off) : next-uint64(d.off)]})
			off, done = next, next
		}
	}
	for _, r := range s.runs[ri:] {
		w = append(w, memWrite{off: uint64(r.off), b: s.data[r.start:r.end]})
	}
	s.layout = w
}

// writeInto is a memoryReset: it brings buf, a reused memory whose first dirty bytes
// may hold anything and the rest zero, to the snapshot's contents when the host writes
// the data segments: in one pass over the dirty bytes, each of the layout's writes made
// and the bytes between them zeroed. Segments out of address order cost a second pass
// (all zeroed, then written). A snapshot whose data wazero writes, or larger than buf,
// only has the dirty bytes zeroed and is copied by restore. Past the snapshot's size
// every byte is zero afterwards, so that is the new dirty length.
func (s *snapshot) writeInto(buf []byte, dirty uint64) (uint64, bool) {
	size := uint64(s.pages) << 16
	if s.base == nil || size > uint64(len(buf)) {
		clear(buf[:dirty])
		return 0, false
	}
	if s.layout == nil {
		clear(buf[:dirty])
		if writeData(buf, s.base) != nil {
			clear(buf[:size])
			return 0, false
		}
		for _, r := range s.runs {
			copy(buf[r.off:], s.data[r.start:r.end])
		}
		return size, true
	}
	var pos uint64
	for _, w := range s.layout {
		off := w.off
		if pos < dirty && pos < off {
			clear(buf[pos:min(off, dirty)])
		}
		pos = off + uint64(copy(buf[off:], w.b))
	}
	if pos < dirty {
		clear(buf[pos:dirty])
	}
	return size, true
}

// sortedSegments reports whether segs are in address order and do not overlap.
func sortedSegments(segs []dataSegment) bool {
	var end uint64
	for _, d := range segs {
		if uint64(d.off) < end {
			return false
		}
		end = uint64(d.off) + uint64(len(d.data))
	}
	return true
}

// dropSnapshotInstance closes the instance a snapshot was taken from: it holds no
// request's bytes, but a pool of min_warm 0 must start empty.
func (f *Function) dropSnapshotInstance(inst *instance) {
	inst.close()
	f.engine.memory.release(f.memHold)
	f.mu.Lock()
	f.memBytes -= inst.memBytes
	f.mu.Unlock()
}

// diffPages returns the pages of mem that differ from base (taken as zero past its
// end), as runs of adjacent pages and their contents. The runs are found first and
// their contents copied into one allocation of the exact size: appending them one page
// at a time regrew megabytes of slice for a Go guest.
func diffPages(base, mem []byte) ([]pageRun, []byte) {
	var runs []pageRun
	size := uint32(0)
	for off := 0; off < len(mem); off += snapshotPage {
		end := min(off+snapshotPage, len(mem))
		if samePage(base, mem, off, end) {
			continue
		}
		n := uint32(end - off)
		if k := len(runs); k > 0 && int(runs[k-1].off)+int(runs[k-1].end-runs[k-1].start) == off {
			runs[k-1].end += n
		} else {
			runs = append(runs, pageRun{off: uint32(off), start: size, end: size + n})
		}
		size += n
	}
	if len(runs) == 0 {
		return nil, nil
	}
	data := make([]byte, size)
	for _, r := range runs {
		copy(data[r.start:r.end], mem[r.off:])
	}
	return runs, data
}

// samePage reports whether mem[off:end] equals base there, base being zero past its end.
func samePage(base, mem []byte, off, end int) bool {
	n := min(max(len(base)-off, 0), end-off)
	if n > 0 && !bytes.Equal(mem[off:off+n], base[off:off+n]) {
		return false
	}
	for _, c := range mem[off+n : end] {
		if c != 0 {
			return false
		}
	}
	return true
}

// writeZeroed writes the snapshot's memory into buf, a memory of at least the
// snapshot's size that is zero but for the data segments wazero wrote, if it wrote them:
// the layout's writes alone when there is one, else the segments and then the runs.
func (s *snapshot) writeZeroed(buf []byte) error {
	if s.layout != nil && uint64(len(buf)) >= uint64(s.pages)<<16 {
		for _, w := range s.layout {
			copy(buf[w.off:], w.b)
		}
		return nil
	}
	if s.base != nil {
		if err := writeData(buf, s.base); err != nil {
			return err
		}
	}
	for _, r := range s.runs {
		copy(buf[r.off:], s.data[r.start:r.end])
	}
	return nil
}

// restore brings a freshly instantiated module to the snapshot's state. lm is its
// memory when Fermion's allocator made it. It only writes the module's own memory and
// globals; on failure the instance must be discarded.
func (s *snapshot) restore(mod api.Module, lm *mappedMemory) error {
	mem := mod.Memory()
	if mem == nil {
		return errors.New("restore snapshot: module has no memory")
	}
	if have := mem.Size() / 65536; have < s.pages {
		if _, ok := mem.Grow(s.pages - have); !ok {
			return fmt.Errorf("restore snapshot: grow memory to %d pages: refused", s.pages)
		}
	}
	buf, ok := mem.Read(0, mem.Size())
	if !ok {
		return errors.New("restore snapshot: read memory: out of range")
	}
	if lm == nil || !lm.restored { // else the allocator reset it to the snapshot (writeInto)
		if err := s.writeZeroed(buf); err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
	}
	for i, name := range s.names {
		mg, ok := mod.ExportedGlobal(name).(api.MutableGlobal)
		if !ok {
			return fmt.Errorf("restore snapshot: global %s is not exported as mutable", name)
		}
		mg.Set(s.values[i])
	}
	return nil
}

// initRecorder counts what a guest's init reads from outside while a snapshot is taken.
type initRecorder struct {
	random, clock, opens atomic.Int64
}

// config returns cfg with the clocks, the random source and the file grants counting
// into r. A nil r returns cfg.
func (r *initRecorder) config(cfg wazero.ModuleConfig, f *Function) wazero.ModuleConfig {
	if r == nil {
		return cfg
	}
	cfg = cfg.
		WithWalltime(func() (int64, int32) {
			r.clock.Add(1)
			t := time.Now()
			return t.Unix(), int32(t.Nanosecond())
		}, sys.ClockResolution(time.Microsecond.Nanoseconds())).
		WithNanotime(func() int64 {
			r.clock.Add(1)
			return nanotime()
		}, sys.ClockResolution(1)).
		WithRandSource(countingReader{r: rand.Reader, n: &r.random})
	if len(f.grants) > 0 {
		fsc := wazero.NewFSConfig()
		for _, g := range f.grants {
			fsc = fsc.(sysfs.FSConfig).WithSysFSMount(countingFS{FS: g.fs, opens: &r.opens}, g.dest)
		}
		cfg = cfg.WithFSConfig(fsc)
	}
	return cfg
}

// nanoBase and nanotime are the monotonic clock every instance reads (moduleConfig), so
// a restored instance's clock continues from the readings its snapshot holds.
var nanoBase = time.Now()

func nanotime() int64 { return int64(time.Since(nanoBase)) }

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// countingFS counts the files a guest opens in a grant. The grant's root does not
// count: it is the preopened directory every instance has, which wazero opens on its
// first use (a Go guest's init lists its preopens), in a restored instance too.
type countingFS struct {
	experimentalsys.FS
	opens *atomic.Int64
}

func (c countingFS) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	if p != "." {
		c.opens.Add(1)
	}
	return c.FS.OpenFile(p, flag, perm)
}

// SnapshotPlan says, without running the module, whether a node would start a reactor
// module's instances from a snapshot: SnapshotTaken when it would take one, else the
// code and reason of the refusal. A node that takes it may still fall back, logging and
// counting why, when _initialize fails or opens files while the snapshot is taken. lim
// is the manifest's load bounds, as Check takes them.
func SnapshotPlan(wasm []byte, lim manifest.LoadLimits) (code, reason string, err error) {
	vetted, err := vet(wasm, EffectiveLoadLimits(lim, manifest.LoadLimits{}))
	if err != nil {
		return "", "", err
	}
	rewritten, err := instrumentInterrupt(vetted)
	if errors.Is(err, errUninstrumentable) {
		return SnapshotNotRewritten, fmt.Sprintf("the module could not be rewritten for interrupts (%v), so its mutable globals cannot be read; every new instance runs _initialize", err), nil
	}
	if err != nil {
		return "", "", fmt.Errorf("rewrite module: %w", err)
	}
	o, err := readOutline(rewritten)
	if err != nil {
		return "", "", err
	}
	if reason, code := staticRefusal(o); code != "" {
		return code, reason, nil
	}
	return SnapshotTaken, "each node runs _initialize once per version and starts new instances from a snapshot of it; what init reads from the clock and random numbers is then fixed per version", nil
}
