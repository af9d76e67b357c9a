package sandbox_test

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/sandbox"
)

// TestReusedMemoryStartsClean: a new instance that takes the memory of a discarded one
// (memory_linux.go) starts as a fresh instance would, with snapshots on and off: the
// data segments (which the host writes, datapassive.go) and init's writes are there,
// and nothing of the earlier request, neither in the memory the snapshot covers nor in
// memory the earlier instance grew.
func TestReusedMemoryStartsClean(t *testing.T) {
	g := dumpGuest()
	for _, snap := range []bool{true, false} {
		t.Run(fmt.Sprintf("snapshot=%v", snap), func(t *testing.T) {
			e, _, _ := snapEngine(t, snap)
			s := rawSpec(g)
			s.Scaling.MaxRequestsPerInstance = 1 // every request on a new instance
			f := load(t, e, s)
			if got := f.Snapshot().Used; got != snap {
				t.Fatalf("snapshot used %v, want %v: %+v", got, snap, f.Snapshot())
			}
			if snap && !f.Snapshot().HostData {
				t.Fatalf("the host does not write the data segments: %+v", f.Snapshot())
			}
			secret := post("/first", []byte("first-caller-body "+strings.Repeat("x", 1500)))
			secret.Header.Set("Authorization", "Bearer s3cr3t-token")
			for i, req := range []*sandbox.Request{secret, get("/next"), get("/third")} {
				resp, err := invoke(t, f, req)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if !resp.Cold {
					t.Fatalf("request %d served by a warm instance", i)
				}
				body := checkDump(t, i, resp)
				has := strings.Contains(body, "s3cr3t")
				if i == 0 && !has {
					t.Fatal("the guest does not see its own request: the test proves nothing")
				}
				if i > 0 && (has || strings.Contains(body, "first-caller-body")) {
					t.Fatalf("request %d on a new instance sees an earlier request's bytes", i)
				}
				if i == 0 && runtime.GOOS == "linux" {
					// The next instance takes this one's memory: what the test is about.
					fermiontest.WaitFor(t, 5*time.Second, func() error {
						if n := sandbox.PooledMemories(f); n == 0 {
							return fmt.Errorf("no memory pooled after a discard")
						}
						return nil
					})
				}
			}
		})
	}
}

// TestReusedMemoryHammer: many requests at once, each on a new instance that may take a
// memory another just left, each sees its own request and no other's.
func TestReusedMemoryHammer(t *testing.T) {
	e, _, _ := snapEngine(t, true)
	s := rawSpec(dumpGuest())
	s.Scaling.MaxRequestsPerInstance = 1
	s.Scaling.MaxInstances = 6
	f := load(t, e, s)
	const workers, each = 6, 40
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := range each {
				tok := fmt.Sprintf("tok-%d-%d-", w, i)
				resp, err := invoke(t, f, post("/h", []byte(tok+strings.Repeat("y", 100*(i%7)))))
				if err != nil {
					errs <- fmt.Errorf("%s: %v", tok, err)
					return
				}
				body := string(resp.Body)
				if !strings.Contains(body, tok) {
					errs <- fmt.Errorf("%s: the guest does not see its own request", tok)
					return
				}
				if n := strings.Count(body, "tok-"); n != 1 {
					errs <- fmt.Errorf("%s: the instance shows %d requests' tokens", tok, n)
					return
				}
				if got := string(resp.Body[dumpLen-8 : dumpLen-4]); got != "DATA" {
					errs <- fmt.Errorf("%s: data segment reads %q", tok, got)
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// The dump guest's layout.
const (
	bufAt   = 3<<16 + 64 // fermion_buf's buffer, in memory fermion_buf grows
	dumpLen = 16 << 10   // the body: the buffer and what follows it
	dataAt  = 100        // a data segment
	initAt  = 200        // written by _initialize
)

// checkDump checks what the dump guest read from its data segment and _initialize's
// write, and returns the body.
func checkDump(t *testing.T, i int, resp *sandbox.Response) string {
	t.Helper()
	body := resp.Body
	if got := string(body[dumpLen-8 : dumpLen-4]); got != "DATA" {
		t.Fatalf("request %d: data segment reads %q", i, got)
	}
	if got := binary.LittleEndian.Uint32(body[dumpLen-4:]); got != 0x5eed {
		t.Fatalf("request %d: init's write reads %#x", i, got)
	}
	return string(body)
}

// dumpGuest answers with its request buffer and what follows it, which it keeps in
// memory it grows past the snapshot's, followed by a word of its data segment and one
// _initialize wrote.
func dumpGuest() rawGuest {
	store := []byte{0x36, 0x02, 0x00}
	load32 := []byte{0x28, 0x02, 0x00}
	return rawGuest{
		interruptible: true, // rewritten, so snapshots and host-written data apply
		data:          []rawData{{dataAt, []byte("DATA")}},
		init: cat(
			i32(initAt), i32(0x5eed), store,
			i32(1), opMemoryGrow, opDrop, // 3 pages
		),
		// Each instance grows its memory past what the snapshot covers and takes its
		// request there.
		buf: cat(i32(2), opMemoryGrow, opDrop, i32(bufAt)),
		handle: cat(
			i32(bufAt-12), i32(200), store,
			i32(bufAt-8), i32(0), store,
			i32(bufAt-4), i32(dumpLen), store,
			i32(bufAt+dumpLen-8), i32(dataAt), load32, store,
			i32(bufAt+dumpLen-4), i32(initAt), load32, store,
			i32(bufAt-12), i32(12+dumpLen), call(fnResponse), i32(abi.HandleOK)),
	}
}
