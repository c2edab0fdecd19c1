#!/usr/bin/env bash
# mariadb.sh up|down|status — run the MariaDB that berth's tests use, without
# systemd (there may be none, and Debian's policy-rc.d may forbid starting
# services), on 127.0.0.1:3306.
#
#   up      start mariadbd unless it answers, then (idempotently) create the
#           database berth_test and the user berth/berth-test, allowed ALL on
#           every database named berth_* (tests make berth_test_<run> ones);
#           prints the Go DSN on stdout
#   down    clean shutdown (mariadb-admin), falling back to SIGTERM/SIGKILL
#   status  exit 0 and print the DSN if the server answers, else 1
#
# Log: /var/log/berth/mariadb.log. Must run as root: root reaches the server
# through the unix socket (unix_socket auth), which needs no password.
set -euo pipefail

LOG_DIR=/var/log/berth
LOG=$LOG_DIR/mariadb.log
RUN_DIR=/run/mysqld
PIDFILE=$RUN_DIR/mysqld.pid # as set by Debian's 50-server.cnf
DATA_DIR=/var/lib/mysql
START_TIMEOUT=${BERTH_MARIADB_START_TIMEOUT:-60} # crash recovery can take a while
DSN='berth:berth-test@tcp(127.0.0.1:3306)/berth_test?parseTime=true&charset=utf8mb4&loc=UTC'

say() { echo "mariadb.sh: $*" >&2; }
die() {
	say "$*"
	exit 1
}

usage() {
	echo "usage: $0 up|down|status" >&2
	exit 2
}

[ "$#" -eq 1 ] || usage
action=$1

# answers: the server process responds. `ping` succeeds even when access
# would be denied, so this tests liveness only. The socket option keeps it
# from depending on which user runs it.
answers() {
	timeout 10 mariadb-admin --protocol=socket --connect-timeout=2 ping >/dev/null 2>&1
}

# shellcheck source=SCRIPTDIR/proc.sh
. "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

# server_pid prints the pid in Debian's pidfile if it is a live mariadbd
# (not a recycled pid from a killed earlier run).
server_pid() { pid_of_comm "$PIDFILE" mariadbd mysqld; }

# Fixed SQL: no caller input is ever interpolated. `berth\_%` is a LIKE
# pattern on database names, with `_` escaped so it means a literal
# underscore: it matches berth_test and berth_test_<anything>.
# ALTER USER re-asserts the password in case the user pre-existed.
SETUP_SQL="
CREATE DATABASE IF NOT EXISTS berth_test CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS 'berth'@'127.0.0.1' IDENTIFIED BY 'berth-test';
CREATE USER IF NOT EXISTS 'berth'@'localhost' IDENTIFIED BY 'berth-test';
ALTER USER 'berth'@'127.0.0.1' IDENTIFIED BY 'berth-test';
ALTER USER 'berth'@'localhost' IDENTIFIED BY 'berth-test';
GRANT ALL PRIVILEGES ON \`berth\\_%\`.* TO 'berth'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`berth\\_%\`.* TO 'berth'@'localhost';
FLUSH PRIVILEGES;
"

do_up() {
	[ "$(id -u)" -eq 0 ] || die "must be root"
	command -v mariadbd >/dev/null || die "mariadb-server not installed (run deploy/local/deps.sh test)"

	local pid t0
	t0=$(date +%s%N)
	if answers; then
		say "already up"
	else
		if pid=$(server_pid); then
			# Alive but not answering: starting up or recovering. Wait for it.
			say "mariadbd pid $pid running but not answering yet, waiting"
		else
			mkdir -p "$LOG_DIR"
			# /run is tmpfs on most machines: recreate on every start.
			install -d -o mysql -g mysql -m 0755 "$RUN_DIR"
			# Leftovers of a killed run (a stale socket is also unlinked by the
			# server itself, but only once it gets that far).
			rm -f "$PIDFILE" "$RUN_DIR/mysqld.sock"
			if [ ! -d "$DATA_DIR/mysql" ]; then
				# The package's postinst normally did this; not if the data dir was
				# wiped. Root gets unix_socket auth, which the setup SQL below relies on.
				say "initialising $DATA_DIR"
				install -d -o mysql -g mysql -m 0750 "$DATA_DIR"
				mariadb-install-db --user=mysql --datadir="$DATA_DIR" >>"$LOG" 2>&1 ||
					die "mariadb-install-db failed (log $LOG)"
			fi
			echo "=== $(date -u +%FT%TZ) mariadb.sh up" >>"$LOG"
			# setsid+nohup: detach so the server outlives this script and CI's
			# shell; no TTY, so stdin from /dev/null.
			# 9>&-: the server must not inherit (and hold forever) our lock.
			(cd / && exec setsid nohup mariadbd --user=mysql --bind-address=127.0.0.1 --port=3306 \
				>>"$LOG" 2>&1 </dev/null 9>&-) &
			pid=$!
			say "started mariadbd pid $pid, log $LOG"
		fi
		local i ok=''
		for ((i = 0; i < START_TIMEOUT * 2; i++)); do
			if answers; then
				ok=1
				break
			fi
			if ! alive "$pid" && ! pid=$(server_pid); then
				tail -n 20 "$LOG" >&2 || true
				die "mariadbd exited during startup (log $LOG)"
			fi
			sleep 0.5
		done
		[ -n "$ok" ] || die "mariadbd not answering after ${START_TIMEOUT}s (log $LOG)"
		say "up after $((($(date +%s%N) - t0) / 1000000)) ms"
	fi

	timeout 30 mariadb --protocol=socket -u root -e "$SETUP_SQL" ||
		die "creating database/user failed"
	# Prove the DSN's credentials work over TCP, as the tests will use them.
	timeout 10 mariadb --protocol=tcp -h 127.0.0.1 -P 3306 -u berth -pberth-test berth_test -e 'SELECT 1' >/dev/null ||
		die "user berth cannot log in over TCP"
	echo "$DSN"
}

do_down() {
	local pid=
	pid=$(server_pid) || pid=
	if answers; then
		say "shutting down"
		timeout 60 mariadb-admin --protocol=socket -u root shutdown || true
	fi
	if [ -n "$pid" ] && ! wait_gone "$pid" 30; then
		say "mariadbd pid $pid still running, sending SIGTERM"
		kill -TERM "$pid" 2>/dev/null || true
		if ! wait_gone "$pid" 30; then
			say "sending SIGKILL to $pid"
			kill -KILL "$pid" 2>/dev/null || true
			wait_gone "$pid" 5 || die "mariadbd pid $pid survived SIGKILL"
		fi
	fi
	say "stopped"
}

do_status() {
	if answers; then
		echo "$DSN"
		return 0
	fi
	say "not answering"
	return 1
}

# Serialise concurrent up/down (e.g. parallel test jobs) so only one starts
# a server. status needs no lock.
if [ "$action" = up ] || [ "$action" = down ]; then
	[ "$(id -u)" -eq 0 ] || die "must be root for $action"
	exec 9>/run/.berth-mariadb.lock
	flock 9
fi

case "$action" in
up) do_up ;;
down) do_down ;;
status) do_status ;;
*) usage ;;
esac
