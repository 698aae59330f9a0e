#!/usr/bin/env bash
# Sets up, builds (Release) and runs the live demo: producer and consumer
# processes sharing one log, with throughput and latency percentiles.
# Extra arguments go to `shmlog demo` (see `shmlog demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DSHMLOG_BUILD_TESTS=OFF -DSHMLOG_BUILD_BENCH=OFF >/dev/null
cmake --build build/release --target shmlog_cli shmlog_python
# The Python module goes to the user's site-packages: `python3 -c "import shmlog"` works.
site=$(/usr/bin/python3 -m site --user-site)
mkdir -p "$site" && cp build/release/bindings/python/shmlog*.so "$site/"
build/release/tools/shmlog demo "$@"
