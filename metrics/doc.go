// Package metrics is what berth's processes tell Prometheus: runs started
// and ended (by kind and outcome, with durations), HTTP requests by route
// and status, open event streams, lock conflicts, approvals waiting, and
// the Temporal SDK's own metrics (workflow and activity task latencies,
// polls, requests) through an SDK metrics handler.
//
// One Registry per process, made in cmd/berth and handed to the server and
// the worker; nothing here is global. It reads nothing and writes nothing
// but its counters, so any layer that is given a Registry may count.
package metrics
