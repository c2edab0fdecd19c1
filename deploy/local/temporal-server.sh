#!/usr/bin/env bash
# temporal-server.sh up|down|status — run the production Temporal server
# (bin/temporal-server, built by `make bin/temporal-server` from the pinned
# go.temporal.io/server module: every service in one process) on
# PostgreSQL 15 (postgres.sh), with the config in deploy/temporal/config.
#
#   up      start PostgreSQL, create or upgrade Temporal's two databases
#           with Temporal's own SQL tool (bin/temporal-sql-tool) and the
#           schema files of the same module version, make the test CA and
#           certificates once, start the server unless it answers, and
#           create the namespace berth with a 3-day retention; prints the
#           frontend's host:port and the certificates' folder on stdout
#
# The frontend takes only mutual TLS: clients show a certificate of the
# test CA (TLS_DIR/client.pem and client.key, CA TLS_DIR/ca.pem), as
# production clients of a Temporal cluster do.
#   down    stops the server (PostgreSQL is left up; postgres.sh down stops it)
#   status  exit 0 and print host:port if the frontend answers, else 1
#   forget NS
#           deletes the test namespace NS (berth-test-*) and its workflows
#
# BERTH_TEMPORAL_NAMESPACE names the namespace up makes (berth by default).
# make test-prod makes one per run, berth-test-<time>, and forgets it
# after: the database outlives a run, and a run killed midway leaves
# workflows that the next run's worker would otherwise pick up. up with a
# test namespace also forgets the test namespaces earlier runs left.
#
# Log: /var/log/berth/temporal-server.log. Must run as root (PostgreSQL).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$root/deploy/local
BIN=$root/bin
ADDR=127.0.0.1:7633
NAMESPACE=${BERTH_TEMPORAL_NAMESPACE:-berth}
RETENTION=72h
LOG_DIR=/var/log/berth
LOG=$LOG_DIR/temporal-server.log
PIDFILE=/run/berth-temporal-server.pid
TLS_DIR=/var/lib/berth-temporal/tls # also named in deploy/temporal/config/berth.yaml
START_TIMEOUT=${BERTH_TEMPORAL_START_TIMEOUT:-120}

say() { echo "temporal-server.sh: $*" >&2; }
die() {
	say "$*"
	exit 1
}

# shellcheck source=SCRIPTDIR/proc.sh
. "$here/proc.sh"

# tcli runs the Temporal CLI on the frontend with the test client certificate.
tcli() {
	timeout 20 "$BIN/temporal" "$@" --address "$ADDR" --tls-ca-path "$TLS_DIR/ca.pem" \
		--tls-cert-path "$TLS_DIR/client.pem" --tls-key-path "$TLS_DIR/client.key"
}
answers() { tcli operator cluster health >/dev/null 2>&1; }

# ensure_tls makes, once, a CA of the tests' own, the frontend's
# certificate (for 127.0.0.1 and localhost) and one client certificate,
# shared by berth's processes, the tests and the server's system workers.
ensure_tls() {
	[ -s "$TLS_DIR/client.pem" ] && return 0
	command -v openssl >/dev/null || die "openssl not installed"
	install -d -m 0700 "$TLS_DIR"
	local tmp
	tmp=$(mktemp -d)
	(
		cd "$tmp"
		openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=berth test Temporal CA" \
			-keyout ca.key -out ca.pem
		openssl req -newkey rsa:2048 -nodes -subj "/CN=temporal-frontend" -keyout server.key -out server.csr
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
			-extfile server.ext -out server.pem
		openssl req -newkey rsa:2048 -nodes -subj "/CN=berth" -keyout client.key -out client.csr
		printf 'extendedKeyUsage=clientAuth\n' >client.ext
		openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
			-extfile client.ext -out client.pem
	) >>"$LOG" 2>&1 || die "making the test certificates failed (log $LOG)"
	install -m 0600 "$tmp"/{ca.key,server.key,client.key} "$TLS_DIR/"
	install -m 0644 "$tmp"/{ca.pem,server.pem} "$TLS_DIR/"
	# Last: its presence says the set is complete.
	install -m 0644 "$tmp/client.pem" "$TLS_DIR/"
	rm -rf "$tmp"
	say "made the test CA and certificates in $TLS_DIR"
}
server_pid() { pid_of_comm "$PIDFILE" temporal-server; }

sql_tool() {
	# The password in the environment, not on a command line others can read.
	SQL_PASSWORD=temporal-test "$BIN/temporal-sql-tool" --plugin postgres12 --ep 127.0.0.1 -p 5433 -u temporal "$@"
}

db_exists() {
	[ "$(runuser -u postgres -- psql -h /run/berth-postgres -p 5433 -U postgres -d postgres -tAc \
		"SELECT 1 FROM pg_database WHERE datname = '$1'")" = 1 ]
}

