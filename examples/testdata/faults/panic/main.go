// Command panic is a fault guest for tests, not an example: with ?panic=1 its handler
// panics. Otherwise it answers "ok".
package main

import (
	"net/http"

	"fermion.dev/fermion/sdk/fermion"
)

func init() {
	fermion.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("panic") == "1" {
			panic("fault guest: panic requested")
		}
		w.Write([]byte("ok"))
	})
}

func main() {}
