// Command flaky is a fault guest for tests, not an example: it answers 200, except
// every FAIL_EVERY-th request of an instance, which gets a 500 (FAIL_EVERY=20 fails
// 5 % of them, evenly spread), and with TRAP_ON_START=1 it panics while the instance
// initialises, so the version never starts. With FLAKY_ID set, every answer carries it
// in X-Flaky-Id, so a load generator can count which version served it. With SLOW_MS
// set, every answer waits that many milliseconds first (a sleep, not a spin, so a slow
// canary costs the shared test machine no CPU). Rollout tests
// package it with different env and versions to make good and bad canaries from one
// build.
package main

import (
	"net/http"
	"os"
	"strconv"
	"time"

	"fermion.dev/fermion/sdk/fermion"
)

func init() {
	if os.Getenv("TRAP_ON_START") == "1" {
		panic("flaky: TRAP_ON_START=1")
	}
	every, _ := strconv.Atoi(os.Getenv("FAIL_EVERY"))
	id := os.Getenv("FLAKY_ID")
	slowMS, _ := strconv.Atoi(os.Getenv("SLOW_MS"))
	slow := time.Duration(max(0, slowMS)) * time.Millisecond
	n := 0 // an instance serves one request at a time
	fermion.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		if slow > 0 {
			time.Sleep(slow)
		}
		if id != "" {
			w.Header().Set("X-Flaky-Id", id)
		}
		if every > 0 && n%every == 0 {
			http.Error(w, "flaky: injected failure", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok\n"))
	})
}

func main() {}
