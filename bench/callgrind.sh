#!/bin/sh
# Instructions per call of Producer::append and per record of
# Consumer::poll (inclusive), counted by callgrind on fixed-count
# benchmarks: exact and repeatable where the VM has no hardware counters.
#   BM_AppendPollFixed: append one 32-byte record, poll it (100 000 times)
#   BM_AppendPollBatch: append 256, poll them in one call (2 000 times)
# Usage: bench/callgrind.sh [BUILD_DIR] [exclusive:0]   (exclusive:0: shared claims)
set -eu
build=${1:-build/test}
claims=${2:-exclusive:1}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# per_call BENCHMARK_FUNCTION RECORDS_PER_POLL: "append A poll P" from the
# benchmark loop's callees, "IR (PCT) > file:function (CALLSx)".
per_call() {
  callgrind_annotate --inclusive=yes --tree=calling "$out" 2>/dev/null |
    awk -v fn="$1" -v per_poll="$2" '
      $0 ~ (" \\* .*append_poll_bench.cc:.*" fn "\\(") { inside = 1; next }
      inside && /^$/ { inside = 0 }
      inside && /shmlog::Producer::append\(std::span/ { a = $0 }
      inside && /shmlog::Consumer::poll\(/ { p = $0 }
      function cost(line,   ir, calls) {
        ir = line; sub(/^ */, "", ir); sub(/ .*/, "", ir); gsub(/,/, "", ir)
        calls = line; sub(/.*\(/, "", calls); sub(/x\).*/, "", calls); gsub(/,/, "", calls)
        return ir / calls
      }
      END {
        if (a == "" || p == "") { print "callgrind.sh: no append or poll calls found" > "/dev/stderr"; exit 1 }
        printf "append %.1f, poll %.1f per record", cost(a), cost(p) / per_poll
      }'
}

valgrind --tool=callgrind --callgrind-out-file="$out" "$build/bench/shmlog_bench" \
  --benchmark_filter="BM_AppendPollFixed/size:32/$claims/small_ring:1" >/dev/null 2>&1
single=$(per_call BM_AppendPoll 1)
valgrind --tool=callgrind --callgrind-out-file="$out" "$build/bench/shmlog_bench" \
  --benchmark_filter="BM_AppendPollBatch/$claims" >/dev/null 2>&1
batch=$(per_call BM_AppendPollBatch 256)
echo "32 B, $claims: one at a time: $single; in batches of 256: $batch"
