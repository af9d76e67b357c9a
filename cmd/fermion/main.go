// Command fermion runs and governs sandboxed WebAssembly functions. See README.md.
package main

import (
	"os"

	"fermion.dev/fermion/internal/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], os.Stdout, os.Stderr))
}
