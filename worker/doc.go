// Package worker builds berth's Temporal workers: the central worker runs the
// workflows and the store's local activities; each region's worker runs the
// activities that touch that region's hosts. Names are fixed here, so a
// rename in code never orphans a running workflow. It holds no business logic.
package worker
