#!/usr/bin/env bash
# dockerd.sh up|down|status NAME — run the Docker engines berth deploys to on
# one machine, without systemd (there may be none, and Debian's policy-rc.d
# may forbid starting services).
#
# NAME
#   default  the system engine: socket unix:///var/run/docker.sock,
#            docker0 172.17.0.1/16, user networks from 10.210.0.0/16 in
#            /24s (see "address pools" below), ports published on
#            127.0.0.1 by default on docker0 (see "host IP" below)
#   hN       (N in 2..9) an extra engine standing in for another host:
#            data root   /var/lib/berth-hosts/hN
#            exec root   /run/berth-hosts/hN/exec (its own managed containerd,
#                        started by dockerd itself)
#            pidfile     /run/berth-hosts/hN/docker.pid
#            socket      unix:///run/berth-hosts/hN/docker.sock
#            bridge      berth-hN, 10.213.N.1/24 (its docker0)
#            networks    user networks from Docker's built-in pools
#                        (172.17-31.x, 192.168.x); the daemon skips subnets
#                        already routed on the host
#            ports       published on 127.0.0.N by default on berth-hN, no
#                        iptables (docker-proxy forwards instead)
#
# Address pools: only the default engine gets --default-address-pool. With
# that flag dockerd 20.10 deletes the link named "docker0" on every start
# after the first (moby daemon_unix.go, "Clear stale bridge network" ->
# removeDefaultBridgeInterface, hard-coded name); the default engine
# recreates its own docker0 right after, but an hN engine with the flag
# would silently take the default engine's docker0 away. Giving the default
# engine its own pool keeps the engines' user networks apart even if they
# are created concurrently or while the other engine is down.
#
# Forwarding (see also allow_bridged_forwarding): the default engine
# (iptables on) sets the FORWARD policy to
# DROP, and with br_netfilter bridged frames traverse FORWARD too, so
# container-to-container traffic on an hN network (no iptables rules of its
# own) is dropped. `up` therefore inserts, idempotently, one rule into
# DOCKER-USER (the chain Docker leaves to users) accepting frames that stay
# on one bridge (-m physdev --physdev-is-bridged). Routed traffic between
# networks is not affected, so Docker's network isolation still holds.
#
# Host IP: --ip only sets the default bind address for the engine's default
# bridge network. A user-defined network publishes on 0.0.0.0 unless it is
# created with -o com.docker.network.bridge.host_binding_ipv4=127.0.0.N (or
# each port binding names its HostIp) — otherwise two engines publishing
# the same host port collide.
#
#   up      start unless it already answers; print the socket URL on stdout
#   down    SIGTERM, wait, then SIGKILL; also the engine's own containerd
#   status  exit 0 and print the socket URL if the engine answers, else 1
#
# Logs: /var/log/berth/dockerd-NAME.log. Must run as root.
# Safe to call repeatedly and after an earlier run was SIGKILLed (stale
# pidfiles and sockets are detected by checking the recorded process).
set -euo pipefail

LOG_DIR=/var/log/berth
START_TIMEOUT=${BERTH_DOCKERD_START_TIMEOUT:-30} # seconds until the API must answer
# shellcheck disable=SC2034 # read by stop_pid in proc.sh
STOP_TIMEOUT=${BERTH_DOCKERD_STOP_TIMEOUT:-25}  # > dockerd's 15 s container shutdown timeout

say() { echo "dockerd.sh: $*" >&2; }
die() {
	say "$*"
	exit 1
}

usage() {
	echo "usage: $0 up|down|status NAME   (NAME: default or h2..h9)" >&2
	exit 2
}

[ "$#" -eq 2 ] || usage
action=$1
name=$2

# Everything below is derived from NAME, which is validated against a fixed
# pattern first, so no caller input reaches a command other than as that.
case "$name" in
default)
	sock_path=/var/run/docker.sock
	pidfile=/var/run/docker.pid
	exec_root=/var/run/docker
	dockerd_args=(
		--ip 127.0.0.1
		# Fixed, the Docker default: without --bip the pool below would be used.
		--bip 172.17.0.1/16
		--default-address-pool "base=10.210.0.0/16,size=24"
	)
	;;
