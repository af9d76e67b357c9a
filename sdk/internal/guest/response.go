package guest

import (
	"bytes"

	"fermion.dev/fermion/api/abi"
)

// MaxKeptBody bounds the response buffer kept between requests, so one large response
// does not pin its memory for the instance's life.
const MaxKeptBody = 64 << 10

// ResponseWriter buffers a whole response (the host sends it in one piece). Instantiated
// with an API's header type it is that API's response writer; an instance reuses one for
// every request, which both APIs' contracts allow: a handler must not use it after
// returning.
type ResponseWriter[H Header] struct {
	header H
	status int
	body   bytes.Buffer
	list   []abi.Header // the encoded header list, reused
}

// Reset readies w for the next request.
func (w *ResponseWriter[H]) Reset() *ResponseWriter[H] {
	if w.header == nil {
		w.header = make(H)
	}
	clear(w.header)
	w.status = 0
	if w.body.Cap() > MaxKeptBody {
		w.body = bytes.Buffer{}
	}
	w.body.Reset()
	return w
}

// Header returns the response's header map.
func (w *ResponseWriter[H]) Header() H { return w.header }

// WriteHeader sets the status, unless it is already set.
func (w *ResponseWriter[H]) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

// Write appends to the body; the status becomes 200 if nothing set it.
func (w *ResponseWriter[H]) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	return w.body.Write(p)
}

// WriteString makes io.WriteString and fmt.Fprint write without converting to []byte.
func (w *ResponseWriter[H]) WriteString(s string) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	return w.body.WriteString(s)
}

// Written returns the body so far and the capacity kept for it.
func (w *ResponseWriter[H]) Written() (body []byte, capacity int) {
	return w.body.Bytes(), w.body.Cap()
}

// AppendTo appends the encoded response to out.
func (w *ResponseWriter[H]) AppendTo(out []byte) []byte {
	if w.status == 0 {
		w.status = 200
	}
	r := abi.Response{Status: w.status, Body: w.body.Bytes()}
	r.Headers = FromHeader(w.list[:0], w.header)
	w.list = r.Headers[:0]
	return abi.AppendResponse(out, &r)
}
