// Command fsprobecgi is fsprobe as a WASI command (CGI on stdout), for tests of the
// command ABI's files grants; not an example.
package main

import (
	"fmt"
	"net/url"
	"os"

	"fermion.dev/fermion/examples/testdata/faults/internal/fsprobe"
)

func main() {
	fmt.Print("Content-Type: text/plain; charset=utf-8\n\n")
	v, err := url.ParseQuery(os.Getenv("QUERY_STRING"))
	if err != nil {
		fmt.Printf("query: error: %v\n", err)
		return
	}
	for _, q := range v["q"] {
		fmt.Println(fsprobe.Probe(q))
	}
}