h[2-9])
	n=${name#h}
	base=/run/berth-hosts/$name
	sock_path=$base/docker.sock
	pidfile=$base/docker.pid
	exec_root=$base/exec
	data_root=/var/lib/berth-hosts/$name
	bridge=berth-$name
	bridge_cidr=10.213.$n.1/24
	dockerd_args=(
		--data-root "$data_root"
		--exec-root "$exec_root"
		--pidfile "$pidfile"
		-H "unix://$sock_path"
		--bridge "$bridge"
		# Two daemons must not both own the iptables DOCKER chains; with it off,
		# published ports are served by docker-proxy on the host IP below.
		--iptables=false
		--ip "127.0.0.$n"
		# Its own pool, so that each application's networks (one or more per
		# application per host) do not run out at Docker's ~30 built-in
		# subnets; --live-restore keeps dockerd from deleting docker0 on
		# restart (see "Address pools" above).
		--default-address-pool "base=10.22$n.0.0/16,size=24"
		--live-restore
	)
	;;
*) usage ;;
esac
sock_url=unix://$sock_path
log=$LOG_DIR/dockerd-$name.log

# answers: the engine's API responds. Bounded so a hung daemon can't hang us.
answers() {
	timeout 10 docker -H "$sock_url" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

# shellcheck source=SCRIPTDIR/proc.sh
. "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

daemon_pid() { pid_of_comm "$pidfile" dockerd; }

# The containerd that dockerd starts for itself records its pid here.
# dockerd reuses a live pid from this file instead of starting containerd, and
# only checks that *some* process has that pid, so a stale file must go.
containerd_pidfile=$exec_root/containerd/containerd.pid
containerd_pid() { pid_of_comm "$containerd_pidfile" containerd; }

ensure_bridge() {
	# docker0's stand-in for this engine. dockerd with --bridge does not create
	# the link, it only uses it; its address becomes the containers' gateway.
	if ! ip link show "$bridge" >/dev/null 2>&1; then
		say "creating bridge $bridge"
		ip link add "$bridge" type bridge
	fi
	# replace = add or keep; idempotent across runs.
	ip addr replace "$bridge_cidr" dev "$bridge"
	ip link set "$bridge" up
}

allow_bridged_forwarding() {
	command -v iptables >/dev/null || return 0
	local rule=(-m physdev --physdev-is-bridged -m comment --comment "berth: bridged traffic of --iptables=false engines" -j ACCEPT)
	# Creating the chain first is harmless: dockerd only appends its RETURN
	# rule and the FORWARD jump when they are missing.
	iptables -w 5 -n -L DOCKER-USER >/dev/null 2>&1 || iptables -w 5 -N DOCKER-USER || {
		say "warning: could not create iptables chain DOCKER-USER"
		return 0
	}
	if ! iptables -w 5 -C DOCKER-USER "${rule[@]}" 2>/dev/null; then
		iptables -w 5 -I DOCKER-USER 1 "${rule[@]}" ||
			say "warning: could not add the DOCKER-USER rule; containers on $name networks may not reach each other"
	fi
	# The engines stand in for separate machines but share one kernel, so a
	# container could reach another engine's container addresses through the
	# host's routing, which separate machines would never allow. Routed
	# traffic from one container bridge to another is dropped; frames within
	# one bridge were accepted just above. (The default engine's own
	# isolation rules already do this between its own networks.)
	local in out
	for in in br-+ docker0 berth-h+; do
		for out in br-+ docker0 berth-h+; do
			rule=(-i "$in" -o "$out" -m comment --comment "berth: engines are separate hosts" -j DROP)
			if ! iptables -w 5 -C DOCKER-USER "${rule[@]}" 2>/dev/null; then
				iptables -w 5 -I DOCKER-USER 2 "${rule[@]}" ||
					say "warning: could not add a DOCKER-USER isolation rule"
			fi
		done
	done
	# Above those drops: connections to a published port (DNAT'ed by the
	# default engine) go on to Docker's own rules, as they would arriving
	# from another machine. This is how the mesh's gateways are reached.
	rule=(-m conntrack --ctstate DNAT -m comment --comment "berth: published ports" -j RETURN)
	if ! iptables -w 5 -C DOCKER-USER "${rule[@]}" 2>/dev/null; then
		iptables -w 5 -I DOCKER-USER 2 "${rule[@]}" ||
			say "warning: could not add the DOCKER-USER published-ports rule"
	fi
}

# ensure_host_address gives the engine a host address that containers of the
# other engines can reach, as they could reach another machine: 10.230.0.N
# (N=1 for default) on the link berth-addrs, a bridge with no ports (this
# kernel has no dummy links). Loopback addresses (the engines' --ip) are not
# reachable from containers. Tests register the hosts with these addresses.
ensure_host_address() {
	local n=$1
	if ! ip link show berth-addrs >/dev/null 2>&1; then
		ip link add berth-addrs type bridge 2>/dev/null || ip link show berth-addrs >/dev/null
	fi
	ip addr replace "10.230.0.$n/32" dev berth-addrs
	ip link set berth-addrs up
}

rotate_log() {
	# Logs persist across sessions; keep them from growing without bound.
	if [ -f "$log" ] && [ "$(stat -c %s "$log")" -gt $((50 * 1024 * 1024)) ]; then
		mv -f "$log" "$log.1"
	fi
}

do_up() {
	local t0
	t0=$(date +%s%N)
	if [ "$name" = default ]; then ensure_host_address 1; else ensure_host_address "$n"; fi
	if answers; then
		allow_bridged_forwarding
		say "$name already up"
		echo "$sock_url"
		return 0
	fi

	local pid
	if pid=$(daemon_pid); then
		# A daemon of ours is alive but not answering yet: probably another
		# `up` just started it. Give it the usual time before giving up.
		say "$name: dockerd pid $pid running but not answering yet, waiting"
	else
		[ "$(id -u)" -eq 0 ] || die "must be root to start dockerd"
		command -v dockerd >/dev/null || die "dockerd not installed (run deploy/local/deps.sh run)"

		# Leftovers of a killed run: these would otherwise make dockerd refuse
		# to start ("pid file found") or wait on a dead containerd.
		rm -f "$pidfile" "$sock_path"
		if ! containerd_pid >/dev/null; then
			rm -f "$containerd_pidfile"
		fi

		mkdir -p "$LOG_DIR"
		if [ "$name" != default ]; then
			mkdir -p "$base" "$exec_root" "$data_root"
			ensure_bridge
		fi
		rotate_log
		echo "=== $(date -u +%FT%TZ) dockerd.sh up $name: dockerd ${dockerd_args[*]}" >>"$log"
		# setsid+nohup: detach from our session so the daemon outlives this
		# script and CI's shell; stdin from /dev/null since there is no TTY.
		# cd / so the daemon does not pin the caller's working directory; 9>&-
		# so it does not inherit (and hold forever) our lock below.
		(cd / && exec setsid nohup dockerd "${dockerd_args[@]}" >>"$log" 2>&1 </dev/null 9>&-) &
		pid=$!
		say "$name: started dockerd pid $pid, log $log"
	fi

	local i
	for ((i = 0; i < START_TIMEOUT * 2; i++)); do
		if answers; then
			# After the daemon: the default engine creates DOCKER-USER itself.
			allow_bridged_forwarding
			say "$name up after $((($(date +%s%N) - t0) / 1000000)) ms"
			echo "$sock_url"
			return 0
		fi
		# $! is dockerd itself (setsid execs in place when not a group leader);
		# the pidfile check covers the case where setsid had to fork.
		if ! alive "$pid" && ! pid=$(daemon_pid); then
			tail -n 20 "$log" >&2 || true
			die "$name: dockerd exited during startup (log $log)"
		fi
		sleep 0.5
	done
	tail -n 20 "$log" >&2 || true
	die "$name: dockerd pid $pid not answering on $sock_url after ${START_TIMEOUT}s (log $log)"
}

do_down() {
	local pid
	if pid=$(daemon_pid); then
		say "$name: stopping dockerd pid $pid"
		stop_pid "$pid" "dockerd $name"
	else
		say "$name: dockerd not running"
	fi
	# dockerd stops its containerd on a clean exit; after a SIGKILL (ours or an
	# earlier session's) it can be left behind.
	if pid=$(containerd_pid); then
		say "$name: stopping leftover containerd pid $pid"
		stop_pid "$pid" "containerd $name"
	fi
	rm -f "$pidfile" "$sock_path"
	# The bridge and data root are kept: they hold no process and keeping the
	# data root keeps images, networks and volumes for the next `up`.
}

do_status() {
	if answers; then
		echo "$sock_url"
		return 0
	fi
	say "$name: not answering on $sock_url"
	return 1
}

# Serialise concurrent up/down for the same engine (e.g. two test jobs
# running `up` at once) so only one starts a daemon. status needs no lock.
if [ "$action" != status ]; then
	[ "$(id -u)" -eq 0 ] || die "must be root for $action"
	mkdir -p /run/berth-hosts
	exec 9>"/run/berth-hosts/.dockerd-$name.lock"
	flock 9
fi

case "$action" in
up) do_up ;;
down) do_down ;;
status) do_status ;;
*) usage ;;
esac
