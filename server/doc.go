// Package server is berth's HTTP API (Gin) under /api/v1, plus the embedded
// UI. Handlers validate input, write records, start workflows and return the
// run to follow; they hold no deployment logic (that is in workflows) and
// never touch Docker. Errors map to HTTP status codes in one place (errors.go).
// Who may call which route is one table (policies in auth.go): a route
// without an entry is for platform admins only. Pages are rendered with
// html/template from package ui; run pages stay live over SSE (sse.go).
package server
