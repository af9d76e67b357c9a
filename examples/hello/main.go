// Command hello is the smallest Fermion function: it answers every request with a greeting.
package main

import (
	"cmp"
	"os"

	http "fermion.dev/fermion/sdk/fhttp"
)

func init() {
	// The environment is fixed for an instance's life, so the answer is made once, as
	// bytes: io.WriteString(w, s) would convert w to io.Writer and then assert
	// io.StringWriter, and in a wasm guest each is a search of the runtime's type
	// table (about 0.2 µs apiece), where w.Write is a plain method call.
	greeting := []byte(cmp.Or(os.Getenv("GREETING"), "Hello") + " from Fermion!\n")
	http.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(greeting)
	})
	// The handler keeps nothing of a request, so the SDK may decode every request
	// into the same storage, warm in the cache, rather than into fresh memory.
	http.ReuseRequests()
}

// main is not called in a reactor module; the handler is registered in init.
func main() {}
