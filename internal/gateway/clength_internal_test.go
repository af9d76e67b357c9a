package gateway

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
)

// sizedTarget answers with the status and the number of body bytes the request's path
// asks for (/sized/STATUS/N), and one field of its own.
type sizedTarget struct{ fixedTarget }

func (t *sizedTarget) Invoke(ctx context.Context, req *sandbox.Request) (*sandbox.Response, error) {
	parts := strings.Split(strings.TrimPrefix(req.URI, "/sized/"), "/")
	status, _ := strconv.Atoi(parts[0])
	n, _ := strconv.Atoi(parts[1])
	resp := req.Reply
	*resp = sandbox.Response{Status: status, Header: fixedHeader, Body: bytes.Repeat([]byte{'x'}, n), End: time.Now()}
	return resp, nil
}

// TestContentLengthAtBufferEdge: on the gateway's own server, a response's framing on
// the wire is one Content-Length line with the body's exact length, whichever of
// net/http (bodies up to its 2048-byte buffer, serverCountsBody) and the gateway
// (larger bodies, HEAD) writes it, on both sides of the buffer's edge; a HEAD response
// declares the guest's body, even an empty one; a 204 declares none. Read as raw bytes,
// so a second Content-Length or a chunked body cannot hide behind a client's parsing.
func TestContentLengthAtBufferEdge(t *testing.T) {
	g := New(Config{})
	spec := sandbox.Spec{Name: "sized", Version: "1", Limits: manifest.Limits{MaxRequestBody: 1 << 20}}
	if err := g.SetRoutes([]Route{{Prefix: "/sized", Target: &sizedTarget{fixedTarget{spec}}}}); err != nil {
		t.Fatal(err)
	}
	ln := ServeListening(t, g)
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	tests := []struct {
		method string
		status int
		n      int
		want   string // the Content-Length line's value; "" none
	}{
		{"GET", 200, 0, "0"},
		{"GET", 200, 1, "1"},
		{"GET", 200, smallBody - 1, strconv.Itoa(smallBody - 1)},
		{"GET", 200, smallBody, strconv.Itoa(smallBody)},
		{"GET", 200, smallBody + 1, strconv.Itoa(smallBody + 1)},
		{"GET", 200, 3 * writeChunk / 2, strconv.Itoa(3 * writeChunk / 2)},
		{"POST", 201, 20, "20"},
		{"HEAD", 200, 0, "0"},
		{"HEAD", 200, 20, "20"},
		{"HEAD", 200, smallBody + 1, strconv.Itoa(smallBody + 1)},
		{"GET", 204, 0, ""},
	}
	// One keep-alive connection for all: a wrong length would also break the framing
	// of the responses after it.
	for _, tt := range tests {
		name := fmt.Sprintf("%s %d %d bytes", tt.method, tt.status, tt.n)
		if _, err := fmt.Fprintf(c, "%s /sized/%d/%d HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n", tt.method, tt.status, tt.n); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		status, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := fmt.Sprintf("HTTP/1.1 %d ", tt.status); !strings.HasPrefix(status, want) {
			t.Fatalf("%s: status line %q, want %q…", name, status, want)
		}
		var lengths []string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if line == "\r\n" {
				break
			}
			k, v, _ := strings.Cut(strings.TrimSuffix(line, "\r\n"), ": ")
			switch strings.ToLower(k) {
			case "content-length":
				lengths = append(lengths, v)
			case "transfer-encoding":
				t.Fatalf("%s: Transfer-Encoding %q, want a Content-Length", name, v)
			}
		}
		switch {
		case tt.want == "" && len(lengths) != 0:
			t.Fatalf("%s: Content-Length %q, want none", name, lengths)
		case tt.want != "" && (len(lengths) != 1 || lengths[0] != tt.want):
			t.Fatalf("%s: Content-Length %q, want one, %s", name, lengths, tt.want)
		}
		if tt.method == "HEAD" || tt.want == "" {
			continue
		}
		body := make([]byte, tt.n)
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatalf("%s: body: %v", name, err)
		}
		if !bytes.Equal(body, bytes.Repeat([]byte{'x'}, tt.n)) {
			t.Fatalf("%s: body is not the guest's", name)
		}
	}
}
