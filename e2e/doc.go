// Package e2e holds berth's end-to-end tests and benchmarks: one real
// Temporal dev server, real dockerd hosts, a real database, and the berth
// binary (built from ./cmd/berth) started as separate server and worker
// processes. Everything is in _test.go files; `make test` runs them with the
// services up, and without BERTH_TEST_DOCKER_HOSTS they skip.
package e2e
