// Command oom is a fault guest for tests, not an example: with ?oom=1 it allocates 1 MiB
// blocks and keeps them until memory runs out and the instance dies. Otherwise it answers
// "ok".
package main

import (
	"net/http"

	"fermion.dev/fermion/sdk/fermion"
)

// Hoard keeps every block reachable so the garbage collector cannot free them.
var Hoard [][]byte

func init() {
	fermion.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("oom") == "1" {
			for {
				b := make([]byte, 1<<20)
				for i := 0; i < len(b); i += 4096 {
					b[i] = 1 // touch every page
				}
				Hoard = append(Hoard, b)
			}
		}
		w.Write([]byte("ok"))
	})
}

func main() {}
