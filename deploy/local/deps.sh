#!/usr/bin/env bash
# deps.sh PROFILE... — install the Debian packages berth needs for a profile,
# but only those that are missing, so that repeated calls (CI, every
# `testenv.sh up`) cost one `dpkg -s` per package and no network.
#
# Profiles (add one by adding one line to the `case` in packages_for):
#   run   engine host for deployments
#   registry  the loopback image registry (registry.sh; `BERTH_RUN_REGISTRY=1 make run`)
#   prod  make test-prod: PostgreSQL 15, the production Temporal server's database
#   bench the benchmarks' baselines (docker-compose: the three-tier file
#         measured against `docker-compose up`)
#   test  everything the integration tests need on this machine (chromium:
#         the browser tests of the web UI; docker-registry: the loopback
#         registry of deploy/local/registry.sh; apache2-utils: its htpasswd;
#         prometheus: scrapes berth in a test, and promtool checks the
#         alert rules; prometheus-alertmanager: alerts made tickets; rsyslog: logs shipped,
#         with its elasticsearch and relp modules: the production configs
#         in deploy/rsyslog are checked with rsyslogd -N1)
#
# Exit status: 0 when everything is installed (or was installed now);
# 1 when something is missing and we are not root (the needed command is
# printed), 2 on usage errors.
set -euo pipefail

usage() {
	echo "usage: $0 PROFILE... (profiles: run registry test prod bench)" >&2
	exit 2
}

# packages_for PROFILE prints the packages of one profile, space separated.
packages_for() {
	case "$1" in
	run) echo "docker.io iproute2 ca-certificates haproxy" ;;
	test) echo "docker.io mariadb-server iproute2 ca-certificates procps curl haproxy chromium docker-registry apache2-utils prometheus prometheus-alertmanager rsyslog rsyslog-elasticsearch rsyslog-relp" ;;
	registry) echo "docker-registry apache2-utils" ;;
	prod) echo "postgresql-15" ;;
	bench) echo "docker-compose" ;;
	*) return 1 ;;
	esac
}

[ "$#" -ge 1 ] || usage

wanted=()
for profile in "$@"; do
	if ! pkgs=$(packages_for "$profile"); then
		echo "deps.sh: unknown profile '$profile'" >&2
		usage
	fi
	# Word splitting is intended: package names contain no spaces or globs.
	# shellcheck disable=SC2206
	wanted+=($pkgs)
done

# `dpkg -s` succeeds for removed-but-configured packages ("deinstall ok
# config-files"), so check the status line, not only the exit code.
installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
declare -A seen=()
for p in "${wanted[@]}"; do
	[ -n "${seen[$p]:-}" ] && continue
	seen[$p]=1
	installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
	echo "deps.sh: all packages present for: $*" >&2
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing packages: ${missing[*]}" >&2
	echo "deps.sh: as root run: apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
	exit 1
fi

echo "deps.sh: installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# needrestart (if installed) would otherwise scan and possibly restart
# services after the install; we manage our daemons ourselves.
export NEEDRESTART_SUSPEND=1
# Only refresh the index when we actually install something: it is the slow,
# network-bound step. -q keeps CI logs short; stdout goes to stderr so callers
# that capture our stdout (testenv.sh) get nothing from apt.
apt-get update -q >&2
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
echo "deps.sh: installed: ${missing[*]}" >&2
