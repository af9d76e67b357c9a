// Command flood is a fault guest for tests, not an example: with ?flood=1 it writes
// 100 MiB to stdout in 64 KiB chunks and then answers "done". Otherwise it answers "ok".
package main

import (
	"net/http"
	"os"

	"fermion.dev/fermion/sdk/fermion"
)

func init() {
	fermion.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("flood") != "1" {
			w.Write([]byte("ok"))
			return
		}
		chunk := make([]byte, 64<<10)
		for i := range chunk {
			chunk[i] = 'x'
		}
		chunk[len(chunk)-1] = '\n'
		for written := 0; written < 100<<20; written += len(chunk) {
			if _, err := os.Stdout.Write(chunk); err != nil {
				break
			}
		}
		w.Write([]byte("done"))
	})
}

func main() {}
