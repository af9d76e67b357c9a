// Command hello is the smallest Fermion function: it answers every request with a greeting.
package main

import (
	"cmp"
	"io"
	"os"

	http "fermion.dev/fermion/sdk/fhttp"
)

func init() {
	// The environment is fixed for an instance's life, so the answer is made once.
	greeting := cmp.Or(os.Getenv("GREETING"), "Hello") + " from Fermion!\n"
	http.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, greeting)
	})
}

// main is not called in a reactor module; the handler is registered in init.
func main() {}
