package fermiontest

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"time"
)

// ServerWriter is an http.ResponseWriter for benchmarks and tests that call a handler
// without a server. Per response it does what net/http's server does with the
// handler's header map (server.go, Go 1.26): a copy of it at the first WriteHeader or
// Write (Header.Clone), and, once the handler returns (Finish), a Content-Length of the
// body unless the handler declared one, a Date read from the clock and formatted
// unless the handler set one, the copy's fields sorted and written (Header.WriteSubset),
// then the body. Only the socket is missing: the bytes are
// discarded. Headers the gateway adds cost most in that copying and writing, which a
// writer keeping only the map would leave out. The zero value is ready to use.
type ServerWriter struct {
	h, sent http.Header
	code, n int
	out     *bufio.Writer
	clen    [20]byte
	date    [29]byte // len(http.TimeFormat)
}

// Header returns the handler's header map, as net/http's writer does.
func (w *ServerWriter) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}

// WriteHeader fixes the status and copies the header map, the first time only.
func (w *ServerWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code, w.sent = code, w.Header().Clone()
	}
}

func (w *ServerWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.out == nil {
		w.out = bufio.NewWriterSize(io.Discard, 4096)
	}
	w.n += len(p)
	return w.out.Write(p)
}

// SetWriteDeadline and FlushError are there as on net/http's writer, so a handler arms
// write deadlines and flushes through http.ResponseController as it does on a server.
func (w *ServerWriter) SetWriteDeadline(time.Time) error { return nil }
func (w *ServerWriter) FlushError() error                { w.WriteHeader(http.StatusOK); return nil }

// Finish writes the response head as the server does after the handler returns,
// readies the writer for the next response (net/http makes a new header map for each)
// and returns the status the handler gave.
func (w *ServerWriter) Finish() int {
	w.WriteHeader(http.StatusOK)
	if w.out == nil {
		w.out = bufio.NewWriterSize(io.Discard, 4096)
	}
	w.out.WriteString("HTTP/1.1 ")
	w.out.Write(strconv.AppendInt(w.clen[:0], int64(w.code), 10))
	w.out.WriteString(" OK\r\n")
	if _, ok := w.sent["Date"]; !ok { // as chunkWriter.writeHeader does
		w.out.WriteString("Date: ")
		w.out.Write(time.Now().UTC().AppendFormat(w.date[:0], http.TimeFormat))
		w.out.WriteString("\r\n")
	}
	w.sent.WriteSubset(w.out, nil)
	if _, ok := w.sent["Content-Length"]; !ok {
		w.out.WriteString("Content-Length: ")
		w.out.Write(strconv.AppendInt(w.clen[:0], int64(w.n), 10))
		w.out.WriteString("\r\n")
	}
	w.out.WriteString("\r\n")
	w.out.Flush()
	code := w.code
	w.h, w.sent, w.code, w.n = make(http.Header), nil, 0, 0
	return code
}