# schema DB DIR: create the database and its base schema once, then apply
# every versioned step the module ships that the database does not have yet.
schema() {
	local db=$1 dir=$root/bin/temporal-schema/postgresql/v12/$2/versioned
	[ -d "$dir" ] || die "no schema in $dir (run make bin/temporal-server)"
	if ! db_exists "$db"; then
		say "creating database $db"
		sql_tool --db "$db" create-database >>"$LOG" 2>&1 || die "create-database $db failed (log $LOG)"
		sql_tool --db "$db" setup-schema -v 0.0 >>"$LOG" 2>&1 || die "setup-schema $db failed (log $LOG)"
	fi
	sql_tool --db "$db" update-schema -d "$dir" >>"$LOG" 2>&1 || die "update-schema $db failed (log $LOG)"
}

do_up() {
	[ -x "$BIN/temporal-server" ] && [ -x "$BIN/temporal-sql-tool" ] || die "run make bin/temporal-server first"
	mkdir -p "$LOG_DIR"
	ensure_tls
	"$here/postgres.sh" up >/dev/null
	local pid t0 i ok=''
	t0=$(date +%s%N)
	if answers; then
		say "already up"
	else
		schema temporal temporal
		schema temporal_visibility visibility
		if ! pid=$(server_pid); then
			echo "=== $(date -u +%FT%TZ) temporal-server.sh up" >>"$LOG"
			(cd "$root/deploy/temporal" && exec setsid nohup "$BIN/temporal-server" --root . --config config --env berth \
				--allow-no-auth start >>"$LOG" 2>&1 </dev/null 9>&-) &
			pid=$!
			echo "$pid" >"$PIDFILE"
			say "started temporal-server pid $pid, log $LOG"
		fi
		for ((i = 0; i < START_TIMEOUT * 2; i++)); do
			if answers; then
				ok=1
				break
			fi
			alive "$pid" || {
				tail -n 20 "$LOG" >&2 || true
				die "temporal-server exited during startup (log $LOG)"
			}
			sleep 0.5
		done
		[ -n "$ok" ] || die "temporal-server not answering after ${START_TIMEOUT}s (log $LOG)"
		say "up after $((($(date +%s%N) - t0) / 1000000)) ms"
	fi
	if [[ $NAMESPACE == berth-test-* ]]; then
		local stale
		for stale in $(tcli operator namespace list -o json | grep -o '"name": *"berth-test-[0-9a-z-]*"' |
			sed 's/.*"\(berth-test-[0-9a-z-]*\)"/\1/'); do
			[ "$stale" = "$NAMESPACE" ] || do_forget "$stale"
		done
	fi
	if ! tcli operator namespace describe -n "$NAMESPACE" >/dev/null 2>&1; then
		tcli operator namespace create -n "$NAMESPACE" --retention "$RETENTION" >&2 ||
			die "creating namespace $NAMESPACE failed"
	fi
	# A new namespace is served once every service's namespace cache has it.
	for ((i = 0; i < 120; i++)); do
		if tcli workflow list -n "$NAMESPACE" --limit 1 >/dev/null 2>&1; then
			echo "$ADDR $TLS_DIR"
			return 0
		fi
		sleep 0.5
	done
	die "namespace $NAMESPACE not served after 60s"
}

do_down() {
	local pid
	if pid=$(server_pid); then
		kill -TERM "$pid" 2>/dev/null || true
		if ! wait_gone "$pid" 30; then
			kill -KILL "$pid" 2>/dev/null || true
			wait_gone "$pid" 5 || die "temporal-server pid $pid survived SIGKILL"
		fi
	fi
	rm -f "$PIDFILE"
	say "stopped"
}

# do_forget NS deletes a test namespace; Temporal removes its workflows.
do_forget() {
	[[ $1 =~ ^berth-test-[0-9a-z-]+$ ]] || die "only test namespaces (berth-test-*) are forgotten, not $1"
	tcli operator namespace delete -n "$1" --yes >&2 || die "deleting namespace $1 failed"
}

do_status() {
	if answers; then
		echo "$ADDR $TLS_DIR"
		return 0
	fi
	say "not answering"
	return 1
}

usage() {
	echo "usage: $0 up|down|status|forget NS" >&2
	exit 2
}
[ "$#" -eq 1 ] || { [ "$#" -eq 2 ] && [ "$1" = forget ]; } || usage
case "$1" in
up | down)
	[ "$(id -u)" -eq 0 ] || die "must be root for $1"
	exec 9>/run/.berth-temporal-server.lock
	flock 9
	"do_$1"
	;;
status) do_status ;;
forget) do_forget "$2" ;;
*) usage ;;
esac
