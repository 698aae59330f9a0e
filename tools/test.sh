#!/usr/bin/env bash
# Sets up, builds with warnings as errors and runs the whole test suite in
# three stages: plain (gcc), AddressSanitizer+UBSan (clang, with the fuzz
# targets run briefly by libFuzzer), and ThreadSanitizer for the
# multi-threaded suites. Set SHMLOG_TEST_STAGES to run fewer ("plain asan").
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
STAGES=${SHMLOG_TEST_STAGES:-"plain asan tsan"}
JOBS=$(nproc)

build() {  # DIR SANITIZE [extra cmake args]; TARGET=name builds only that
  local dir=$1 sanitize=$2; shift 2
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHMLOG_WERROR=ON \
    -DSHMLOG_SANITIZE="$sanitize" "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS" ${TARGET:+--target "$TARGET"}
}

for stage in $STAGES; do
  echo "=== stage: $stage"
  case $stage in
    plain)
      build build/test ""
      # Benchmarks are built above; run each briefly to prove it works.
      build/test/bench/shmlog_bench --benchmark_min_time=0.01 >/dev/null
      build/test/bench/shmlog_delivery_bench 1 1000 >/dev/null
      ctest --test-dir build/test --output-on-failure -j "$JOBS"
      ;;
    asan)
      # clang: it builds this stage three times faster than gcc, and the same
      # build gives the fuzz targets, each run from its corpus for a few
      # seconds (tests/fuzz/README.md).
      CC=clang CXX=clang++ build build/asan "address,undefined" -DSHMLOG_FUZZ=ON \
        -DSHMLOG_BUILD_BENCH=OFF -DSHMLOG_BUILD_PYTHON=OFF
      ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --test-dir build/asan --output-on-failure -j "$JOBS"
      ;;
    tsan)
      # Only the unit tests: the threaded suites are all there.
      TARGET=shmlog_tests build build/tsan "thread" -DSHMLOG_BUILD_BENCH=OFF -DSHMLOG_BUILD_PYTHON=OFF
      # The threaded suites; tests that fork children of a threaded process
      # (a forked child under ThreadSanitizer may abort) run in the other stages.
      TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
        ctest --test-dir build/tsan --output-on-failure -j "$JOBS" -R '^(ConcurrentLog|Log|Group|DamagedFiles|SharedMemoryRemoved|Owner)\.|^HostCrash\.(Failed|AFailed|Short|Files|Recovery|Damage|Stray|Named|TheLast|Offsets|AMissing|TheNew|Uniqueness)|^FileSink\.(Resumes|AHostCrash|ATorn|ADamaged|AJournal|Files|Foreign|OneWriter|TheJournal)|^Durability\.(Concurrent|StoppedGroup|ReadDurable|ClosingOne|Retention|SeekTime|RecordsReach|NotDurable)|Uring'
      ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done
echo "=== all stages passed: $STAGES"
