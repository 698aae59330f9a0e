#!/usr/bin/env bash
# A C11 program exchanges records with a C++ process (the shmlog command)
# through two logs, in both directions.
set -u
SHMLOG=$1 C_PEER=$2
WORK=$(mktemp -d /tmp/shmlog-exchange-XXXXXX)
trap '"$SHMLOG" delete "$WORK/to-cpp" >/dev/null 2>&1; "$SHMLOG" delete "$WORK/to-c" >/dev/null 2>&1; rm -rf "$WORK"' EXIT
N=1000
"$SHMLOG" create "$WORK/to-cpp" >/dev/null && "$SHMLOG" create "$WORK/to-c" >/dev/null || exit 1
# C++ side: read what C appends, and append what C reads.
"$SHMLOG" consume "$WORK/to-cpp" --group cpp --max "$N" --idle-timeout-ms 10000 > "$WORK/cpp-got" &
CPP=$!
seq -f "cpp %.0f" 0 $((N - 1)) | "$SHMLOG" produce "$WORK/to-c" || exit 1
"$C_PEER" --peer "$WORK/to-cpp" "$WORK/to-c" "$N" > "$WORK/c-got" || { echo "C peer failed"; exit 1; }
wait "$CPP" || { echo "C++ consumer failed"; exit 1; }
seq -f "c %.0f" 0 $((N - 1)) | diff -q - "$WORK/cpp-got" >/dev/null || { echo "C++ did not read C's records in order"; exit 1; }
seq -f "cpp %.0f" 0 $((N - 1)) | diff -q - "$WORK/c-got" >/dev/null || { echo "C did not read C++'s records in order"; exit 1; }
echo "C <-> C++: $N records each way, in order"
