#!/usr/bin/env bash
# run.sh — the embedded default: one machine runs the Temporal dev server
# (state in data/temporal.db), the local Docker engine and `berth dev`
# (API + UI + workers, SQLite state in data/berth.db). Ctrl-C stops what this
# script started; the next run keeps the state. Called by `make run`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
data=${BERTH_DATA:-$root/data}
temporal_port=${BERTH_TEMPORAL_PORT:-7233}
ui_port=${BERTH_TEMPORAL_UI_PORT:-8233}
listen=${BERTH_LISTEN:-127.0.0.1:8080}

"$here/deps.sh" run >&2
started_docker=0
if ! "$here/dockerd.sh" status default >/dev/null 2>&1; then
	started_docker=1
fi
"$here/dockerd.sh" up default >/dev/null
mkdir -p "$data"
"$here/sample-image.sh" unix:///var/run/docker.sock >&2
# BERTH_RUN_REGISTRY=1: also run the loopback registry (registry.sh; needs the
# docker-registry package) and let berth build, push and pull images there.
if [ "${BERTH_RUN_REGISTRY:-}" = 1 ]; then
	"$here/deps.sh" registry >&2
	BERTH_REGISTRY=$("$here/registry.sh" up)
	export BERTH_REGISTRY BERTH_REGISTRY_AUTH_FILE=/var/lib/berth-registry/auth/credentials
	echo "run.sh: registry on $BERTH_REGISTRY (left running on exit; registry.sh down stops it)" >&2
fi

if (exec 3<>"/dev/tcp/127.0.0.1/$temporal_port") 2>/dev/null; then
	echo "run.sh: something already listens on 127.0.0.1:$temporal_port; is another 'make run' going? Stop it first." >&2
	exit 1
fi

pids=()
cleanup() {
	trap - EXIT INT TERM
	echo "run.sh: stopping" >&2
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	if [ "$started_docker" = 1 ]; then
		"$here/dockerd.sh" down default >&2 || true
	fi
}
trap cleanup EXIT INT TERM

"$root/bin/temporal" server start-dev --ip 127.0.0.1 --port "$temporal_port" --ui-port "$ui_port" \
	--db-filename "$data/temporal.db" --log-level warn \
	--dynamic-config-value matching.numTaskqueueReadPartitions=1 \
	--dynamic-config-value matching.numTaskqueueWritePartitions=1 \
	>>"$data/temporal.log" 2>&1 &
pids+=($!)

BERTH_DATA="$data" BERTH_LISTEN="$listen" BERTH_TEMPORAL_ADDRESS="127.0.0.1:$temporal_port" \
	BERTH_TEMPORAL_UI_URL="http://127.0.0.1:$ui_port" \
	"$root/bin/berth" dev &
pids+=($!)

# Either process ending ends the run.
wait -n "${pids[@]}"
