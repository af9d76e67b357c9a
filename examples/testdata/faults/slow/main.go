// Command slow is a fault guest for tests, not an example: it sleeps for the duration
// in ?d= (time.ParseDuration syntax, e.g. "2s"; none means no sleep) and then answers
// "ok". A bad duration gets 400.
package main

import (
	"net/http"
	"time"

	"fermion.dev/fermion/sdk/fermion"
)

func init() {
	fermion.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := r.URL.Query().Get("d"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			time.Sleep(d)
		}
		w.Write([]byte("ok"))
	})
}

func main() {}
