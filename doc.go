// Package berth is the domain: the types that cross berth's layers and are
// recorded in Temporal histories (plans, host and instance references, step
// events, approval specs and outcomes, grey release steps, release kinds, run
// kinds and statuses, roles), as typed enums with one list each, and the one
// Error vocabulary that the activities, the store and the server share.
//
// It imports none of berth's other packages, and nothing here does I/O. The
// JSON shape of every type here is part of recorded workflow histories: a
// field may be added, never renamed or retyped, without a new recorded
// history and a workflow.GetVersion in the workflow that carries it.
package berth
