// Package changeapitest is a network team's change API in memory: it
// applies a change after a delay, or rejects it with a reason when told
// to, so tests can follow berth's firewall changes end to end.
package changeapitest
