// Command file is a fault guest for tests, not an example: it tries to read
// /etc/passwd and /data/x, which the sandbox does not expose, and reports what happened
// as text with status 200.
package main

import (
	"fmt"
	"net/http"
	"os"

	"fermion.dev/fermion/sdk/fermion"
)

func init() {
	fermion.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if f, err := os.Open("/etc/passwd"); err != nil {
			fmt.Fprintf(w, "open /etc/passwd: error: %v\n", err)
		} else {
			f.Close()
			fmt.Fprintf(w, "open /etc/passwd: succeeded\n")
		}
		if b, err := os.ReadFile("/data/x"); err != nil {
			fmt.Fprintf(w, "read /data/x: error: %v\n", err)
		} else {
			fmt.Fprintf(w, "read /data/x: succeeded (%d bytes)\n", len(b))
		}
	})
}

func main() {}
