// Command minimal is the reactor ABI with no SDK and no net/http: benchmarks use it to
// measure the floor of a guest call, the cost the SDK adds on top.
//
// It decodes every request, headers included, in place and allocates nothing per
// request, as a lean ABI-level guest would and as the SDK does: it keeps nothing of a
// request past the call, so its strings can be views of the exchange buffer. (Decoding
// with abi.DecodeRequest into a fresh Request instead, which copies the head and grows
// a header slice, costs a Go guest three to four allocations, each several hundred
// nanoseconds in wasm: more than the whole of an SDK guest's request.)
package main

import (
	"unsafe"

	"fermion.dev/fermion/api/abi"
)

var buf = make([]byte, 64<<10)
var out []byte

//go:wasmexport fermion_abi_v1
func abiVersion() int32 { return abi.Version }

//go:wasmexport fermion_buf
func fermionBuf(size int32) int32 {
	if int(size) > len(buf) {
		buf = make([]byte, size)
	}
	return int32(uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
}

var resp = abi.Response{Status: 200, Headers: []abi.Header{{Name: "Content-Type", Value: "text/plain; charset=utf-8"}}, Body: []byte("Hello from Fermion!\n")}

// req is every request's decoding, its header list reused.
var req = abi.Request{Headers: make([]abi.Header, 0, 16)}

//go:wasmexport fermion_handle
func fermionHandle(n int32) int32 {
	if decode {
		head, nh, body, err := abi.SplitRequest(buf[:n])
		if err != nil {
			return 1
		}
		abi.ParseRequestHead(unsafe.String(unsafe.SliceData(head), len(head)), nh, &req)
		req.Body = body
	}
	out = abi.AppendResponse(out[:0], &resp)
	hostResponse(unsafe.Pointer(unsafe.SliceData(out)), uint32(len(out)))
	return 0
}

const decode = true

//go:wasmimport fermion response
func hostResponse(ptr unsafe.Pointer, n uint32)

//go:wasmimport fermion http_send
func hostHTTPSend(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport fermion http_take
func hostHTTPTake(ptr unsafe.Pointer, n uint32)

func main() {}
