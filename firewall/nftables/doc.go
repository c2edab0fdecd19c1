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
//			iifname "lo" counter accept comment "berth:allow:<key>:local"
//			ip saddr 10.0.0.0/8 counter accept comment "berth:allow:<key>:10.0.0.0/8"
//			tcp dport 30000-32767 ct state new counter drop comment "berth:guard:tcp:30000-32767"
//			udp dport 30000-32767 ct state new counter drop comment "berth:guard:udp:30000-32767"
//		}
//		chain forward {
//			type filter hook forward priority filter - 1; policy accept;
//			meta nfproto ipv4 ct original ip saddr 192.0.2.0/24 ct original ip daddr 127.0.0.1 meta l4proto tcp ct original proto-dst 31000 counter accept comment "berth:open:<ID>"
//			...one accept rule per opening...
//			meta l4proto tcp ct original proto-dst 30000-32767 ct status dnat ct state new counter drop comment "berth:guard:tcp:30000-32767"
//			meta l4proto udp ct original proto-dst 30000-32767 ct status dnat ct state new counter drop comment "berth:guard:udp:30000-32767"
//		}
//	}
//
// The input chain covers ports served by the host itself (docker-proxy, a
// host-network container). The forward chain covers ports published with
// DNAT, as Docker does: by the forward hook the packet's headers already
// name the container, so its rules match the conntrack original tuple,
// i.e. the host address and port the client asked for, and its guards only
// touch DNAT'd traffic so that ordinary routed traffic is left alone.
//
// The allow rules (Options.Allow) let in what berth itself needs before an
// opening: its health checks and the load balancer, from this machine
// ("local") or from listed networks. The guards close the published-port
// range to everything else; openings are
// inserted at the head of each chain so they always sit before the guards.
// An opening has one rule in each chain under the same comment.
// Rules are found again by their comment (rule user data), which is what makes
// every call idempotent across retries and process restarts.
package nftables
