#!/usr/bin/env bash
# rsyslog.sh up|down|status — run Debian's rsyslog as the region's log
# collector on loopback and as the shipper of this machine's engines (the
# default one and every hN of dockerd.sh), for the integration tests,
# without systemd (there may be none, and Debian's policy-rc.d forbids
# starting services). One rsyslogd does both, and the shipper sends to the
# collector over TCP as it would across machines. Its rules are those of
# deploy/rsyslog, which the production collector and hosts include.
#
#   address  127.0.0.1:5514, TCP (BERTH_SYSLOG_PORT to change the port)
#   archive  /var/lib/berth-logs: one file per instance and UTC day
#            (the worker's -log-archive; it trims it to -log-retention)
#   config   /var/lib/berth-rsyslog/rsyslog.conf (rewritten by every up)
#   pidfile  /run/berth-rsyslog/rsyslogd.pid
#
#   up      start unless it already answers; print "host:port archive" on stdout
#   down    SIGTERM, wait, then SIGKILL
#   status  exit 0 and print "host:port archive" if it answers, else 1
#
# Safe to call repeatedly and after an earlier run was SIGKILLed. Must run
# as root for up and down.
set -euo pipefail

PORT=${BERTH_SYSLOG_PORT:-5514}
ADDR=127.0.0.1:$PORT
ARCHIVE=${BERTH_LOG_ARCHIVE_DIR:-/var/lib/berth-logs}
BASE=/var/lib/berth-rsyslog
RUN_DIR=/run/berth-rsyslog
START_TIMEOUT=20
# shellcheck disable=SC2034 # read by stop_pid in proc.sh
STOP_TIMEOUT=10
pidfile=$RUN_DIR/rsyslogd.pid
config=$BASE/rsyslog.conf
rules_src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../rsyslog" && pwd)

say() { echo "rsyslog.sh: $*" >&2; }
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
[[ "$PORT" =~ ^[0-9]{1,5}$ ]] || die "BERTH_SYSLOG_PORT must be a port number, got '$PORT'"
[[ "$ARCHIVE" =~ ^/[A-Za-z0-9/._-]+$ ]] || die "BERTH_LOG_ARCHIVE_DIR must be an absolute plain path, got '$ARCHIVE'"

# shellcheck source=SCRIPTDIR/proc.sh
. "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
rsyslog_pid() { pid_of_comm "$pidfile" rsyslogd; }

write_config() {
	mkdir -p "$BASE/work" "$ARCHIVE"
	chmod 0750 "$ARCHIVE"
	sed "s|@ARCHIVE@|$ARCHIVE|g" "$rules_src/berth-rules.conf" >"$BASE/berth-rules.conf"
	cp "$rules_src/berth-forward-none.conf" "$BASE/berth-forward-none.conf"
	sed -e "s|@COLLECTOR@|127.0.0.1|g" -e "s|@PORT@|$PORT|g" "$rules_src/berth-host-shipper.conf" >"$BASE/berth-host-shipper.conf"
	{
		echo "# Written by deploy/local/rsyslog.sh; rewritten on every up."
		echo "global(workDirectory=\"$BASE/work\" maxMessageSize=\"64k\" parser.escapeControlCharacterTab=\"off\")"
		echo "module(load=\"imtcp\" MaxSessions=\"2000\")"
		echo "include(file=\"$BASE/berth-forward-none.conf\")"
		echo "include(file=\"$BASE/berth-rules.conf\")"
		echo "include(file=\"$BASE/berth-host-shipper.conf\")"
		echo "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"$PORT\" ruleset=\"berth\")"
		# The engines of dockerd.sh: the default one and every hN.
		echo "input(type=\"imfile\" File=\"/var/lib/docker/containers/*/*-json.log\" Tag=\"berth-json\" ruleset=\"berth_ship\" freshStartTail=\"on\")"
		echo "input(type=\"imfile\" File=\"/var/lib/berth-hosts/*/containers/*/*-json.log\" Tag=\"berth-json\" ruleset=\"berth_ship\" freshStartTail=\"on\")"
		echo "input(type=\"imfile\" File=\"/var/lib/docker/volumes/*.logs/_data/*.log\" Tag=\"berth-file\" ruleset=\"berth_ship_file\" addMetadata=\"on\" freshStartTail=\"on\")"
		echo "input(type=\"imfile\" File=\"/var/lib/berth-hosts/*/volumes/*.logs/_data/*.log\" Tag=\"berth-file\" ruleset=\"berth_ship_file\" addMetadata=\"on\" freshStartTail=\"on\")"
	} >"$config.tmp"
	mv -f "$config.tmp" "$config"
	rsyslogd -N1 -f "$config" >&2 || die "rsyslog refuses $config"
}

do_up() {
	local pid i
	command -v rsyslogd >/dev/null || die "rsyslog not installed (run deploy/local/deps.sh test)"
	# The configuration is rendered every time: one that changed since the
	# running rsyslogd started it restarts it.
	local before=""
	[ -f "$config" ] && before=$(cat "$BASE"/*.conf | sha256sum)
	write_config
	if answers; then
		if [ "$before" = "$(cat "$BASE"/*.conf | sha256sum)" ]; then
			say "already up on $ADDR"
			echo "$ADDR $ARCHIVE"
			return 0
		fi
		say "configuration changed; restarting"
		do_down
	fi
	if ! pid=$(rsyslog_pid); then
		mkdir -p "$RUN_DIR"
		rm -f "$pidfile"
		# rsyslogd detaches and writes its own pidfile.
		(cd / && rsyslogd -f "$config" -i "$pidfile" </dev/null 9>&-)
		say "started rsyslogd, archive $ARCHIVE"
	fi
	for ((i = 0; i < START_TIMEOUT * 10; i++)); do
		if answers; then
			say "up on $ADDR"
			echo "$ADDR $ARCHIVE"
			return 0
		fi
		sleep 0.1
	done
	die "rsyslogd not answering on $ADDR after ${START_TIMEOUT}s"
}

do_down() {
	local pid
	if pid=$(rsyslog_pid); then
		say "stopping rsyslogd pid $pid"
		stop_pid "$pid" rsyslogd
	else
		say "rsyslogd not running"
	fi
	rm -f "$pidfile"
}

case "$action" in
up | down) [ "$(id -u)" -eq 0 ] || die "must be root for $action" ;;
esac
case "$action" in
up) do_up ;;
down) do_down ;;
status)
	if answers; then
		echo "$ADDR $ARCHIVE"
	else
		exit 1
	fi
	;;
*) usage ;;
esac
