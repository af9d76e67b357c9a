// Package fermion holds the sources of the guest SDK as files, so that `fermion new`
// can scaffold a function that builds offline, without fetching the SDK module.
package fermion

import "embed"

// SDK holds the guest SDK's module sources: api/abi, sdk/fhttp (with fhttptest),
// sdk/fermion and sdk/internal/guest (tests left out).
//
//go:embed api/abi/abi.go api/abi/split.go
//go:embed sdk/fhttp/fhttp.go sdk/fhttp/header.go sdk/fhttp/status.go sdk/fhttp/client.go sdk/fhttp/response.go
//go:embed sdk/fhttp/namecache.go sdk/fhttp/namecache_wasip1.go sdk/fhttp/namecache_other.go
//go:embed sdk/fhttp/fhttptest/fhttptest.go
//go:embed sdk/fermion/fermion.go
//go:embed sdk/internal/guest/guest.go sdk/internal/guest/guest_wasip1.go sdk/internal/guest/guest_other.go
//go:embed sdk/internal/guest/response.go sdk/internal/guest/outbound.go sdk/internal/guest/arena.go
//go:embed sdk/internal/guesttest/guesttest.go
var SDK embed.FS
