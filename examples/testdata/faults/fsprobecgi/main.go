// Command fsprobecgi is fsprobe as a WASI command (CGI on stdout), for tests of the
// command ABI's files grants; not an example.
package main

import (
	"fmt"
	"net/url"
	"os"
	"strings"
)

func main() {
	fmt.Print("Content-Type: text/plain; charset=utf-8\n\n")
	v, err := url.ParseQuery(os.Getenv("QUERY_STRING"))
	if err != nil {
		fmt.Printf("query: error: %v\n", err)
		return
	}
	for _, q := range v["q"] {
		fmt.Println(probe(q))
	}
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
