package controlplane

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	v1 "fermion.dev/fermion/api/v1"
)

// Why are API responses compact for programs and gzipped when large? GET /v1/nodes at
// 1,000 nodes was ~1 MB of indented JSON: the indentation alone is over a third of it,
// and encoding, sending and parsing it sat in front of the console's first render on a
// busy machine. People reading curl output keep the indented form (curl asks for */*);
// a client that names application/json in Accept (the Go client, the console) is a
// program and gets compact JSON. A body of gzipMinBytes or more is gzipped at the
// fastest level when the client accepts gzip: on loopback that costs about what it
// saves, across a network (an operator's laptop, a console at an edge site) it cuts the
// node list ~10×. See docs/RATIONALE.md.

// gzipMinBytes is the smallest JSON body that is gzipped: below it the header and the
// compressor's setup cost more than the bytes saved.
const gzipMinBytes = 32 << 10

var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}}

// writeJSON writes out as the JSON body of a response with status code: indented for
// people, compact for programs (wantsCompact), gzipped when large and accepted.
func writeJSON(w http.ResponseWriter, r *http.Request, code int, out any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if !wantsCompact(r) {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(out); err != nil {
		// A value the API built that does not encode is a bug; say so rather than
		// send half a body.
		writeError(w, r, http.StatusInternalServerError, &v1.Error{Code: v1.CodeInternal, Message: "encode the response: " + err.Error()})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Add("Vary", "Accept, Accept-Encoding")
	if buf.Len() < gzipMinBytes || !acceptsGzip(r) {
		h.Set("Content-Length", strconv.Itoa(buf.Len()))
		w.WriteHeader(code)
		w.Write(buf.Bytes())
		return
	}
	h.Set("Content-Encoding", "gzip")
	w.WriteHeader(code)
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(w)
	zw.Write(buf.Bytes())
	zw.Close()
	zw.Reset(nil) // let the pool hold no ResponseWriter
	gzipWriters.Put(zw)
}

// wantsCompact reports whether the request's Accept header names application/json
// itself (not only */* or application/*): a program, not a person at a terminal.
func wantsCompact(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || mt != "application/json" {
			continue
		}
		if q, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
				continue
			}
		}
		return true
	}
	return false
}

// acceptsGzip reports whether the request's Accept-Encoding admits gzip (and does not
// give it q=0).
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			continue
		}
		if q, ok := strings.CutPrefix(strings.ReplaceAll(strings.TrimSpace(params), " ", ""), "q="); ok {
			if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
				continue
			}
		}
		return true
	}
	return false
}
