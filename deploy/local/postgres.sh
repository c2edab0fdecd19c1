#!/usr/bin/env bash
# postgres.sh up|down|status — run the PostgreSQL 15 that the production
# Temporal server of `make test-prod` keeps its state in, without systemd,
# in a cluster of its own (/var/lib/berth-postgres) on 127.0.0.1:5433, so
# that it never touches a PostgreSQL the machine already runs on 5432.
#
#   up      initialise the cluster if needed, start it unless it answers, and
#           (idempotently) create the role temporal/temporal-test, allowed to
#           create databases (Temporal's SQL tool creates its own); prints
#           host:port on stdout
#   down    fast shutdown (pg_ctl -m fast)
#   status  exit 0 and print host:port if the server answers, else 1
#
# Log: /var/log/berth/postgres.log. Must run as root; the server runs as
# the postgres user of Debian's package.
set -euo pipefail

PGBIN=/usr/lib/postgresql/15/bin
DATA=/var/lib/berth-postgres/data
SOCK=/run/berth-postgres
PORT=5433
LOG_DIR=/var/log/berth
LOG=$LOG_DIR/postgres.log
ADDR=127.0.0.1:$PORT

say() { echo "postgres.sh: $*" >&2; }
die() {
	say "$*"
	exit 1
}

as_pg() { runuser -u postgres -- "$@"; }
answers() { as_pg "$PGBIN/pg_isready" -q -h "$SOCK" -p "$PORT" -t 2; }

# Fixed SQL: nothing from a caller is interpolated.
SETUP_SQL="
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'temporal') THEN
    CREATE ROLE temporal LOGIN CREATEDB PASSWORD 'temporal-test';
  ELSE
    ALTER ROLE temporal LOGIN CREATEDB PASSWORD 'temporal-test';
  END IF;
END \$\$;
"

do_up() {
	[ -x "$PGBIN/postgres" ] || die "postgresql-15 not installed (run deploy/local/deps.sh prod)"
	install -d -o postgres -g postgres -m 0755 "$SOCK"
	mkdir -p "$LOG_DIR"
	touch "$LOG" && chown postgres "$LOG"
	if ! answers; then
		if [ ! -s "$DATA/PG_VERSION" ]; then
			say "initialising $DATA"
			install -d -o postgres -g postgres -m 0700 "$DATA"
			as_pg "$PGBIN/initdb" -D "$DATA" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
				--encoding=UTF8 --locale=C.UTF-8 >>"$LOG" 2>&1 || die "initdb failed (log $LOG)"
		fi
		say "starting on $ADDR"
		# setsid: the server outlives this script and CI's shell.
		as_pg setsid "$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
			-o "-p $PORT -c listen_addresses=127.0.0.1 -k $SOCK -c max_connections=200 -c fsync=off -c synchronous_commit=off" \
			start >&2 </dev/null 9>&- || die "pg_ctl start failed (log $LOG)"
	else
		say "already up"
	fi
	as_pg /usr/bin/psql -q -h "$SOCK" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -c "$SETUP_SQL" >&2 ||
		die "creating role temporal failed"
	echo "$ADDR"
}

do_down() {
	if [ -s "$DATA/postmaster.pid" ]; then
		as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >&2 || true
	fi
	say "stopped"
}

do_status() {
	if answers; then
		echo "$ADDR"
		return 0
	fi
	say "not answering"
	return 1
}

[ "$#" -eq 1 ] || {
	echo "usage: $0 up|down|status" >&2
	exit 2
}
case "$1" in
up | down)
	[ "$(id -u)" -eq 0 ] || die "must be root for $1"
	exec 9>/run/.berth-postgres.lock
	flock 9
	"do_$1"
	;;
status) do_status ;;
*)
	echo "usage: $0 up|down|status" >&2
	exit 2
	;;
esac
