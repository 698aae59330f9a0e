#!/bin/sh
# Instructions per call of Producer::append and per record of
# Consumer::poll (inclusive; the benchmarks call the inline poll through
# counted_poll, never inlined, so that it is one call), counted by
# callgrind on fixed-count benchmarks: exact and repeatable where the VM
# has no hardware counters.
#   BM_AppendPollFixed: append one 32-byte record, poll it (100 000 times)
#   BM_AppendPollBatch: append 256, poll them in one call (2 000 times)
#   BM_PollEmpty: a poll that finds nothing (100 000 times), inline and
#   through a RecordHandler (the library's poll)
# or, with `c-api`, shmlog_append + shmlog_poll of the C API against
# Producer::append + Consumer::poll (exclusive, 32 B): one record per poll
# on the default shared-memory log (100 000 times each), and the batches
# of 256 above.
# Usage: bench/callgrind.sh [BUILD_DIR] [exclusive:0]   (exclusive:0: shared claims)
#        bench/callgrind.sh BUILD_DIR c-api
set -eu
build=${1:-build/test}
claims=${2:-exclusive:1}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# per_call BENCHMARK_FUNCTION RECORDS_PER_POLL [APPEND_FN POLL_FN]: "append
# A, poll P per record" from the benchmark loop's callees, "IR (PCT) >
# file:function (CALLSx)".
per_call() {
  callgrind_annotate --inclusive=yes --tree=calling "$out" 2>/dev/null |
    awk -v fn="$1" -v per_poll="$2" -v append_fn="${3:-shmlog::Producer::append(std::span}" \
        -v poll_fn="${4:-counted_poll<}" '
      $0 ~ (" \\* .*append_poll_bench.cc:.*" fn "\\(") { inside = 1; next }
      inside && /^$/ { inside = 0 }
      inside && index($0, append_fn) { a = $0 }
      inside && index($0, poll_fn) { p = $0 }
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

# measure FILTER BENCHMARK_FUNCTION RECORDS_PER_POLL [APPEND_FN POLL_FN]:
# runs the benchmarks FILTER selects under callgrind, then per_call.
measure() {
  valgrind --tool=callgrind --callgrind-out-file="$out" "$build/bench/shmlog_bench" \
    --benchmark_filter="$1" >/dev/null 2>&1
  shift
  per_call "$@"
}

if [ "$claims" = c-api ]; then
  c_calls=':shmlog_append ('
  # compare TITLE CPP C: both lines, then the sums and C's excess.
  compare() {
    sum() { echo "$1" | awk '{ gsub(/,/, ""); print $2 + $4 }'; }
    printf '%s\n  C++:   %s\n  C API: %s\n' "$1" "$2" "$3"
    awk -v a="$(sum "$2")" -v b="$(sum "$3")" 'BEGIN { printf "  append+poll: C++ %.1f, C %.1f (%+.1f%%)\n", a, b, 100 * (b / a - 1) }'
  }
  cpp=$(measure BM_CppAppendPollFixed BM_CppAppendPollSharedMemory 1)
  c=$(measure BM_CApiAppendPollFixed c_api_append_poll 1 "$c_calls" ':shmlog_poll (')
  compare "32 B, exclusive, one record per poll:" "$cpp" "$c"
  cpp=$(measure BM_AppendPollBatch/exclusive:1 BM_AppendPollBatch 256)
  c=$(measure BM_CApiAppendPollBatch c_api_append_poll 256 "$c_calls" ':shmlog_poll (')
  compare "32 B, exclusive, in batches of 256:" "$cpp" "$c"
  exit 0
fi

# empty_poll INLINE: instructions per poll that finds nothing (BM_PollEmpty).
empty_poll() {
  valgrind --tool=callgrind --callgrind-out-file="$out" "$build/bench/shmlog_bench" \
    --benchmark_filter="BM_PollEmpty/inline:$1" >/dev/null 2>&1
  callgrind_annotate --inclusive=yes --tree=calling "$out" 2>/dev/null |
    awk '
      / \* .*append_poll_bench.cc:.*BM_PollEmpty\(/ { inside = 1; next }
      inside && /^$/ { inside = 0 }
      inside && index($0, "counted_poll<") { ir = $0; sub(/^ */, "", ir); sub(/ .*/, "", ir); gsub(/,/, "", ir)
                                              calls = $0; sub(/.*\(/, "", calls); sub(/x\).*/, "", calls); gsub(/,/, "", calls)
                                              total += ir; n += calls }
      END { if (n == 0) { print "callgrind.sh: no poll calls found" > "/dev/stderr"; exit 1 }
            printf "%.1f", total / n }'
}

single=$(measure "BM_AppendPollFixed/size:32/$claims/small_ring:1" BM_AppendPoll 1)
batch=$(measure "BM_AppendPollBatch/$claims" BM_AppendPollBatch 256)
echo "32 B, $claims: one at a time: $single; in batches of 256: $batch"
echo "a poll that finds nothing: $(empty_poll 1) inline, $(empty_poll 0) through a RecordHandler (the library's poll)"
