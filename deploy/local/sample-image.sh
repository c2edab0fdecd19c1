#!/usr/bin/env bash
# sample-image.sh ENDPOINT — build testdata/sampleapp as the FROM-scratch
# image berth-sample:v1 on an engine, unless it is there already, so the
# README's first deploy works without any registry.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
endpoint=${1:?usage: sample-image.sh unix:///path/to/docker.sock}
image=berth-sample:v1
if docker -H "$endpoint" image inspect "$image" >/dev/null 2>&1; then
	exit 0
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ctx/sampleapp" ./testdata/sampleapp)
cp "$root/testdata/sampleapp/Dockerfile" "$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker -H "$endpoint" build -q -t "$image" "$ctx" >/dev/null
echo "sample-image.sh: built $image on $endpoint" >&2
