// Command hello-nethttp is examples/hello written against net/http (package
// fermion.dev/fermion/sdk/fermion) instead of fhttp: the benchmarks serve both to
// measure what linking net/http costs a guest.
package main

import (
	"cmp"
	"net/http"
	"os"

	"fermion.dev/fermion/sdk/fermion"
)

func init() {
	// The environment is fixed for an instance's life, so the answer is made once, as
	// bytes: io.WriteString(w, s) would convert w to io.Writer and then assert
	// io.StringWriter, and in a wasm guest each is a search of the runtime's type
	// table (about 0.2 µs apiece), where w.Write is a plain method call.
	greeting := []byte(cmp.Or(os.Getenv("GREETING"), "Hello") + " from Fermion!\n")
	fermion.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(greeting)
	})
}

// main is not called in a reactor module; the handler is registered in init.
func main() {}
