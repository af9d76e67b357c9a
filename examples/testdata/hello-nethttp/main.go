// Command hello-nethttp is examples/hello written against net/http (package
// fermion.dev/fermion/sdk/fermion) instead of fhttp: the benchmarks serve both to
// measure what linking net/http costs a guest.
package main

import (
	"cmp"
	"io"
	"net/http"
	"os"

	"fermion.dev/fermion/sdk/fermion"
)

func init() {
	// The environment is fixed for an instance's life, so the answer is made once.
	greeting := cmp.Or(os.Getenv("GREETING"), "Hello") + " from Fermion!\n"
	fermion.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, greeting)
	})
}

// main is not called in a reactor module; the handler is registered in init.
func main() {}
