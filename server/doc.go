// Package server is berth's HTTP API (Gin) under /api/v1, plus the embedded
// UI. Handlers validate input, write records, start workflows and return the
// run to follow; they hold no deployment logic (that is in workflows) and
// never touch Docker. Errors map to HTTP status codes in one place (errors.go).
//
// Every route, API and page alike, is one row of one table (routes.go):
// method, path, handler and who may call it (policy.go). Registration and
// authorization both come from that row, so they cannot drift apart, and
// TestRouteTable holds openapi.yaml to it. A row without a policy is for
// platform admins only; routes served without sign-in say so with public.
// Who the caller is comes from authn.go (tokens, sessions, CSRF).
//
// Pages are rendered with html/template from package ui; run pages stay live
// over SSE (sse.go). A run's workflow history is told in domain words by
// package runhistory; this package only serves it.
package server
