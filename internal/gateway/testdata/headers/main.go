// Command headers is a test guest for the gateway: it answers "headers" with the
// response headers named in the query, each h=NAME:VALUE stored under NAME exactly as
// spelled (not canonicalized), as a careless or hostile guest might.
package main

import (
	"net/http"
	"strings"

	"fermion.dev/fermion/sdk/fermion"
)

func init() {
	fermion.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, kv := range r.URL.Query()["h"] {
			name, value, _ := strings.Cut(kv, ":")
			w.Header()[name] = append(w.Header()[name], value)
		}
		w.Write([]byte("headers"))
	})
}

func main() {}
