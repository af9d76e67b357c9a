// Package fsprobe is the file probe of the fsprobe and fsprobecgi test guests: one
// "op:path" (read, stat, lstat, list, readlink, write) tried in the guest's filesystem,
// its outcome described on one line.
package fsprobe

import (
	"fmt"
	"os"
	"strings"
)

// Probe runs one "op:path" and describes the outcome on one line.
func Probe(q string) string {
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
