#!/usr/bin/env bash
# registry.sh up|down|status — run Debian's docker-registry (Distribution
# 2.x) on loopback, for the integration tests and `make run`, without
# systemd (there may be none, and Debian's policy-rc.d forbids starting
# services).
#
#   address  127.0.0.1:5000 (BERTH_REGISTRY_ADDR to change it; loopback only)
#   storage  /var/lib/berth-registry/data
#   config   /var/lib/berth-registry/config.yml (rewritten by every `up`)
#   pidfile  /run/berth-registry/registry.pid
#   log      /var/log/berth/registry.log
#
# No TLS: Docker allows plain HTTP to registries in 127.0.0.0/8 by default
# (insecure-registries includes 127.0.0.0/8), so every engine on this
# machine can push and pull without daemon configuration. Basic auth
# (htpasswd, bcrypt): the first up makes a random password for user berth;
# the workers read user:password from
#   credentials  /var/lib/berth-registry/auth/credentials (0600)
# (BERTH_REGISTRY_AUTH_FILE), so anonymous pulls and pushes are refused.
#
#   up      start unless it already answers; print host:port on stdout
#   down    SIGTERM, wait, then SIGKILL
#   status  exit 0 and print host:port if the registry answers, else 1
#
# Safe to call repeatedly and after an earlier run was SIGKILLed (a stale
# pidfile is detected by checking the recorded process). Must run as root
# for up and down.
set -euo pipefail

ADDR=${BERTH_REGISTRY_ADDR:-127.0.0.1:5000}
BASE=/var/lib/berth-registry
RUN_DIR=/run/berth-registry
LOG_DIR=/var/log/berth
START_TIMEOUT=${BERTH_REGISTRY_START_TIMEOUT:-20}
STOP_TIMEOUT=10
pidfile=$RUN_DIR/registry.pid
config=$BASE/config.yml
auth_dir=$BASE/auth
credentials=$auth_dir/credentials
log=$LOG_DIR/registry.log

say() { echo "registry.sh: $*" >&2; }
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

# Only a loopback address: the registry has no TLS.
[[ "$ADDR" =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}:[0-9]{1,5}$ ]] || die "BERTH_REGISTRY_ADDR must be 127.x.y.z:port, got '$ADDR'"

# anonymous_code: the HTTP status an anonymous /v2/ gets (000: no answer).
anonymous_code() {
	curl -sS -m 3 -o /dev/null -w '%{http_code}' "http://$ADDR/v2/" 2>/dev/null || true
}

# answers: the registry is up and refuses anonymous requests.
answers() {
	[ "$(anonymous_code)" = 401 ]
}

# ensure_auth makes the credentials and their htpasswd once; the password
# never appears on a command line.
ensure_auth() {
	mkdir -p "$auth_dir"
	chmod 0700 "$auth_dir"
	if [ ! -s "$credentials" ] || [ ! -s "$auth_dir/htpasswd" ]; then
		command -v htpasswd >/dev/null || die "htpasswd not installed (run deploy/local/deps.sh test)"
		local pw
		pw=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
		(umask 077 && printf 'berth:%s\n' "$pw" >"$credentials.tmp" && mv -f "$credentials.tmp" "$credentials")
		printf '%s\n' "$pw" | htpasswd -Bin berth >"$auth_dir/htpasswd.tmp"
		mv -f "$auth_dir/htpasswd.tmp" "$auth_dir/htpasswd"
		say "made registry credentials in $credentials"
	fi
}

# shellcheck source=SCRIPTDIR/proc.sh
. "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

# registry_pid: the pid in the pidfile, if that process is alive and is the
# registry (a stale pidfile may name an unrelated process after a reboot).
registry_pid() { pid_of_comm "$pidfile" docker-registry; }

write_config() {
	mkdir -p "$BASE/data"
	cat >"$config.tmp" <<EOF
# Written by deploy/local/registry.sh; rewritten on every up.
version: 0.1
log:
  level: info
  fields:
    service: berth-registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $BASE/data
  delete:
    enabled: true
auth:
  htpasswd:
    realm: berth-registry
    path: $auth_dir/htpasswd
http:
  addr: $ADDR
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
EOF
	mv -f "$config.tmp" "$config"
}

do_up() {
	local t0 pid i
	t0=$(date +%s%N)
	ensure_auth
	if answers; then
		say "already up on $ADDR"
		echo "$ADDR"
		return 0
	fi
	if [ "$(anonymous_code)" = 200 ]; then
		# Started by an older registry.sh, without auth.
		say "up on $ADDR without auth; restarting it with auth"
		do_down
	fi
	if pid=$(registry_pid); then
		say "docker-registry pid $pid running but not answering yet, waiting"
	else
		command -v docker-registry >/dev/null || die "docker-registry not installed (run deploy/local/deps.sh test)"
		rm -f "$pidfile"
		mkdir -p "$RUN_DIR" "$LOG_DIR"
		write_config
		if [ -f "$log" ] && [ "$(stat -c %s "$log")" -gt $((50 * 1024 * 1024)) ]; then
			mv -f "$log" "$log.1"
		fi
		echo "=== $(date -u +%FT%TZ) registry.sh up: docker-registry serve $config" >>"$log"
		# Detached like dockerd.sh: outlives this script; no inherited lock fd.
		(cd / && exec setsid nohup docker-registry serve "$config" >>"$log" 2>&1 </dev/null 9>&-) &
		pid=$!
		echo "$pid" >"$pidfile"
		say "started docker-registry pid $pid, log $log"
	fi
	for ((i = 0; i < START_TIMEOUT * 10; i++)); do
		if answers; then
			say "up on $ADDR after $((($(date +%s%N) - t0) / 1000000)) ms"
			echo "$ADDR"
			return 0
		fi
		if ! alive "$pid"; then
			tail -n 20 "$log" >&2 || true
			die "docker-registry exited during startup (log $log)"
		fi
		sleep 0.1
	done
	tail -n 20 "$log" >&2 || true
	die "docker-registry pid $pid not answering on $ADDR after ${START_TIMEOUT}s (log $log)"
}

do_down() {
	local pid
	if pid=$(registry_pid); then
		say "stopping docker-registry pid $pid"
		kill -TERM "$pid" 2>/dev/null || true
		if ! wait_gone "$pid" "$STOP_TIMEOUT"; then
			say "pid $pid still running after ${STOP_TIMEOUT}s, sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			wait_gone "$pid" 5 || die "docker-registry pid $pid survived SIGKILL"
		fi
	else
		say "docker-registry not running"
	fi
	rm -f "$pidfile"
	# The storage is kept for the next up.
}

do_status() {
	if answers; then
		echo "$ADDR"
		return 0
	fi
	say "not answering on $ADDR"
	return 1
}

if [ "$action" != status ]; then
	[ "$(id -u)" -eq 0 ] || die "must be root for $action"
	mkdir -p "$RUN_DIR"
	exec 9>"$RUN_DIR/.lock"
	flock 9
fi

case "$action" in
up) do_up ;;
down) do_down ;;
status) do_status ;;
*) usage ;;
esac
