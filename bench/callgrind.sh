#!/bin/sh
# Instructions per call of Producer::append and Consumer::poll (inclusive),
# counted by callgrind on one BM_AppendPollFixed case (100 000 iterations):
# exact and repeatable where the VM has no hardware counters.
# Usage: bench/callgrind.sh [BUILD_DIR] [CASE]   (CASE: exclusive:0 for shared claims)
set -eu
build=${1:-build/test}
case=size:32/${2:-exclusive:1}/small_ring:1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$out" "$build/bench/shmlog_bench" \
  --benchmark_filter="BM_AppendPollFixed/$case" >/dev/null 2>&1
# The benchmark loop's callees: "IR (PCT) > file:function (CALLSx)".
callgrind_annotate --inclusive=yes --tree=calling "$out" 2>/dev/null |
  awk -v case="$case" '
    / \* .*append_poll_bench.cc:.*BM_AppendPoll/ { inside = 1; next }
    inside && /^$/ { inside = 0 }
    inside && /shmlog::Producer::append\(std::span/ { a = $0 }
    inside && /shmlog::Consumer::poll\(/ { p = $0 }
    function per_call(line,   ir, calls) {
      ir = line; sub(/^ */, "", ir); sub(/ .*/, "", ir); gsub(/,/, "", ir)
      calls = line; sub(/.*\(/, "", calls); sub(/x\).*/, "", calls); gsub(/,/, "", calls)
      return ir / calls
    }
    END {
      if (a == "" || p == "") { print "callgrind.sh: no append or poll calls found" > "/dev/stderr"; exit 1 }
      printf "BM_AppendPollFixed/%s: append %.1f, poll %.1f, total %.1f instructions per call\n",
             case, per_call(a), per_call(p), per_call(a) + per_call(p)
    }'
