package fermiontest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
)

// RawGetRequest is the request RawGet sends: GET /hello, as wrk sends it.
var RawGetRequest = []byte("GET /hello HTTP/1.1\r\nHost: bench\r\nUser-Agent: wrk\r\n\r\n")

// RawGet sends RawGetRequest on w, a keep-alive HTTP/1.1 connection whose responses r
// reads, and reads the response, which must be a 200 with a Content-Length, to the
// end of its body: a load client with as little work of its own as HTTP/1.1 allows,
// so a benchmark's CPU per request is the server's.
func RawGet(w io.Writer, r *bufio.Reader) error {
	if _, err := w.Write(RawGetRequest); err != nil {
		return err
	}
	status, err := r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("status line %q", status)
	}
	n := -1
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			if n, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return fmt.Errorf("content length %q: %w", v, err)
			}
		}
	}
	if n < 0 {
		return fmt.Errorf("response without Content-Length")
	}
	_, err = r.Discard(n)
	return err
}
