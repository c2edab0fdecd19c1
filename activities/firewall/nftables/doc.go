// Package nftables is the firewall.Driver that applies openings as nftables
// rules through netlink (no nft binary needed on the host).
//
// Layout, all in one table that berth owns so that it never edits anybody
// else's ruleset:
//
//	table inet berth {
//		chain input {
//			type filter hook input priority filter; policy accept;
//			ip saddr 192.0.2.0/24 ip daddr 127.0.0.1 tcp dport 31000 counter accept comment "berth:open:<ID>"
//			...one accept rule per opening...
//			tcp dport 30000-32767 ct state new counter drop comment "berth:guard:tcp:30000-32767"
//			udp dport 30000-32767 ct state new counter drop comment "berth:guard:udp:30000-32767"
//		}
//	}
//
// The guards close the published-port range by default; openings are
// inserted at the head of the chain so they always sit before the guards.
// Rules are found again by their comment (rule user data), which is what makes
// every call idempotent across retries and process restarts.
package nftables
