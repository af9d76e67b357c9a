// Command loop is a fault guest for tests, not an example: with ?loop=1 its handler spins
// forever in a tight loop with no calls, so only the host's timeout can stop it; with
// ?spin=1 it starts a goroutine that does, and answers "ok" (the goroutine first runs
// when the SDK yields to the scheduler, at the latest after 32 requests). Otherwise it
// answers "ok".
package main

import (
	"net/http"

	"fermion.dev/fermion/sdk/fermion"
)

// Counter is global so the loop's stores are observable and cannot be optimised away.
var Counter int

func init() {
	fermion.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("loop") == "1" {
			for {
				Counter++
			}
		}
		if r.URL.Query().Get("spin") == "1" {
			go func() {
				for {
					Counter++
				}
			}()
		}
		w.Write([]byte("ok"))
	})
}

func main() {}
