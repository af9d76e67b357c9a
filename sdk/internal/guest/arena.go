package guest

import (
	"unsafe"

	"fermion.dev/fermion/api/abi"
)

// Sizes of the blocks requests are carved from: each well under the Go runtime's
// 32 KiB small-object limit, each good for dozens of typical requests.
const (
	arenaChunk = 16 << 10 // bytes of request heads
	headerSlab = 256      // header entries
)

// Arena hands out what a request keeps (its strings, its header entries) from blocks
// that are allocated now and then and never written twice. A Go wasm guest pays several
// hundred nanoseconds per allocation, more than a small handler's own work, while
// copying a request's head is a few dozen. Nothing handed out is ever reused, so a
// handler may keep any of it, as with separate allocations; what it keeps holds its
// whole block (at most arenaChunk bytes) alive instead of just itself.
//
// The zero Arena is ready to use. It is not safe for concurrent use: a guest handles
// one request at a time.
type Arena struct {
	chunk []byte       // free bytes of the current chunk
	hs    []abi.Header // free entries of the current header slab
}

// String returns a string holding a copy of b.
func (a *Arena) String(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > arenaChunk/4 {
		return string(b)
	}
	if len(b) > len(a.chunk) {
		a.chunk = make([]byte, arenaChunk)
	}
	p := a.chunk[:len(b):len(b)]
	copy(p, b)
	a.chunk = a.chunk[len(b):]
	return unsafe.String(unsafe.SliceData(p), len(p))
}

// Headers returns an empty slice with room for n entries; appending past n copies.
func (a *Arena) Headers(n int) []abi.Header {
	if n > headerSlab/4 {
		return make([]abi.Header, 0, n)
	}
	if n > len(a.hs) {
		a.hs = make([]abi.Header, headerSlab)
	}
	p := a.hs[:0:n]
	a.hs = a.hs[n:]
	return p
}

// DecodeRequest decodes an encoded request into r: the head's strings and the header
// entries come from a, so nothing in r but Body aliases in, and Body is a view of in,
// valid only until in is reused (that is, while the handler runs).
func DecodeRequest(in []byte, r *abi.Request, a *Arena) error {
	head, nh, body, err := abi.SplitRequest(in)
	if err != nil {
		return err
	}
	r.Headers = a.Headers(nh)
	abi.ParseRequestHead(a.String(head), nh, r)
	r.Body = body
	return nil
}
