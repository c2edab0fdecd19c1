// Package ui holds berth's embedded web UI assets. It is served by package
// server and must not reach the store or Temporal itself: pages read the same
// /api/v1 that machines use.
package ui
