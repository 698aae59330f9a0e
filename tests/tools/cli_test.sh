#!/usr/bin/env bash
# The shmlog command end to end, as a user runs it: bad input, the
# multi-process exactly-once check, and consumers killed with SIGKILL.
set -u
SHMLOG=${1:?usage: cli_test.sh PATH/TO/shmlog}
WORK=$(mktemp -d /tmp/shmlog-cli-XXXXXX)
FAILS=0
cleanup() {
  for d in "$WORK"/log*; do [ -d "$d" ] && "$SHMLOG" delete "$d" >/dev/null 2>&1; done
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
pass() { echo "ok:   $*"; }

# expect_error DESCRIPTION PATTERN -- COMMAND...: non-zero exit, one stderr line matching PATTERN
expect_error() {
  local what=$1 pattern=$2; shift 3
  local err rc
  err=$("$@" 2>&1 >/dev/null </dev/null); rc=$?
  if [ $rc -eq 0 ]; then fail "$what: exit 0"; return; fi
  if [ "$(printf '%s\n' "$err" | wc -l)" -ne 1 ]; then fail "$what: stderr is not one line: $err"; return; fi
  if ! printf '%s' "$err" | grep -qE -- "$pattern"; then fail "$what: '$err' does not match '$pattern'"; return; fi
  pass "$what ($err)"
}

# expect_stops_on_sigint NAME -- COMMAND...: started in the background and
# sent SIGINT after 2 s, COMMAND ends within 30 s with exit 130, saying
# "interrupted" on stderr.
expect_stops_on_sigint() {
  local what=$1; shift 2
  "$@" > /dev/null 2> "$WORK/$what-int.err" &
  local pid=$! rc
  sleep 2
  kill -INT "$pid"
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid"; wait "$pid" 2>/dev/null
    fail "shmlog $what goes on after SIGINT"
    return
  fi
  wait "$pid"; rc=$?
  [ "$rc" -eq 130 ] && grep -q "interrupted" "$WORK/$what-int.err" \
    && pass "shmlog $what stops after SIGINT (exit 130)" \
    || fail "shmlog $what after SIGINT: exit $rc, $(tail -c 200 "$WORK/$what-int.err")"
}

# expect_json WHAT CHECK -- COMMAND...: COMMAND exits 0 and each line of its
# stdout parses with Python's json module (as strict UTF-8); CHECK, a Python
# expression over `rows` (the parsed lines), holds. shown(raw) is how a name
# of raw bytes reads in JSON: bytes that are not UTF-8 as U+FFFD.
expect_json() {
  local what=$1 check=$2; shift 3
  local err
  if err=$(set -o pipefail; "$@" 2>/dev/null </dev/null | python3 -c '
import json, os, sys
shown = lambda raw: os.fsencode(raw).decode("utf-8", "replace")
rows = [json.loads(line) for line in sys.stdin.buffer.read().splitlines()]
assert rows, "no output"
assert eval(sys.argv[1]), "does not hold: " + sys.argv[1]
' "$check" 2>&1); then
    pass "$what --json parses"
  else
    fail "$what --json: $(printf '%s' "$err" | tail -1)"
  fi
}

# --- bad input ------------------------------------------------------------
mkdir "$WORK/plain"
expect_error "non-log directory" "is not a shmlog log" -- "$SHMLOG" info "$WORK/plain"
expect_error "missing log" "no log at|No such file" -- "$SHMLOG" consume "$WORK/nothing" --idle-timeout-ms 10
expect_error "unknown flag" "--bogus" -- "$SHMLOG" create "$WORK/x" --bogus
expect_error "bad size" "not a size" -- "$SHMLOG" create "$WORK/x" --segment-size 12Q
expect_error "bad policy" "unknown policy" -- "$SHMLOG" create "$WORK/x" --policy sometimes
expect_error "bad segment size" "power of two" -- "$SHMLOG" create "$WORK/x" --segment-size 100000
expect_error "missing NUMA node" "NUMA node 999 does not exist" -- "$SHMLOG" create "$WORK/x" --numa-node 999
expect_error "missing core" "CPU 4096 does not exist" -- "$SHMLOG" create "$WORK/x" --near-core 4096
expect_error "two placements" "excludes" -- "$SHMLOG" create "$WORK/x" --numa-node 0 --near-core 0
expect_error "relative memory dir" "absolute path" -- "$SHMLOG" create "$WORK/x" --memory-dir shm
[ -e "$WORK/x" ] && fail "a refused create left $WORK/x behind" || pass "refused creates leave nothing"
for sub in create produce consume info groups delete gc demo; do
  "$SHMLOG" $sub --help >/dev/null 2>&1 || fail "$sub --help"
done
pass "--help for every subcommand"

"$SHMLOG" create "$WORK/log-small" --segment-size 64K --ring-segments 2 --max-record-size 1K --near-core 0 >/dev/null || fail "create small"
# Placement asked for, and where the kernel says the pages are.
"$SHMLOG" info "$WORK/log-small" | grep -q "^placement .*bound to NUMA node 0" && pass "info: placement" || fail "info: placement"
"$SHMLOG" info "$WORK/log-small" | grep -Eq "^pages are on   (node 0: [0-9]+ pages \(100.0%\)|unknown: )" && pass "info: where pages are" || fail "info: where pages are"
expect_error "oversize record" "too large.*max 1024" -- bash -c "head -c 2000 /dev/zero | tr '\\0' x | '$SHMLOG' produce '$WORK/log-small'"
expect_error "partition out of range" "out of range" -- "$SHMLOG" produce "$WORK/log-small" --partition 3
expect_error "bad --from" "not earliest, latest" -- "$SHMLOG" consume "$WORK/log-small" --from soon
expect_error "--from past 2^64" "not earliest, latest" -- "$SHMLOG" consume "$WORK/log-small" --from 99999999999999999999
# The bridge's bad input, without a Kafka (where the command has `bridge`).
if "$SHMLOG" bridge --help >/dev/null 2>&1; then
  KAFKA=(--bootstrap 127.0.0.1:1 --timeout-ms 1000)
  expect_error "bridge: bad topic name" "topic name 'a b' is not legal" -- "$SHMLOG" bridge to-kafka "$WORK/log-small" "${KAFKA[@]}" --topic 'a b'
  expect_error "bridge: --batch 0" "--batch must be at least 1" -- "$SHMLOG" bridge to-kafka "$WORK/log-small" "${KAFKA[@]}" --topic t --batch 0
  expect_error "bridge: bad --property" "expected key=value" -- "$SHMLOG" bridge to-kafka "$WORK/log-small" "${KAFKA[@]}" --topic t --property x
  expect_error "bridge: missing log" "no log at|No such file" -- "$SHMLOG" bridge to-kafka "$WORK/nothing" "${KAFKA[@]}" --topic t
  expect_error "bridge: no brokers" "Kafka at 127.0.0.1:1: no answer" -- "$SHMLOG" bridge to-kafka "$WORK/log-small" "${KAFKA[@]}" --topic t
  expect_error "from-kafka: no --group" "--group is required" -- "$SHMLOG" bridge from-kafka "${KAFKA[@]}" --topic t "$WORK/log-small"
  expect_error "from-kafka: bad topic name" "topic name 'a b' is not legal" -- "$SHMLOG" bridge from-kafka "${KAFKA[@]}" --topic 'a b' --group g "$WORK/log-small"
  expect_error "from-kafka: --commit-interval-ms 0" "--commit-interval-ms must be at least 1" -- "$SHMLOG" bridge from-kafka "${KAFKA[@]}" --topic t --group g --commit-interval-ms 0 "$WORK/log-small"
  expect_error "from-kafka: missing log" "no log at|No such file" -- "$SHMLOG" bridge from-kafka "${KAFKA[@]}" --topic t --group g "$WORK/nothing"
  expect_error "from-kafka: no brokers" "Kafka at 127.0.0.1:1: no answer" -- "$SHMLOG" bridge from-kafka "${KAFKA[@]}" --topic t --group g "$WORK/log-small"
fi
expect_error "offset not a boundary" "not a record boundary" -- bash -c "echo hello | '$SHMLOG' produce '$WORK/log-small' && '$SHMLOG' consume '$WORK/log-small' --from 32 --idle-timeout-ms 10"
# A group that never consumes fills the ring; the producer gives up with a clear error.
"$SHMLOG" consume "$WORK/log-small" --group stuck --max 1 >/dev/null || fail "join stuck group"
expect_error "full ring under backpressure" "ring full.*no consumer group made room" -- \
  bash -c "yes 0123456789012345678901234567890123456789 | head -c 400000 | '$SHMLOG' produce '$WORK/log-small' --timeout-ms 200"
shm=$("$SHMLOG" info "$WORK/log-small" --json | sed -E 's/.*"memory_path":"([^"]+)".*/\1/')
truncate -s 4096 "$shm"
expect_error "truncated shared memory" "truncated or foreign" -- "$SHMLOG" info "$WORK/log-small"
printf 'garbage' | dd of="$shm" conv=notrunc status=none
truncate -s 0 "$shm"; truncate -s $((4096 * 64)) "$shm"
expect_error "foreign shared memory" "truncated or foreign|not a shmlog log|bad magic|never initialised" -- "$SHMLOG" info "$WORK/log-small"

# --- four producers, two members of one group ---------------------------------
N=${SHMLOG_CLI_LINES:-100000}
LOG="$WORK/log-main"
"$SHMLOG" create "$LOG" --partitions 2 >/dev/null || fail "create main"
"$SHMLOG" consume "$LOG" --group g --max 0 --idle-timeout-ms 0 >/dev/null  # the group exists before producing
for c in 1 2; do
  "$SHMLOG" consume "$LOG" --group g --print-key --key-separator , --idle-timeout-ms 3000 > "$WORK/out$c" &
  eval "C$c=$!"
done
for p in 1 2 3 4; do
  seq -f "p$p-%.0f" 1 "$N" | "$SHMLOG" produce "$LOG" --key-separator - --batch 64 &
  eval "P$p=$!"
done
for p in 1 2 3 4; do eval "wait \$P$p" || fail "producer $p exit"; done
wait "$C1" || fail "consumer 1 exit"
wait "$C2" || fail "consumer 2 exit"
total=$(cat "$WORK/out1" "$WORK/out2" | wc -l)
unique=$(cat "$WORK/out1" "$WORK/out2" | sort -u | wc -l)
[ "$total" -eq $((4 * N)) ] && [ "$unique" -eq $((4 * N)) ] && pass "4 producers x $N lines, 2 members: every line exactly once" \
  || fail "expected $((4 * N)) unique lines, got $total lines, $unique unique"
# Each producer's lines reach each member in the producer's order (a key
# hashes to one partition; a partition may move between members once).
disorder=0
for c in 1 2; do
  d=$(awk -F, '{ if ($2 + 0 <= last[$1]) bad++; last[$1] = $2 + 0 } END { print bad + 0 }' "$WORK/out$c")
  disorder=$((disorder + d))
done
[ "$disorder" -eq 0 ] && pass "each producer's lines in its own order" || fail "$disorder lines out of producer order"
"$SHMLOG" groups "$LOG" | grep -q "^g " || fail "groups lists g"
# An at-least-once consumer stopped by --max commits exactly what it printed.
"$SHMLOG" create "$WORK/log-commit" >/dev/null
seq 1 100 | "$SHMLOG" produce "$WORK/log-commit"
"$SHMLOG" consume "$WORK/log-commit" --group c --commit-every 4 --max 10 >/dev/null
lag=$("$SHMLOG" groups "$WORK/log-commit" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["partitions"][0]["lag_records"])')
[ "$lag" -eq 90 ] && pass "at-least-once with --max commits exactly what was printed" || fail "lag after 10 of 100 records is $lag, expected 90"
expect_json "groups (zero lag)" 'all(p["lag_records"] == 0 for g in rows[0] for p in g["partitions"])' -- \
  "$SHMLOG" groups "$LOG" --json
# The 100 records' producer has exited: every view still counts them.
python3 - "$WORK/log-commit" "$SHMLOG" <<'PYCHECK' && pass "info and stat count the records of producers that exited" || fail "append counts after the producer exited"
import json, subprocess, sys
log, shmlog = sys.argv[1], sys.argv[2]
info = json.loads(subprocess.check_output([shmlog, "info", log, "--json"]))
stat = json.loads(subprocess.check_output([shmlog, "stat", log, "--json", "--interval", "10", "--count", "1"]))
counts = [(p["appends"], p["bytes"]) for p in info["partition_offsets"]]
assert sum(a for a, _ in counts) == 100 and sum(b for _, b in counts) == 192, counts  # "1".."100": 192 bytes
assert sum(p["appends"] for p in stat["partitions"]) == 100, stat["partitions"]
PYCHECK
group_lag() { "$SHMLOG" groups "$WORK/log-commit" --json | python3 -c 'import json,sys; print(sum(p["lag_records"] for g in json.load(sys.stdin) if g["group"]=="c" for p in g["partitions"]))'; }
resets=""
for to in earliest latest -1d 2099-01-01T00:00:00Z 2000-01-01T00:00:00.5Z; do
  "$SHMLOG" groups "$WORK/log-commit" --reset c --to "$to" | grep -q "^reset group 'c' of .* to $to: 0@" || fail "groups --reset c --to $to"
  resets="$resets $(group_lag)"
done
[ "$resets" = " 100 0 100 0 100" ] && pass "groups --reset moves a group to earliest, latest, a time ago, a UTC time" \
  || fail "lag after each reset: $resets, expected 100 0 100 0 100"
expect_error "groups --reset to nowhere" "is not earliest, latest, an offset" -- "$SHMLOG" groups "$WORK/log-commit" --reset c --to yesterday
expect_error "groups --reset of no group" "no group 'zz'" -- "$SHMLOG" groups "$WORK/log-commit" --reset zz --to earliest
expect_error "groups --reset without --to" "go together" -- "$SHMLOG" groups "$WORK/log-commit" --reset c
"$SHMLOG" groups "$WORK/log-commit" --delete c | grep -q "^deleted group 'c'" && ! "$SHMLOG" groups "$WORK/log-commit" | grep -q "^c " \
  && pass "groups --delete removes a group" || fail "groups --delete"
expect_error "groups --delete of no group" "no group 'c'" -- "$SHMLOG" groups "$WORK/log-commit" --delete c
expect_json "info" 'rows[0]["partitions"] == 2' -- "$SHMLOG" info "$LOG" --json
expect_json "stat (one object per interval)" 'len(rows) == 2 and rows[0]["groups"][0]["group"] == "g"' -- \
  "$SHMLOG" stat "$LOG" --json --interval 50 --count 2
# Names that JSON must escape, or that are not UTF-8, in every place a name shows.
ODD_NAME=$(printf 'q"b\\s\tx\377y')  # a quote, a backslash, a tab, a byte that is not UTF-8
export ODD_NAME
"$SHMLOG" create "$WORK/log-json" >/dev/null || fail "create log-json"
"$SHMLOG" consume "$WORK/log-json" --group "$ODD_NAME" --max 0 --idle-timeout-ms 0 >/dev/null
echo 1 | "$SHMLOG" produce "$WORK/log-json" --producer-id "$ODD_NAME" || fail "produce as $ODD_NAME"
odd='shown(os.environ["ODD_NAME"])'
expect_json "info (odd names)" "rows[0]['groups'] == [$odd] and rows[0]['producers'][0]['name'] == $odd" -- \
  "$SHMLOG" info "$WORK/log-json" --json
expect_json "groups (odd names)" "rows[0][0]['group'] == $odd" -- "$SHMLOG" groups "$WORK/log-json" --json
expect_json "stat (odd names)" "rows[0]['groups'][0]['group'] == $odd and rows[0]['producers'][0]['name'] == $odd" -- \
  "$SHMLOG" stat "$WORK/log-json" --json --interval 10 --count 1

# --- kill -9 a consumer and restart it ------------------------------------------
kill_restart() {  # MODE CHECK
  local mode=$1 log="$WORK/log-$1" out="$WORK/kill-$1"
  "$SHMLOG" create "$log" >/dev/null || fail "create $log"
  "$SHMLOG" consume "$log" --group k --max 0 --idle-timeout-ms 0 >/dev/null
  seq 1 200000 | "$SHMLOG" produce "$log" --batch 256 || fail "produce for $mode"
  : > "$out"
  for round in 1 2 3; do
    # A slow reader downstream keeps the consumer mid-stream when it is killed;
    # what reached the pipe counts as processed.
    "$SHMLOG" consume "$log" --group k --mode "$mode" --commit-every 16 --idle-timeout-ms 2000 \
      > >(while IFS= read -r line; do printf '%s\n' "$line"; done >> "$out") &
    local pid=$!
    local target=$((round * 20000 + RANDOM % 5000))
    for _ in $(seq 1 3000); do [ "$(wc -l < "$out")" -ge "$target" ] && break; sleep 0.01; done
    kill -9 "$pid"; wait "$pid" 2>/dev/null
    sleep 0.5  # let the reader drain the pipe
  done
  "$SHMLOG" consume "$log" --group k --mode "$mode" --idle-timeout-ms 500 >> "$out"
  local total unique
  total=$(wc -l < "$out"); unique=$(sort -u "$out" | wc -l)
  echo "      $mode: $total lines, $unique unique of 200000"
  if [ "$mode" = at-least-once ]; then
    [ "$unique" -eq 200000 ] && pass "at-least-once consumer killed 3 times loses nothing" || fail "at-least-once lost $((200000 - unique))"
  else
    [ "$total" -eq "$unique" ] && pass "at-most-once consumer killed 3 times duplicates nothing" || fail "at-most-once duplicated $((total - unique))"
  fi
}
kill_restart at-least-once
kill_restart at-most-once

# --- an idempotent producer killed at random, re-run with the whole input ------
# (the long run: SHMLOG_EO_LINES=100000 SHMLOG_EO_KILLS=200)
EO_LINES=${SHMLOG_EO_LINES:-20000}
EO_KILLS=${SHMLOG_EO_KILLS:-15}
LOG="$WORK/log-idem"
"$SHMLOG" create "$LOG" --segment-size 1M --ring-segments 32 >/dev/null || fail "create $LOG"
seq 0 $((EO_LINES - 1)) > "$WORK/eo-input"
split -l $((EO_LINES / 50 + 1)) "$WORK/eo-input" "$WORK/eo-chunk."
trickle() { for c in "$WORK"/eo-chunk.*; do cat "$c"; sleep 0.004; done; }  # ~0.2 s a run
kills=0
for _ in $(seq 1 "$EO_KILLS"); do
  trickle | "$SHMLOG" produce "$LOG" --producer-id feeder --batch 16 2>/dev/null &
  pid=$!
  sleep "0.$(printf '%03d' $((RANDOM % 250)))"
  kill -9 "$(pgrep -f "produce $LOG" | head -1)" 2>/dev/null && kills=$((kills + 1))
  wait "$pid" 2>/dev/null
done
trickle | "$SHMLOG" produce "$LOG" --producer-id feeder --batch 16 2>/dev/null || fail "final idempotent run"
"$SHMLOG" consume "$LOG" --idle-timeout-ms 300 > "$WORK/eo-output"
cmp -s "$WORK/eo-input" "$WORK/eo-output" \
  && pass "idempotent producer killed $kills times and re-run: $EO_LINES lines, each once, in order" \
  || fail "idempotent producer: $(wc -l < "$WORK/eo-output") lines in the log, $(sort -u "$WORK/eo-output" | wc -l) unique, of $EO_LINES"
"$SHMLOG" info "$LOG" | grep -Eq "feeder +[0-9]+ +no .* $((EO_LINES - 1))  -$" && pass "info shows the producer id's last sequence" || fail "info: last sequence"

# --- the exactly-once file sink killed at random points ------------------------
LOG="$WORK/log-sink"
"$SHMLOG" create "$LOG" --partitions 2 --segment-size 1M --ring-segments 32 >/dev/null || fail "create $LOG"
"$SHMLOG" consume "$LOG" --group sink --mode exactly-once --out "$WORK/sink-out" --idle-timeout-ms 0 >/dev/null
trickle | "$SHMLOG" produce "$LOG" --batch 16 &   # EO_LINES lines over ~0.2 s, into partition 0
feeder=$!
kills=0
for _ in $(seq 1 "$EO_KILLS"); do
  "$SHMLOG" consume "$LOG" --group sink --mode exactly-once --out "$WORK/sink-out" 2>>"$WORK/sink-err" &
  pid=$!
  sleep "0.0$(printf '%02d' $((RANDOM % 30)))"
  kill -9 "$pid" 2>/dev/null && kills=$((kills + 1))
  wait "$pid" 2>/dev/null
done
wait "$feeder"
"$SHMLOG" consume "$LOG" --group sink --mode exactly-once --out "$WORK/sink-out" --idle-timeout-ms 300 2>/dev/null \
  || fail "final exactly-once consume"
cmp -s "$WORK/eo-input" "$WORK/sink-out" \
  && pass "exactly-once file sink killed $kills times ($(grep -c "bytes off" "$WORK/sink-err") between output and checkpoint): $EO_LINES records, each once, in order" \
  || fail "exactly-once file sink: $(wc -l < "$WORK/sink-out") lines, $(sort -u "$WORK/sink-out" | wc -l) unique, of $EO_LINES"
expect_error "exactly-once without --out" "needs --out FILE" -- "$SHMLOG" consume "$LOG" --group sink --mode exactly-once
expect_error "exactly-once into a foreign file" "no .*offsets: it was not written by an exactly-once consumer" -- \
  "$SHMLOG" consume "$LOG" --group other --mode exactly-once --out "$WORK/eo-input"

# --- a transactional producer killed at random, re-run with the whole input ---
LOG="$WORK/log-txn"
"$SHMLOG" create "$LOG" --segment-size 1M --ring-segments 32 >/dev/null || fail "create $LOG"
kills=0
for _ in $(seq 1 "$EO_KILLS"); do
  trickle | "$SHMLOG" produce "$LOG" --transactional-id loader --transaction-size 100 2>/dev/null &
  pid=$!
  sleep "0.$(printf '%03d' $((RANDOM % 250)))"
  kill -9 "$(pgrep -f "produce $LOG" | head -1)" 2>/dev/null && kills=$((kills + 1))
  wait "$pid" 2>/dev/null
done
trickle | "$SHMLOG" produce "$LOG" --transactional-id loader --transaction-size 100 2>/dev/null || fail "final transactional run"
"$SHMLOG" consume "$LOG" --isolation read_committed --idle-timeout-ms 300 > "$WORK/txn-output"
cmp -s "$WORK/eo-input" "$WORK/txn-output" \
  && pass "transactional producer killed $kills times and re-run: $EO_LINES lines, each once, in order (read_committed)" \
  || fail "transactional producer: $(wc -l < "$WORK/txn-output") lines, $(sort -u "$WORK/txn-output" | wc -l) unique, of $EO_LINES"

# --- a consume-process-produce copy killed at random points ------------------
IN="$WORK/log-txn" OUT_LOG="$WORK/log-copy"
"$SHMLOG" create "$OUT_LOG" --segment-size 1M --ring-segments 32 >/dev/null || fail "create $OUT_LOG"
kills=0
for _ in $(seq 1 "$EO_KILLS"); do
  "$SHMLOG" copy "$IN" "$OUT_LOG" --group pipe --transactional-id copier --transaction-size 50 --prefix '>' 2>/dev/null &
  pid=$!
  sleep "0.0$(printf '%02d' $((RANDOM % 40)))"
  kill -9 "$pid" 2>/dev/null && kills=$((kills + 1))
  wait "$pid" 2>/dev/null
done
"$SHMLOG" copy "$IN" "$OUT_LOG" --group pipe --transactional-id copier --transaction-size 50 --prefix '>' \
  --idle-timeout-ms 300 2>/dev/null || fail "final copy"
"$SHMLOG" consume "$OUT_LOG" --isolation read_committed --idle-timeout-ms 300 > "$WORK/copy-output"
sed 's/^/>/' "$WORK/eo-input" | cmp -s - "$WORK/copy-output" \
  && pass "copy between logs killed $kills times: $EO_LINES records, each once, in order (read_committed)" \
  || fail "copy: $(wc -l < "$WORK/copy-output") lines, $(sort -u "$WORK/copy-output" | wc -l) unique, of $EO_LINES"
"$SHMLOG" info "$OUT_LOG" | grep -q "copier" && pass "info lists the transactional producer" || fail "info: copier"

# --- uniqueness tokens: three producers race with the same tokens --------------
LOG="$WORK/log-tokens"
"$SHMLOG" create "$LOG" --segment-size 1M --ring-segments 16 --token-window 100000 >/dev/null || fail "create $LOG"
seq 1 5000 | sed 's/.*/order-&|&/' > "$WORK/token-input"
for _ in 1 2 3; do "$SHMLOG" produce "$LOG" --token-separator '|' < "$WORK/token-input" 2>/dev/null & done
wait
"$SHMLOG" consume "$LOG" --idle-timeout-ms 300 | sort -n > "$WORK/token-output"
seq 1 5000 | cmp -s - "$WORK/token-output" \
  && pass "tokens: 3 producers racing with 5000 tokens keep each once" \
  || fail "tokens: $(wc -l < "$WORK/token-output") records, $(sort -u "$WORK/token-output" | wc -l) unique, of 5000"
expect_error "token separator without a token table" "keeps no tokens" -- \
  bash -c "echo 'a|b' | '$SHMLOG' produce '$WORK/log-copy' --token-separator '|'"

# --- a producer killed mid-stream does not stall consumers -------------------
LOG="$WORK/log-stall"
"$SHMLOG" create "$LOG" --claim-timeout-ms 300 >/dev/null
( yes line | "$SHMLOG" produce "$LOG" --timeout-ms 100000 ) &
PIPE_PID=$!
sleep 0.3
pkill -9 -f "produce $LOG" ; wait $PIPE_PID 2>/dev/null
echo "after" | "$SHMLOG" produce "$LOG" || fail "produce after kill"
last=$(timeout 20 "$SHMLOG" consume "$LOG" --idle-timeout-ms 2000 | tail -1)
[ "$last" = after ] && pass "producer killed mid-stream: consumer reaches the next record" || fail "consumer stalled (last line '$last')"

# --- durable logs: host crash, torn tail, verify/repair, keeper kill -9 -------
DLOG="$WORK/log-durable"
expect_error "fsync interval without fsync" "needs --durability fsync" -- "$SHMLOG" create "$WORK/x" --fsync-interval 1M
expect_error "fsync interval overflowing" "too long a duration" -- "$SHMLOG" create "$WORK/x" --durability fsync --fsync-interval 99999999999999999999s
expect_error "retention without durability" "need --durability" -- "$SHMLOG" create "$WORK/x" --retention-bytes 1M
expect_error "bad durability" "none, flush or fsync" -- "$SHMLOG" create "$WORK/x" --durability sometimes
"$SHMLOG" create "$DLOG" --durability fsync --fsync-interval 2ms --segment-size 64K --ring-segments 2 >/dev/null \
  || fail "create durable"
expect_error "acks durable on a memory log" "is not durable" -- sh -c "echo x | '$SHMLOG' produce '$WORK/log-main' --acks durable"
seq 1 20000 | "$SHMLOG" produce "$DLOG" --acks durable --batch 500 || fail "produce --acks durable"
"$SHMLOG" verify "$DLOG" >/dev/null && pass "verify: a clean durable log" || fail "verify of a clean log"
# A host crash: every process gone, the shared memory gone, the last
# segment file's tail torn (its last 100 bytes of records garbage).
DID=$("$SHMLOG" info "$DLOG" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["memory_path"])')
LAST=$(ls "$DLOG"/partition-0/*.seg | while read -r f; do
  "$SHMLOG" dump "$f" 2>/dev/null | grep -q "^# .* [1-9][0-9]* records" && echo "$f"; done | tail -1)
END=$("$SHMLOG" dump "$LAST" | sed -n 's/.*clean up to \([0-9]*\).*/\1/p')
BASE=$(basename "$LAST" .seg); BASE=$((10#$BASE))
printf 'garbage-garbage-garbage-garbage!%.0s' 1 2 3 | dd of="$LAST" bs=1 seek=$((4096 + END - BASE - 60)) conv=notrunc 2>/dev/null
rm -f "$DID"
"$SHMLOG" verify "$DLOG" >"$WORK/verify.txt"; rc=$?
[ $rc -ne 0 ] && grep -q "torn tail at offset" "$WORK/verify.txt" && pass "verify names the torn tail" \
  || fail "verify missed the torn tail (rc $rc): $(cat "$WORK/verify.txt")"
"$SHMLOG" repair "$DLOG" | grep -q "^cut [0-9]* bytes at offset" && pass "repair says what it cut" || fail "repair"
"$SHMLOG" verify "$DLOG" >/dev/null && pass "verify after repair" || fail "verify after repair"
"$SHMLOG" consume "$DLOG" --idle-timeout-ms 300 >"$WORK/durable-out.txt" || fail "consume after host crash"
N=$(wc -l <"$WORK/durable-out.txt")
if [ "$N" -ge 19990 ] && [ "$N" -lt 20000 ] && cmp -s "$WORK/durable-out.txt" <(seq 1 "$N"); then
  pass "after the crash: lines 1..$N back from disk in order, the torn record(s) cut"
else
  fail "after the crash: $N lines, or not 1..N in order"
fi
# The keeper as its own process, killed with -9 under load: a producer's
# standby keeper takes over and durable appends go on.
"$SHMLOG" keeper "$DLOG" 2>/dev/null & KEEPER=$!
for _ in $(seq 1 100); do
  "$SHMLOG" info "$DLOG" --json | grep -q "\"keeper_pid\": *$KEEPER" && break; sleep 0.05; done
"$SHMLOG" info "$DLOG" --json | grep -q "\"keeper_pid\": *$KEEPER" && pass "shmlog keeper holds the lease" || fail "keeper lease"
slow_lines() { for c in $(seq 0 39); do seq $((20001 + c * 500)) $((20500 + c * 500)); sleep 0.03; done; }  # >= 1.2 s
(slow_lines | "$SHMLOG" produce "$DLOG" --acks durable --batch 100 --timeout-ms 20000) & PRODUCER=$!
sleep 0.2; kill -9 "$KEEPER"; wait "$KEEPER" 2>/dev/null
wait "$PRODUCER" && pass "durable appends go on after the keeper is killed" || fail "produce after keeper kill"
expect_json "info of a durable log (the lease was taken over)" \
  'rows[0]["keeper_takeovers"] >= 1 and "durable_offset" in rows[0]["partition_offsets"][0]' -- \
  "$SHMLOG" info "$DLOG" --json
expect_error "dump of a file that is no segment" "not a shmlog segment file|ends at|truncated" -- "$SHMLOG" dump "$DLOG/shmlog.meta"
# A segment file gone: consume reads on, and says on stderr which offsets
# it skipped and which file it missed.
rm "$DLOG/partition-0/00000000000000065536.seg"
"$SHMLOG" consume "$DLOG" --idle-timeout-ms 300 >"$WORK/damaged-out.txt" 2>"$WORK/damaged-err.txt" || fail "consume over a missing file"
grep -q "^shmlog: partition 0: offsets 65536..131072 skipped: opening $DLOG/partition-0/00000000000000065536.seg: No such file" \
  "$WORK/damaged-err.txt" && pass "consume names the missing file and the offsets lost" \
  || fail "consume over a missing file said: $(cat "$WORK/damaged-err.txt")"
[ "$(wc -l <"$WORK/damaged-out.txt")" -gt "$(wc -l <"$WORK/durable-out.txt")" ] || fail "consume stopped at the missing file"

# --- the latency profiler runs (briefly) and its outputs parse -------------------
# Interrupted, lat stops after the step in progress (it went on through
# every baseline).
expect_stops_on_sigint lat -- "$SHMLOG" lat --duration 1 --baseline-seconds 3
expect_json "lat" 'rows[0]["mode"] == "ping-pong" and rows[0]["rows"][0]["count"] == 2000' -- \
  "$SHMLOG" lat --count 2000 --no-baselines --json
# Rounds alternate shmlog and the floor: every round has its ratios, and
# shmlog's row holds the messages of all of them.
expect_json "lat --rounds" 'len(rows[0]["floor_rounds"]["rounds"]) == 2 and rows[0]["floor_rounds"]["median"]["p50"] > 0 and rows[0]["rows"][0]["count"] == 2000 and rows[0]["rows"][2]["name"] == "cache line (floor)"' -- \
  "$SHMLOG" lat --count 2000 --rounds 2 --baseline-seconds 0.2 --json
# (Under oversubscription a cell can move nothing in its window: rates
# are checked for shape, and that something moved.)
expect_json "bench" 'all(c["records_per_s"] >= 0 for c in rows[0]["cells"]) and any(c["records_per_s"] > 0 for c in rows[0]["cells"]) and rows[0]["consumer_backoff_ns"] == 0' -- \
  "$SHMLOG" bench --seconds 0.2 --sizes 32 --producers 1 --consumers 1 --json
expect_json "bench --consumer-backoff" 'rows[0]["consumer_backoff_ns"] == 20000 and any(c["records_per_s"] > 0 for c in rows[0]["cells"])' -- \
  "$SHMLOG" bench --seconds 0.2 --sizes 32 --producers 1 --consumers 1 --consumer-backoff 20000 --json
expect_json "topo" 'rows[0]["cpus"] == len(rows[0]["cpu_list"])' -- "$SHMLOG" topo --json
expect_json "topo --synthetic" 'rows[0]["packages"] == 2 and rows[0]["cpus"] == 16' -- \
  "$SHMLOG" topo --json --synthetic "pack:2 core:4 pu:2"

expect_error "topo: bad synthetic topology" "bad synthetic topology" -- "$SHMLOG" topo --synthetic "pack:two"
# Interrupted, bench stops after the run in progress (it used to go on to
# the end of its matrix: 50 rounds here).
expect_stops_on_sigint bench -- "$SHMLOG" bench --seconds 0.5 --rounds 50 --sizes 32
expect_error "bench: bad size" "is not a size" -- "$SHMLOG" bench --sizes 12Q
expect_error "bench: bad rounds" "--rounds must be 1..100" -- "$SHMLOG" bench --rounds 0
expect_error "bench: back-off out of range" "--consumer-backoff" -- "$SHMLOG" bench --consumer-backoff 2000000
expect_error "lat: bad mode" "must be ping-pong or one-way" -- "$SHMLOG" lat --mode sideways
expect_error "lat: bad rounds" "--rounds" -- "$SHMLOG" lat --rounds 0
expect_error "lat: core that does not exist" "core 999 does not exist" -- "$SHMLOG" lat --consumer-core 999 --count 10

# --- the Prometheus exporter answers a real HTTP request, and values move -----
EXLOG="$WORK/log-exported"
"$SHMLOG" create "$EXLOG" >/dev/null
"$SHMLOG" consume "$EXLOG" --group watched --max 0 --idle-timeout-ms 0 >/dev/null
PORT=$((20000 + RANDOM % 20000))
"$SHMLOG" exporter "$EXLOG" --listen "127.0.0.1:$PORT" 2>/dev/null &
EXPORTER=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/metrics" >/dev/null && break; sleep 0.1; done
( seq 1 1000; sleep 3 ) | "$SHMLOG" produce "$EXLOG" &
PRODUCER=$!
sleep 1
curl -sf "http://127.0.0.1:$PORT/metrics" > "$WORK/metrics1" || fail "exporter: no answer on port $PORT"
seq 1 500 | "$SHMLOG" produce "$EXLOG"
curl -sf "http://127.0.0.1:$PORT/metrics" > "$WORK/metrics2"
wait "$PRODUCER"  # both producers have exited now
curl -sf "http://127.0.0.1:$PORT/metrics" > "$WORK/metrics-after-exit"
python3 - "$WORK/metrics1" "$WORK/metrics2" "$WORK/metrics-after-exit" <<'PYCHECK' && pass "exporter: valid Prometheus text that changes as records flow; partition counts survive their producers" || fail "exporter output"
import re, sys
sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eE]+$')
def read(path):
    values = {}
    for line in open(path):
        line = line.rstrip("\n")
        if not line or line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        assert sample.match(line), line
        name, value = line.rsplit(" ", 1)
        values[name] = float(value)
    return values
a, b = read(sys.argv[1]), read(sys.argv[2])
appended = [v for k, v in a.items() if k.startswith("shmlog_records_appended_total{")]
assert appended == [1000.0], appended
key = [k for k in a if k.startswith("shmlog_partition_end_offset{")][0]
assert b[key] > a[key], (a[key], b[key])
lag = [k for k in b if k.startswith("shmlog_group_lag_records{")][0]
assert b[lag] == 1500.0, b[lag]
# The partition's counter: 1000 while the first producer runs, 1500 once
# the second exited, still 1500 after the first exited too.
c = read(sys.argv[3])
counted = [k for k in a if k.startswith("shmlog_partition_records_appended_total{")]
assert len(counted) == 1, counted
assert (a[counted[0]], b[counted[0]], c[counted[0]]) == (1000.0, 1500.0, 1500.0), (a[counted[0]], b[counted[0]], c[counted[0]])
assert not [k for k in c if k.startswith("shmlog_records_appended_total{")], "no producer runs"
PYCHECK
kill "$EXPORTER" 2>/dev/null; wait "$EXPORTER" 2>/dev/null
expect_error "exporter: address it cannot bind" "cannot listen on" -- "$SHMLOG" exporter "$EXLOG" --listen 300.1.1.1:99999
# A durable log's: its disk and keeper metrics (what the alert rules in
# packaging/prometheus watch), with a live keeper (the exporter attaches
# read-only and keeps nothing itself).
DURLOG="$WORK/log-exported-durable"
"$SHMLOG" create "$DURLOG" --durability fsync >/dev/null
"$SHMLOG" keeper "$DURLOG" 2>/dev/null &
KEEPER=$!
PORT=$((20000 + RANDOM % 20000))
"$SHMLOG" exporter "$DURLOG" --listen "127.0.0.1:$PORT" 2>/dev/null &
EXPORTER=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/metrics" > "$WORK/metrics3" && grep -q "^shmlog_keeper_up.* 1$" "$WORK/metrics3" && break; sleep 0.1; done
for metric in shmlog_disk_full_total shmlog_io_errors_total shmlog_fsyncs_total shmlog_partition_durable_offset \
              shmlog_keeper_heartbeat_age_seconds; do
  grep -q "^$metric{" "$WORK/metrics3" || fail "exporter: no $metric for a durable log"
done
grep -q "^shmlog_keeper_up{.*} 1$" "$WORK/metrics3" && pass "exporter: a durable log's disk and keeper metrics" \
  || fail "exporter: keeper not up: $(grep keeper "$WORK/metrics3")"
kill "$EXPORTER" "$KEEPER" 2>/dev/null; wait "$EXPORTER" "$KEEPER" 2>/dev/null

"$SHMLOG" delete "$WORK/log-main" || fail "delete"
[ ! -e "$WORK/log-main" ] && pass "delete removes the directory" || fail "delete left the directory"

if [ $FAILS -ne 0 ]; then echo "$FAILS check(s) failed"; exit 1; fi
echo "all CLI checks passed"
