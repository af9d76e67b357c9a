// Command slow is a fault guest for tests, not an example: it sleeps for the duration
// in ?d= (time.ParseDuration syntax, e.g. "2s"; none means no sleep), then spins on
// the CPU for the duration in ?spin= (none means no spinning), and then answers "ok".
// A bad duration gets 400.
package main

import (
	"net/http"
	"time"

	"fermion.dev/fermion/sdk/fermion"
)

// Spins is global so the busy loop's stores are observable and cannot be optimised away.
var Spins int

func init() {
	fermion.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var sleep, spin time.Duration
		for _, p := range []struct {
			name string
			d    *time.Duration
		}{{"d", &sleep}, {"spin", &spin}} {
			if s := q.Get(p.name); s != "" {
				d, err := time.ParseDuration(s)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				*p.d = d
			}
		}
		time.Sleep(sleep)
		for start := time.Now(); time.Since(start) < spin; {
			Spins++
		}
		w.Write([]byte("ok"))
	})
}

func main() {}
