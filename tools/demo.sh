#!/usr/bin/env bash
# Sets up, builds (Release) and runs the live demo: producer and consumer
# processes sharing one log, with throughput and latency percentiles.
# Extra arguments go to `shmlog demo` (see `shmlog demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DSHMLOG_BUILD_TESTS=OFF -DSHMLOG_BUILD_BENCH=OFF >/dev/null
cmake --build build/release --target shmlog_cli
build/release/tools/shmlog demo "$@"
