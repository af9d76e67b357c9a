// Command fhttp-keep checks, inside a real guest, what package fhttp promises a handler
// that keeps its requests, as net/http allows: a request's method, URL, host and
// header stay as they were received while later requests arrive, across the blocks
// the SDK carves requests and their strings from and across garbage collections.
// bench/guestkeep_test.go sends it a run of distinct requests; every response says
// "ok" or names what changed, and echoes the request's path and X-Id through response
// headers set by lower-case names: literals, which the SDK's name cache holds after the
// first request, and one made on the heap, which it must not hold.
package main

import (
	"runtime"
	"strconv"
	"strings"

	http "fermion.dev/fermion/sdk/fhttp"
)

// heapName is a header name that is not a literal: the name cache keeps only names in
// the module's static data.
var heapName = strings.ToLower("X-Heap")

// kept is every request served so far, with copies of what it held when it arrived.
var kept []keptRequest

type keptRequest struct {
	r                             *http.Request
	method, path, query, host, id string
	pad                           string
}

func init() {
	http.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "text/plain; charset=utf-8")
		w.Header().Set("x-path", r.URL.Path)
		w.Header().Add("x-id", r.Header.Get("x-id"))
		w.Header().Set(heapName, "1")
		var bad []string
		for i, k := range kept {
			got := keptRequest{r: k.r, method: k.r.Method, path: k.r.URL.Path, query: k.r.URL.RawQuery,
				host: k.r.Host, id: k.r.Header.Get("X-Id"), pad: k.r.Header.Get("X-Pad")}
			if got != k {
				bad = append(bad, "request "+strconv.Itoa(i)+" changed: "+k.path+" "+k.id+" is now "+got.path+" "+got.id)
			}
		}
		kept = append(kept, keptRequest{r: r, method: strings.Clone(r.Method), path: strings.Clone(r.URL.Path),
			query: strings.Clone(r.URL.RawQuery), host: strings.Clone(r.Host), id: strings.Clone(r.Header.Get("X-Id")),
			pad: strings.Clone(r.Header.Get("X-Pad"))})
		if len(kept)%50 == 0 {
			runtime.GC() // what is kept must survive collections, not just blocks
		}
		if len(bad) > 0 {
			http.Error(w, strings.Join(bad, "\n"), http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok\n"))
	})
}

// main is not called in a reactor module; the handler is registered in init.
func main() {}
