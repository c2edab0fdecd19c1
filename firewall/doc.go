// Package firewall defines the firewall driver interface berth's activities
// use to open and close access to instances' published ports. Drivers:
// nftables (firewall/nftables) and None (openings only recorded).
// The "ticket" mode, where a person opens the ports, is a durable wait in the
// workflows (workflows/expose.go), not a driver. Every call is idempotent: an
// opening is found again by its ID, so a retried Open never adds a second rule.
package firewall
