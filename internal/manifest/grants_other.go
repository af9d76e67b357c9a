//go:build !unix

package manifest

import "io/fs"

// linkCount is 1 where FileInfo does not carry a link count: the sandbox's own check
// (which asks the open file) still applies when the function runs.
func linkCount(fs.FileInfo) uint64 { return 1 }
