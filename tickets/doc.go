// Package tickets is the driver berth opens, updates and resolves tickets
// in an ITIL ticket system with: one ticket per open incident (a run that
// failed, a host that went down, an alert), found again by its key, so a
// retried or repeated event updates the ticket instead of making another.
package tickets
