// Package fermion holds the sources of the guest SDK as files, so that `fermion new`
// can scaffold a function that builds offline, without fetching the SDK module.
package fermion

import "embed"

// SDK holds the guest SDK's module sources: api/abi and sdk/fermion.
//
//go:embed api/abi/abi.go sdk/fermion/fermion.go sdk/fermion/guest_wasip1.go sdk/fermion/guest_other.go
var SDK embed.FS
