// Command initfile is a fault guest for tests, not an example: its init reads /data/x
// (a file a grant may provide), and every request answers what init read. A snapshot
// taken after such an init would hold a file the restored instances do not have open,
// so the sandbox does not take one (docs/RATIONALE.md, "Why start instances from a
// snapshot?").
package main

import (
	"fmt"
	"os"

	http "fermion.dev/fermion/sdk/fhttp"
)

var readAtInit string

func init() {
	if b, err := os.ReadFile("/data/x"); err != nil {
		readAtInit = "error: " + err.Error()
	} else {
		readAtInit = fmt.Sprintf("%d bytes", len(b))
	}
	http.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "init read /data/x: %s", readAtInit)
	})
}

// main is not called in a reactor module; the handler is registered in init.
func main() {}
