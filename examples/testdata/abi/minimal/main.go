// Command minimal is the reactor ABI with no SDK and no net/http: benchmarks use it to
// measure the floor of a guest call, the cost the SDK adds on top.
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

//go:wasmexport fermion_handle
func fermionHandle(n int32) int32 {
	var r abi.Request
	if decode {
		if err := abi.DecodeRequest(buf[:n], &r); err != nil {
			return 1
		}
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
