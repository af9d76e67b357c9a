package fhttp

import "fermion.dev/fermion/api/abi"

// maxKeptHeaders bounds the response header list kept between requests.
const maxKeptHeaders = 64

// response is the ResponseWriter every request reuses. It writes the encoded response
// straight into the buffer the host copies it from: the status and headers when the
// first byte of the body is written (after which, as in net/http, they no longer
// change), then the body bytes themselves, so a body is copied once, from the handler
// into that buffer, and the response costs one host call.
type response struct {
	header Header
	status int
	out    []byte // the encoded response so far
	bodyAt int    // offset of the body's length in out once the head is encoded, else -1
}

// reset readies w for the next request, whose encoding goes after out.
func (w *response) reset(out []byte) *response {
	// Drop the last response's strings (a loop: clear would call the runtime three
	// times for the usual one or two fields), and a list grown past maxKeptHeaders.
	for i := range len(w.header.list) {
		w.header.list[i] = abi.Header{}
	}
	list := w.header.list[:0]
	if cap(list) > maxKeptHeaders {
		list = nil
	}
	w.header = Header{list: list}
	w.status = 0
	w.out = out
	w.bodyAt = -1
	return w
}

// Header returns the response's header, which may be changed until the first Write.
func (w *response) Header() *Header { return &w.header }

// WriteHeader sets the status, unless it is already set.
func (w *response) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

// Write appends to the body; the status becomes 200 if nothing set it.
func (w *response) Write(p []byte) (int, error) {
	if w.bodyAt < 0 {
		// writeHead written out: most handlers write once, and a call costs a Go
		// wasm guest more than these lines of code.
		if w.status == 0 {
			w.status = StatusOK
		}
		hs := w.header.list
		if w.header.m != nil || w.header.wire != "" {
			hs = w.header.appendTo(nil)
		}
		w.out = abi.AppendResponseHead(w.out, w.status, hs)
		w.bodyAt = len(w.out) - 4
	}
	w.out = append(w.out, p...)
	return len(p), nil
}

// WriteString makes io.WriteString and fmt.Fprint write without converting to []byte.
func (w *response) WriteString(s string) (int, error) {
	if w.bodyAt < 0 {
		w.writeHead()
	}
	w.out = append(w.out, s...)
	return len(s), nil
}

// writeHead encodes the status and headers with an empty body, whose length finish
// corrects; it is for a response whose head is not yet written (bodyAt < 0). Write
// has a copy of it.
func (w *response) writeHead() {
	if w.status == 0 {
		w.status = StatusOK
	}
	hs := w.header.list
	if w.header.m != nil || w.header.wire != "" { // mapped, or a request's header set as the response's
		hs = w.header.appendTo(nil)
	}
	w.out = abi.AppendResponseHead(w.out, w.status, hs)
	w.bodyAt = len(w.out) - 4
}

// finish completes the encoding, whose head must be written (see writeHead), and
// returns it, ready for the host. It is small enough to be inlined into serve, which
// is why it neither writes the head nor drops a grown header list (reset does).
func (w *response) finish() []byte {
	out := w.out
	w.out = nil
	n := uint32(len(out) - w.bodyAt - 4)
	b := out[w.bodyAt : w.bodyAt+4]
	b[0], b[1], b[2], b[3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	return out
}
