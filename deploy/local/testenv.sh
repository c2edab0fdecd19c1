#!/usr/bin/env bash
# testenv.sh up|down — bring up (or stop) everything berth's integration
# tests need on this one machine: packages, the default Docker engine, a
# second engine "h2" standing in for another host, and MariaDB.
#
#   up    idempotent; progress goes to stderr and only `export` lines to
#         stdout, so a Makefile or CI script can do
#             env=$(deploy/local/testenv.sh up) && eval "$env"
#         (not `eval "$(...)"` alone: that would hide a failure of `up`).
#         Exports:
#           BERTH_TEST_DOCKER_HOSTS  name=socket@host-IP, comma separated
#           BERTH_TEST_MYSQL_DSN     Go MySQL driver DSN for database berth_test
#           BERTH_TEST_REGISTRY      host:port of the loopback registry
#           BERTH_TEST_REGISTRY_AUTH_FILE  its user:password (the workers')
#           BERTH_TEST_SYSLOG        host:port of the loopback log collector (rsyslog)
#           BERTH_TEST_LOG_ARCHIVE   the folder it archives shipped lines to
#   down  stops rsyslog, the registry, MariaDB, h2 and the default engine. Data (images, networks,
#         databases) is kept for the next `up`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
	echo "usage: $0 up|down" >&2
	exit 2
}
[ "$#" -eq 1 ] || usage

case "$1" in
up)
	# Everything the helpers print goes to stderr: our stdout is for eval.
	echo "testenv.sh: checking packages" >&2
	"$here/deps.sh" test >&2
	default_sock=$("$here/dockerd.sh" up default)
	h2_sock=$("$here/dockerd.sh" up h2)
	dsn=$("$here/mariadb.sh" up)
	registry=$("$here/registry.sh" up)
	read -r syslog archive < <("$here/rsyslog.sh" up)
	[ -n "$archive" ] || { echo "testenv.sh: rsyslog.sh up printed no archive" >&2; exit 1; }
	echo "testenv.sh: up" >&2
	# Single quotes: the DSN contains & and ?, which eval must not interpret.
	# None of the values can contain a single quote (they are fixed above).
	# Host addresses from dockerd.sh's ensure_host_address: containers of one
	# engine reach the other engine's published ports there (the mesh).
	echo "export BERTH_TEST_DOCKER_HOSTS='local=${default_sock}@10.230.0.1,h2=${h2_sock}@10.230.0.2'"
	echo "export BERTH_TEST_MYSQL_DSN='${dsn}'"
	echo "export BERTH_TEST_REGISTRY='${registry}'"
	echo "export BERTH_TEST_REGISTRY_AUTH_FILE='/var/lib/berth-registry/auth/credentials'"
	echo "export BERTH_TEST_SYSLOG='${syslog}'"
	echo "export BERTH_TEST_LOG_ARCHIVE='${archive}'"
	;;
down)
	"$here/rsyslog.sh" down >&2
	"$here/registry.sh" down >&2
	"$here/mariadb.sh" down >&2
	"$here/dockerd.sh" down h2 >&2
	"$here/dockerd.sh" down default >&2
	echo "testenv.sh: down" >&2
	;;
*) usage ;;
esac
