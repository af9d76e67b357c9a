package cli_test

import (
	"os"
	"testing"

	"fermion.dev/fermion/internal/sandbox"
)

// TestMain lets this test binary be the compile worker of the engines the verbs under
// test create: they re-run their own executable, as the fermion binary does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == sandbox.CompileWorkerArg {
		os.Exit(sandbox.CompileWorkerMain(os.Args[2:], os.Stdin, os.Stderr))
	}
	os.Exit(m.Run())
}
