package v1

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document of the HTTP API under /v1, which the server serves
// at GET /v1/openapi.json. A test checks it against the types in this package.
//
//go:embed openapi.json
var OpenAPI []byte
