// Package server is berth's HTTP API (Gin) under /api/v1, plus the embedded
// UI. Handlers validate input, write records, start workflows and return the
// run to follow; they hold no deployment logic (that is in workflows) and
// never touch Docker. Errors map to HTTP status codes in one place (errors.go).
package server
