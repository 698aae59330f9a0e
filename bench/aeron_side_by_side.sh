#!/bin/bash
# shmlog beside Aeron IPC on the same cores, round by round: a round is
# `shmlog lat` (32 B ping-pong with its cache-line floor) then Aeron's
# cping/cpong, and `shmlog bench` 1 -> 1 32 B (with its ring) then Aeron's
# streaming exclusive and concurrent publishers into rate_subscriber. Each
# Aeron run gets a fresh C media driver (SHARED threading, sleeping idle
# strategy: on two cores a spinning driver would take a measuring core).
#
#   bench/aeron_side_by_side.sh SHMLOG AERON_BINARIES [ROUNDS]
#
# AERON_BINARIES: the `binaries` directory of an Aeron C build (aeronmd,
# cping, cpong, streaming_exclusive_publisher, streaming_publisher,
# rate_subscriber), built outside this tree (bench/README.md says how).
# Prints one line per round; the medians are left to the reader.
set -u
if [ $# -lt 2 ]; then
  echo "usage: $0 SHMLOG AERON_BINARIES [ROUNDS]" >&2
  exit 2
fi
shmlog=$1
aeron=$2
rounds=${3:-4}
for tool in aeronmd cping cpong streaming_exclusive_publisher streaming_publisher rate_subscriber; do
  [ -x "$aeron/$tool" ] || { echo "$0: no $aeron/$tool" >&2; exit 2; }
done
export AERON_DIR=/dev/shm/shmlog-aeron-side-by-side
driver_pid=

start_driver() {
  rm -rf "$AERON_DIR"
  AERON_THREADING_MODE=SHARED AERON_SHARED_IDLE_STRATEGY=sleeping setsid "$aeron/aeronmd" >/dev/null 2>&1 &
  driver_pid=$!
  sleep 2  # the driver's directory and conductor up
}

stop() {  # the Aeron processes of this run, and the driver's directory
  pkill -x cpong
  pkill -x rate_subscriber
  [ -n "$driver_pid" ] && kill "$driver_pid" 2>/dev/null && wait "$driver_pid" 2>/dev/null
  driver_pid=
  rm -rf "$AERON_DIR"
}
trap stop EXIT

# Aeron round trip p50 and p99 in ns (cping prints HdrHistogram's
# percentile distribution in us).
aeron_round_trip() {
  start_driver
  taskset -c 1 timeout 120 "$aeron/cpong" -c aeron:ipc -C aeron:ipc >/dev/null 2>&1 &
  sleep 0.5
  taskset -c 0 timeout 100 "$aeron/cping" -c aeron:ipc -C aeron:ipc -L 32 -m 1000000 -w 100000 2>&1 |
    awk '$2 ~ /^0\.500000/ {p50 = $1 * 1000} $2 ~ /^0\.990625/ {p99 = $1 * 1000} END {printf "%.0f %.0f", p50, p99}'
  stop
}

# Aeron messages/s of 30 M 32-byte messages from PUBLISHER.
aeron_stream() {
  start_driver
  taskset -c 1 timeout 60 "$aeron/rate_subscriber" -c aeron:ipc >/dev/null 2>&1 &
  sleep 0.5
  taskset -c 0 timeout 50 "$aeron/$1" -c aeron:ipc -L 32 -m 30000000 2>&1 | awk '/^Total:/ {printf "%.1f M", $3 / 1e6}'
  stop
}

for round in $(seq 1 "$rounds"); do
  lat=$("$shmlog" lat --count 1000000 --baseline-seconds 0.3 --json 2>/dev/null | python3 -c '
import json, sys
rows = {r["name"] + "/" + r["kind"]: r["percentiles"] for r in json.load(sys.stdin)["rows"]}
s, f = rows["shmlog/round trip"], rows["cache line (floor)/round trip"]
print(s["50"], s["99"], f["50"], f["99"])')
  echo "round $round: round trip p50 p99 (ns): shmlog $(echo "$lat" | cut -d' ' -f1,2), floor $(echo "$lat" | cut -d' ' -f3,4), Aeron $(aeron_round_trip)"
  tp=$("$shmlog" bench --sizes 32 --producers 1 --consumers 1 --rounds 1 2>/dev/null |
    grep -E '^1 -> 1 (baseline ring|exclusive|shared) 32' |
    awk '{for (i = 1; i <= NF; i++) if ($i == "M") {printf "%s %s M, ", $4, $(i - 1); break}}')
  echo "round $round: 1 -> 1 32 B records/s: shmlog ${tp}Aeron exclusive $(aeron_stream streaming_exclusive_publisher), concurrent $(aeron_stream streaming_publisher)"
done
