#!/usr/bin/env bash
# What the hot-path counters cost: one-way latency at a fixed rate and the
# ping-pong round trip, from the normal build and from a build configured
# with -DSHMLOG_HOT_COUNTERS=OFF, interleaved round by round.
#
#   bench/counters_cost.sh BUILD_DIR [ROUNDS]
#   bench/counters_cost.sh --summarise RESULTS_DIR ROUNDS
#
# Builds BUILD_DIR-nocounters (the shmlog command only) next to BUILD_DIR,
# or takes that binary from $SHMLOG_OFF_BIN. $SHMLOG_LAT_ARGS is added to
# every `shmlog lat` (e.g. the cores); $SHMLOG_KEEP keeps the raw results.
set -euo pipefail
summarise() {
  python3 - "$1" "$2" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def p(build, mode, pct):
    v = []
    for r in range(1, rounds + 1):
        d = json.load(open(f"{out}/{mode}-{build}-{r}.json"))
        row = next(x for x in d["rows"] if x["kind"].startswith("one-way" if mode == "oneway" else "round trip"))
        v.append(row["percentiles"][pct])
    return statistics.median(v)
host = json.load(open(f"{out}/oneway-on-1.json"))["host"]
print(f"counters_cost: {host}; medians of {rounds} interleaved rounds")
print(f"{'':<28} {'counters on':>12} {'off':>8} {'on/off':>7}")
for label, mode, pct in (("one-way p50 (100k/s)", "oneway", "50"), ("one-way p99 (100k/s)", "oneway", "99"),
                         ("round trip p50", "pingpong", "50")):
    on, off = p("on", mode, pct), p("off", mode, pct)
    print(f"{label:<28} {on:>10}ns {off:>6}ns {on / off:>7.3f}")
PY
}
# Results measured elsewhere (e.g. another machine): summarise only.
if [ "${1:-}" = --summarise ]; then summarise "$2" "$3"; exit; fi
BUILD=$(realpath "$1")
ROUNDS=${2:-5}
SRC=$(cd "$(dirname "$0")/.." && pwd)
ON_BIN="$BUILD/tools/shmlog"
OFF_BIN=${SHMLOG_OFF_BIN:-}
if [ -z "$OFF_BIN" ]; then
  OFF="$BUILD-nocounters"
  cmake -S "$SRC" -B "$OFF" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHMLOG_HOT_COUNTERS=OFF \
    -DSHMLOG_BUILD_TESTS=OFF -DSHMLOG_BUILD_BENCH=OFF -DSHMLOG_BUILD_PYTHON=OFF >/dev/null
  cmake --build "$OFF" --target shmlog_cli -j"$(nproc)" >/dev/null
  OFF_BIN="$OFF/tools/shmlog"
fi
OUT=$(mktemp -d /tmp/shmlog-counters-XXXXXX)
trap '[ -n "${SHMLOG_KEEP:-}" ] && cp -r "$OUT"/. "$SHMLOG_KEEP"/; rm -rf "$OUT"' EXIT
for round in $(seq 1 "$ROUNDS"); do
  for build in on off; do
    bin=$ON_BIN; [ $build = off ] && bin=$OFF_BIN
    "$bin" lat --mode one-way --rate 100000 --duration 2 --no-baselines --json ${SHMLOG_LAT_ARGS:-} > "$OUT/oneway-$build-$round.json" 2>/dev/null
    "$bin" lat --mode ping-pong --duration 2 --no-baselines --json ${SHMLOG_LAT_ARGS:-} > "$OUT/pingpong-$build-$round.json" 2>/dev/null
  done
  echo "round $round done" >&2
done
summarise "$OUT" "$ROUNDS"
