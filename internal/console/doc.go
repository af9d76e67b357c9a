// Package console is the web console the control plane serves at / and /ui/: embedded,
// hand-written HTML, CSS and JavaScript modules (no framework, no build step, nothing
// fetched at run time) that sign in with an API token and read and act only through
// the /v1 API, so the API's roles are the console's roles.
//
// The handler serves the assets (gzip when the browser accepts it, an ETag per file),
// /ui/config.json (the trace UI link template, the server version) and /ui/session
// (who the presented token is, so that the page shows actions only to the roles the
// API would let act). It keeps no state of its own and never holds a token: the page
// keeps it in sessionStorage and sends it as a bearer token (see docs/RATIONALE.md,
// "Why does the console keep its token in sessionStorage?").
package console
