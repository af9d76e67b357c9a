// Command badcgi is a fault guest for tests, not an example: a WASI command module (no
// SDK) whose CGI output is malformed, a header line without a colon. Build it without
// -buildmode:
//
//	GOOS=wasip1 GOARCH=wasm go build -o badcgi.wasm .
package main

import "os"

func main() {
	os.Stdout.Write([]byte("garbage without colon\n\nbody"))
}
