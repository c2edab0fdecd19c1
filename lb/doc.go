// Package lb defines the load-balancer driver interface berth's activities
// use, modelled on Argo Rollouts' traffic routers: one small interface, many
// drivers (lb/haproxy is the real one). Drivers must be idempotent:
// every call may be retried after a crash.
package lb
