// Package changeapi is the firewall driver for sites where a
// network-security team owns the firewall: berth submits each set of
// openings (or closings) as one change to their change API and follows it
// until it is applied or rejected. It holds no state of its own; the
// change id, derived from what the change asks, finds a retried
// submission.
package changeapi
