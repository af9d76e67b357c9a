// Command fsprobe is a hostile guest for tests, not an example: it tries the file
// operations a request names, one per q parameter ("read:/static/x", "stat:/static",
// "lstat:...", "list:...", "readlink:..."), and reports each result as one line of text
// with status 200. Tests point it at symbolic links and hard links that lead out of a
// files grant and check that no host content comes back. fsprobecgi is the same probe
// as a WASI command.
package main

import (
	"fmt"
	"net/http"

	"fermion.dev/fermion/examples/testdata/faults/internal/fsprobe"

	"fermion.dev/fermion/sdk/fermion"
)

func init() {
	fermion.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for _, q := range r.URL.Query()["q"] {
			fmt.Fprintln(w, fsprobe.Probe(q))
		}
	})
}

func main() {}
