// Command fill is a fault guest for tests and benchmarks, not an example: a WASI command
// module (no SDK) that allocates ?mib= MiB (default 40) in 1 MiB blocks, writing to
// every page as it goes, keeps them for ?hold= (time.ParseDuration syntax; default
// none), then answers "filled N MiB". It shows what a command run's memory costs the
// node while it runs and after. Build it without -buildmode:
//
//	GOOS=wasip1 GOARCH=wasm go build -o fill.wasm .
package main

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"time"
)

// Hoard keeps every block reachable so the garbage collector cannot free them.
var Hoard [][]byte

func main() {
	q, _ := url.ParseQuery(os.Getenv("QUERY_STRING"))
	mib := 40
	if s := q.Get("mib"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			fmt.Print("Status: 400 Bad Request\nContent-Type: text/plain\n\nmib must be a whole number\n")
			return
		}
		mib = n
	}
	var hold time.Duration
	if s := q.Get("hold"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			fmt.Printf("Status: 400 Bad Request\nContent-Type: text/plain\n\nhold: %v\n", err)
			return
		}
		hold = d
	}
	for range mib {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1 // touch every page
		}
		Hoard = append(Hoard, b)
	}
	time.Sleep(hold)
	fmt.Printf("Content-Type: text/plain\n\nfilled %d MiB\n", mib)
}
