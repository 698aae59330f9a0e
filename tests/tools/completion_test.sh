#!/usr/bin/env bash
# The bash completion (packaging/shmlog.bash-completion) against the
# command of this build: subcommands, options read from --help, option
# values, log directories, and exec's command after "--".
set -u
SHMLOG=$1
COMPLETION=$2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
pass() { echo "ok:   $*"; }
# shellcheck source=/dev/null
source "$COMPLETION"

# complete WORD... : COMPREPLY for the last word, one per line.
complete_words() {
  COMP_WORDS=("$SHMLOG" "$@")
  COMP_CWORD=$#
  _shmlog
  printf '%s\n' "${COMPREPLY[@]}"
}
# expect WHAT EXPECTED_LINES -- WORDS...
expect() {
  local what=$1 expected=$2; shift 3
  local got
  got=$(complete_words "$@" | sort | tr '\n' ' ')
  [ "$got" = "$expected" ] && pass "$what" || fail "$what: got '$got', expected '$expected'"
}

complete -p shmlog | grep -q "_shmlog" && pass "registered for shmlog" || fail "not registered"
expect "subcommands by prefix" "delete demo dump " -- d
[ "$(complete_words "" | grep -vc '^--')" -eq "$("$SHMLOG" --help | awk '/^Subcommands:/ { on = 1; next } on && NF' | wc -l)" ] \
  && pass "every subcommand of --help" || fail "subcommand count"
expect "options from the subcommand's --help" "--rounds " -- bench --ro
expect "option values" "backoff block " -- consume ./x --wait b
expect "lat's modes" "one-way " -- lat --mode o
expect "consume's modes" "exactly-once " -- consume ./x --mode e
mkdir -p "$WORK/logs/orders" "$WORK/logs/other"
expect "log directories" "$WORK/logs/orders $WORK/logs/other " -- info "$WORK/logs/o"
touch "$WORK/logs/orders/00000000000000000000.seg"
expect "dump takes a file" "$WORK/logs/orders/00000000000000000000.seg " -- dump "$WORK/logs/orders/0"
# The bridge's subcommands and their options, where this build has the bridge.
if "$SHMLOG" bridge --help >/dev/null 2>&1; then
  expect "bridge's subcommands" "to-kafka " -- bridge to
  expect "from-kafka's options" "--commit-interval-ms " -- bridge from-kafka --c
  expect "to-kafka's options" "--timeout-ms --topic " -- bridge to-kafka ./x --t
fi
complete_words exec --core 0 -- ech | grep -qx echo && pass "exec: a command after --" || fail "exec: no command after --"

[ "$FAILS" -eq 0 ] && echo "all completion checks passed" || { echo "$FAILS completion check(s) failed"; exit 1; }
