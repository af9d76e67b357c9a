// Command fsprobe is a hostile guest for tests, not an example: it tries the file
// operations a request names, one per q parameter ("read:/static/x", "stat:/static",
// "lstat:...", "list:...", "readlink:..."), and reports each result as one line of text
// with status 200. Tests point it at symbolic links and hard links that lead out of a
// files grant and check that no host content comes back. fsprobecgi is the same probe
// as a WASI command.
package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"

	"fermion.dev/fermion/sdk/fermion"
)

func init() {
	fermion.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for _, q := range r.URL.Query()["q"] {
			fmt.Fprintln(w, probe(q))
		}
	})
}

// probe runs one "op:path" and describes the outcome on one line.
func probe(q string) string {
	op, p, _ := strings.Cut(q, ":")
	switch op {
	case "read":
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Sprintf("%s: error: %v", q, err)
		}
		return fmt.Sprintf("%s: ok: %q", q, b)
	case "stat", "lstat":
		stat := os.Stat
		if op == "lstat" {
			stat = os.Lstat
		}
		fi, err := stat(p)
		if err != nil {
			return fmt.Sprintf("%s: error: %v", q, err)
		}
		return fmt.Sprintf("%s: ok: %s %d bytes", q, fi.Mode(), fi.Size())
	case "list":
		es, err := os.ReadDir(p)
		if err != nil {
			return fmt.Sprintf("%s: error: %v", q, err)
		}
		names := make([]string, len(es))
		for i, e := range es {
			names[i] = e.Name()
		}
		return fmt.Sprintf("%s: ok: %s", q, strings.Join(names, ","))
	case "readlink":
		t, err := os.Readlink(p)
		if err != nil {
			return fmt.Sprintf("%s: error: %v", q, err)
		}
		return fmt.Sprintf("%s: ok: %s", q, t)
	case "write":
		if err := os.WriteFile(p, []byte("written by the guest"), 0o644); err != nil {
			return fmt.Sprintf("%s: error: %v", q, err)
		}
		return fmt.Sprintf("%s: ok", q)
	}
	return fmt.Sprintf("%s: error: unknown operation %q", q, op)
}

func main() {}
