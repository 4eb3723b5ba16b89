#!/usr/bin/env bash
# What `make run` calls after building: the whole stack in the foreground,
# state under ./var (PostgreSQL cluster, dev certificate, logs), until Ctrl-C.
#
#   deploy/run.sh [BUILD_DIR] [launch.py run options...]
#
# BUILD_DIR defaults to build (build/san for the sanitizer build). Options go
# to `launch.py run` (see `python3 deploy/launch.py run --help`), e.g.
#   bash deploy/run.sh build --set log_level=debug
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  build=$1
  shift
fi
exec python3 deploy/launch.py run --state ./var --build "$build" "$@"
