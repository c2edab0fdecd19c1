#!/usr/bin/env bash
# proc.sh — process helpers shared by dockerd.sh, mariadb.sh and registry.sh.
# Sourced, not run. The caller defines say, die and STOP_TIMEOUT.

# alive PID: the process exists and is not a zombie. Daemons we start are
# reparented to PID 1, which may reap them late (seen on this machine), and
# `kill -0` succeeds on a zombie — so does dockerd's own pidfile check.
alive() {
	local st
	st=$(sed -n 's/^.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# pid_of_comm FILE COMM...: print the pid recorded in FILE if that process is
# alive and its command is one of COMM. After a kill or a reboot a pidfile can
# name a pid that now belongs to an unrelated process; that counts as stale.
pid_of_comm() {
	local file=$1 pid comm want
	shift
	[ -r "$file" ] || return 1
	pid=$(tr -dc '0-9' <"$file")
	[ -n "$pid" ] || return 1
	alive "$pid" || return 1
	comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
	for want in "$@"; do
		if [ "$comm" = "$want" ]; then
			echo "$pid"
			return 0
		fi
	done
	return 1
}

wait_gone() { # pid seconds
	local pid=$1 i
	for ((i = 0; i < $2 * 10; i++)); do
		alive "$pid" || return 0
		sleep 0.1
	done
	return 1
}

stop_pid() { # pid label
	local pid=$1 label=$2
	kill -TERM "$pid" 2>/dev/null || return 0
	if ! wait_gone "$pid" "$STOP_TIMEOUT"; then
		say "$label (pid $pid) still running after ${STOP_TIMEOUT}s, sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		wait_gone "$pid" 5 || die "$label (pid $pid) survived SIGKILL"
	fi
}
