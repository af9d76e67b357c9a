// Command cgi is a WASI command module in the WAGI / CGI 1.1 style, written without the
// Fermion SDK: the host runs main once per request, passes the request in CGI
// environment variables (REQUEST_METHOD, PATH_INFO, QUERY_STRING, CONTENT_LENGTH,
// REQUEST_SCHEME, HTTP_* for headers) and the body on stdin, and reads CGI headers, a blank line and the
// body from stdout. It answers with a plain-text report of what it received and an
// upper-case copy of the body. Build it without -buildmode:
//
//	GOOS=wasip1 GOARCH=wasm go build -o cgi.wasm .
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

func main() {
	body, err := readBody()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	if err != nil {
		fmt.Fprintf(out, "Status: 400 Bad Request\nContent-Type: text/plain\n\nread body: %v\n", err)
		return
	}

	fmt.Fprint(out, "Content-Type: text/plain\n\n")
	fmt.Fprintf(out, "method: %s\n", os.Getenv("REQUEST_METHOD"))
	fmt.Fprintf(out, "path: %s\n", os.Getenv("PATH_INFO"))
	fmt.Fprintf(out, "query: %s\n", os.Getenv("QUERY_STRING"))
	fmt.Fprintf(out, "server: %s://%s:%s\n", os.Getenv("REQUEST_SCHEME"), os.Getenv("SERVER_NAME"), os.Getenv("SERVER_PORT"))
	fmt.Fprintf(out, "body length: %d\n", len(body))
	var headers []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "HTTP_") {
			headers = append(headers, kv)
		}
	}
	sort.Strings(headers)
	for _, h := range headers {
		fmt.Fprintf(out, "header: %s\n", h)
	}
	fmt.Fprintf(out, "upper: %s\n", bytes.ToUpper(body))
}

// readBody reads CONTENT_LENGTH bytes from stdin, or all of stdin when it is unset.
func readBody() ([]byte, error) {
	cl := os.Getenv("CONTENT_LENGTH")
	if cl == "" {
		return io.ReadAll(os.Stdin)
	}
	n, err := strconv.ParseInt(cl, 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("bad CONTENT_LENGTH %q", cl)
	}
	return io.ReadAll(io.LimitReader(os.Stdin, n))
}
