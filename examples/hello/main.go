// Command hello is the smallest Fermion function: it answers every request with a greeting.
package main

import (
	"net/http"
	"os"

	"fermion.dev/fermion/sdk/fermion"
)

func init() {
	fermion.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		greeting := os.Getenv("GREETING")
		if greeting == "" {
			greeting = "Hello"
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte(greeting + " from Fermion!\n"))
	})
}

// main is not called in a reactor module; the handler is registered in init.
func main() {}
