// Command initrand is a fault guest for tests, not an example: its init reads the clock
// and a random number from math/rand/v2 (which the Go runtime seeds once, at start), and
// every request answers them with a fresh crypto/rand number and the time now, as
// "init_time=… init_rand=… fresh=… now=…". It shows what an instance started from a
// snapshot shares with its siblings (docs/RATIONALE.md, "Why start instances from a
// snapshot?").
package main

import (
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"time"

	http "fermion.dev/fermion/sdk/fhttp"
)

var (
	initTime = time.Now()
	initRand = mrand.Uint64()
)

func init() {
	http.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		var fresh [8]byte
		rand.Read(fresh[:])
		fmt.Fprintf(w, "init_time=%d init_rand=%d fresh=%x now=%d", initTime.UnixNano(), initRand, fresh, time.Now().UnixNano())
	})
}

// main is not called in a reactor module; the handler is registered in init.
func main() {}
