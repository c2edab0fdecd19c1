// Package store holds berth's records: the configuration items (regions,
// hosts, tenants, environments, applications, services, instances), the port
// allocations, the runs with their steps, the audit log, and the people:
// users, their roles per tenant, API tokens and sessions (secrets kept only
// as hashes), and the approvals with their append-only decisions.
//
// The store is the platform's truth; Docker hosts, load balancers and the CMDB
// are reconciled against it. It runs on SQLite (the embedded default, pure Go)
// and on MySQL/MariaDB with the same models and queries. It must not call
// Docker, Temporal or any other outside system.
package store
