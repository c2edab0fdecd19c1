// Package ui holds berth's embedded web UI: page templates (rendered by
// package server with html/template, so everything from a request or the
// store is escaped) and the static CSS and JavaScript. There is no build
// step: the files here are what the browser gets. It must not reach the
// store or Temporal itself; package server gathers the data and renders.
package ui
