#!/usr/bin/env bash
# Normal pages vs explicit huge pages (hugetlbfs) vs transparent huge pages
# (tmpfs huge=always): one-way latency at a fixed rate, ping-pong round
# trip, and 1 -> 1 exclusive throughput, the kinds interleaved round by
# round so that drift on a noisy host hits them alike. dTLB misses of the
# latency run come from `perf stat` where the CPU exposes them.
#
#   sudo bench/pages_bench.sh build/tools/shmlog [ROUNDS]
#
#   bench/pages_bench.sh --summarise RESULTS_DIR ROUNDS
#
# Needs root: mounts a hugetlbfs and a tmpfs in temporary directories and
# grows the 2 MiB huge page pool for the run (put back on exit).
# $SHMLOG_LAT_ARGS is added to every `shmlog lat` (e.g. the cores);
# $SHMLOG_KEEP keeps the raw results.
set -euo pipefail
summarise() {
  python3 - "$1" "$2" <<'EOF'
import json, statistics, sys, glob, os
out, rounds = sys.argv[1], int(sys.argv[2])
def lat(kind, mode, pct, row_kind):
    vals = []
    for r in range(1, rounds + 1):
        d = json.load(open(f"{out}/{mode}-{kind}-{r}.json"))
        rows = [x for x in d["rows"] if x["kind"].startswith(row_kind)]
        vals.append(rows[0]["percentiles"][pct])
    return statistics.median(vals)
def rate(kind, size):
    vals = []
    for r in range(1, rounds + 1):
        d = json.load(open(f"{out}/bench-{kind}-{r}.json"))
        vals += [c["records_per_s"] for c in d["cells"] if c["producers"] == 1 and c["exclusive"] and c["size"] == size]
    return statistics.median(vals)
def tlb(kind):
    vals = []
    for r in range(1, rounds + 1):
        p = f"{out}/perf-{kind}-{r}"
        if not os.path.exists(p): return "n/a"
        for line in open(p):
            f = line.split(",")
            if len(f) > 2 and f[2] == "dTLB-load-misses" and f[0].isdigit(): vals.append(int(f[0]))
    return f"{statistics.median(vals):.0f}" if vals else "n/a"
host = json.load(open(f"{out}/bench-normal-1.json"))["host"]
print(f"pages_bench: {host}; medians of {rounds} interleaved rounds")
print(f"{'pages':<8} {'1-way p50':>10} {'p99':>10} {'p99.9':>10} {'RTT p50':>9} {'1->1 32B':>12} {'1->1 4K':>12} {'dTLB miss':>10}")
base = {}
for kind in ("normal", "huge", "thp"):
    row = (lat(kind, "oneway", "50", "one-way"), lat(kind, "oneway", "99", "one-way"), lat(kind, "oneway", "99.9", "one-way"),
           lat(kind, "pingpong", "50", "round trip"), rate(kind, 32), rate(kind, 4096))
    base.setdefault("n", row)
    ratio = "" if kind == "normal" else f"   (x{row[0]/base['n'][0]:.2f} p50, x{row[4]/base['n'][4]:.2f} 32B rate)"
    print(f"{kind:<8} {row[0]:>8}ns {row[1]:>8}ns {row[2]:>8}ns {row[3]:>7}ns {row[4]/1e6:>9.1f} M/s {row[5]/1e6:>9.2f} M/s {tlb(kind):>10}{ratio}")
EOF
}
# Results measured elsewhere (e.g. another machine): summarise only.
if [ "${1:-}" = --summarise ]; then summarise "$2" "$3"; exit; fi
SHMLOG=$(realpath "$1")
ROUNDS=${2:-3}
[ "$(id -u)" = 0 ] || { echo "pages_bench: needs root (mounts and the huge page pool)" >&2; exit 1; }

POOL=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
BEFORE=$(cat "$POOL")
HUGE=$(mktemp -d /tmp/shmlog-huge-XXXXXX)
THP=$(mktemp -d /tmp/shmlog-thp-XXXXXX)
OUT=$(mktemp -d /tmp/shmlog-pages-XXXXXX)
cleanup() {
  umount "$HUGE" 2>/dev/null || true
  umount "$THP" 2>/dev/null || true
  rmdir "$HUGE" "$THP" 2>/dev/null || true
  echo "$BEFORE" > "$POOL"
  if [ -n "${SHMLOG_KEEP:-}" ]; then cp -r "$OUT"/. "$SHMLOG_KEEP"/; fi
  rm -rf "$OUT"
}
failed() { echo "pages_bench: a run failed:" >&2; tail -5 "$OUT/errors" >&2; }
trap 'rc=$?; [ $rc = 0 ] || failed; cleanup' EXIT
mount -t hugetlbfs -o pagesize=2M none "$HUGE"
mount -t tmpfs -o huge=always,size=2g none "$THP"
# lat: two logs of 64 MiB; bench: one log of 64 MiB per consumer (2 here).
echo $((BEFORE + 200)) > "$POOL"

flags() {
  case $1 in
    normal) ;;
    huge) echo "--huge-pages --memory-dir $HUGE" ;;
    thp) echo "--thp --memory-dir $THP" ;;
  esac
}

PERF=""
if command -v perf >/dev/null && perf stat -e dTLB-load-misses -x, true 2>&1 | grep -q '^[0-9]'; then
  PERF="perf stat -x, -e dTLB-load-misses,dTLB-loads -o"
fi

for round in $(seq 1 "$ROUNDS"); do
  for kind in normal huge thp; do
    f=$(flags $kind)
    if [ -n "$PERF" ]; then
      $PERF "$OUT/perf-$kind-$round" "$SHMLOG" lat --mode one-way --rate 100000 --duration 2 --no-baselines --json $f ${SHMLOG_LAT_ARGS:-} \
        > "$OUT/oneway-$kind-$round.json" 2>>"$OUT/errors"
    else
      "$SHMLOG" lat --mode one-way --rate 100000 --duration 2 --no-baselines --json $f ${SHMLOG_LAT_ARGS:-} > "$OUT/oneway-$kind-$round.json" 2>>"$OUT/errors"
    fi
    "$SHMLOG" lat --mode ping-pong --duration 2 --no-baselines --json $f ${SHMLOG_LAT_ARGS:-} > "$OUT/pingpong-$kind-$round.json" 2>>"$OUT/errors"
    "$SHMLOG" bench --producers 2 --consumers 2 --sizes 32 4K --seconds 1 --json $f > "$OUT/bench-$kind-$round.json" 2>>"$OUT/errors"
    echo "round $round: $kind done" >&2
  done
done

summarise "$OUT" "$ROUNDS"
