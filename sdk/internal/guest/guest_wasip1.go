//go:build wasip1

package guest

import (
	"errors"
	"runtime"
	"unsafe"

	"fermion.dev/fermion/api/abi"
)

// buf is the request buffer the host writes into; out is reused for responses.
// Both live as long as the instance, so each request allocates only what the handler does.
var buf, out []byte

// served counts requests, for yieldEvery.
var served uint32

// yieldEvery is how many requests the guest serves between two yields to the Go
// scheduler. In a reactor, the runtime's other goroutines run only when the export's
// goroutine blocks or yields, and a request's goroutine rarely does; so once an
// allocation starts a GC cycle, its background mark worker never runs, and the cycle
// advances only through the assists of later allocations, which the SDK makes rare
// (one block per dozens of requests). The mark phase then lasts thousands of requests,
// each paying the write barrier on every pointer it stores. A yield lets the worker
// finish the cycle: it costs about 2 µs, so one per 32 requests adds ~70 ns to each,
// and measured it takes 27 % off hello's guest CPU per request (bench/RESULTS.md,
// "Issue 17 guest path"; docs/RATIONALE.md, "Why does the Go SDK yield…?").
const yieldEvery = 32

//go:wasmexport fermion_abi_v1
func abiVersion() int32 { return abi.Version }

//go:wasmexport fermion_buf
func fermionBuf(size int32) int32 {
	if size < 0 {
		return 0
	}
	// Always hand out a real address, even for an empty request.
	if cap(buf) < int(size) || cap(buf) == 0 {
		buf = make([]byte, max(size, 1))
	}
	buf = buf[:cap(buf)]
	return int32(uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
}

//go:wasmexport fermion_handle
func fermionHandle(n int32) int32 {
	if n < 0 || int(n) > len(buf) {
		return abi.HandleBadInput
	}
	resp, code := Serve(buf[:n], out[:0])
	if code != abi.HandleOK {
		return code
	}
	hostResponse(unsafe.Pointer(unsafe.SliceData(resp)), uint32(len(resp)))
	if served++; served%yieldEvery == 0 {
		runtime.Gosched()
	}
	// The host has copied the response; keep its buffer for the next one unless it
	// is large, so one large response does not pin its memory for the instance's life.
	if cap(resp) <= MaxKeptBody {
		out = resp
	} else {
		out = nil
	}
	return abi.HandleOK
}

//go:wasmimport fermion response
func hostResponse(ptr unsafe.Pointer, n uint32)

//go:wasmimport fermion http_send
func hostHTTPSend(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport fermion http_take
func hostHTTPTake(ptr unsafe.Pointer, n uint32)

// Send performs an encoded outbound request through the host and returns the encoded
// result (see abi.DecodeResult).
func Send(req []byte) ([]byte, error) {
	if len(req) == 0 {
		return nil, errors.New("empty outbound request")
	}
	n := hostHTTPSend(unsafe.Pointer(unsafe.SliceData(req)), uint32(len(req)))
	result := make([]byte, n)
	if n > 0 {
		hostHTTPTake(unsafe.Pointer(unsafe.SliceData(result)), n)
	}
	return result, nil
}
