// Package activities holds the Temporal activity structs of berth's
// workflows, and nothing else: Docker engines (docker.go, images.go,
// packages.go, docker_stats.go), berth's own records (store.go,
// approvals.go, expose.go), and the load balancer, firewall and CMDB
// (lb.go, firewall.go, cmdb.go). The drivers and domain libraries they call
// live in their own folders (engine, lb, firewall, cmdb, compose, artifacts).
//
// Activities are methods on structs that hold small interfaces, so each can be
// tested against the real system or a fake of that one interface. Every
// activity is idempotent: names and keys are derived from the run and the
// instance, so a retry after a crash finds its own earlier work. Bad input is
// reported as a non-retryable error typed with the domain's code (errors.go).
// Nothing here decides what to do next; that is the workflows' job. The
// package imports no store row, ORM or HTTP code, so the workflows that
// reference its activities stay free of them.
package activities
