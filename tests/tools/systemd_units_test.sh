#!/usr/bin/env bash
# The systemd unit templates (packaging/systemd) pass `systemd-analyze
# verify` with ExecStart at the build's command, instantiated for a log
# path; skipped (exit 77) where systemd-analyze is missing.
set -u
SHMLOG=$1
UNITS=$2
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not found: skipped"; exit 77; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAILS=0
instance=$(systemd-escape --path /var/lib/shmlog/orders)
for template in "$UNITS"/*@.service.in; do
  name=$(basename "$template" .in)
  unit="$WORK/${name%@.service}@$instance.service"
  sed "s|@SHMLOG_BINDIR@|$(dirname "$SHMLOG")|" "$template" > "$unit"
  out=$(systemd-analyze verify "$unit" 2>&1); rc=$?
  if [ $rc -eq 0 ] && [ -z "$out" ]; then
    echo "ok:   $name verifies (as ${unit##*/})"
  else
    echo "FAIL: $name: rc $rc: $out"; FAILS=$((FAILS + 1))
  fi
  # The instance names the log: %f is the unescaped path.
  grep -q "^ExecStart=.* %f$" "$template" && echo "ok:   $name runs on its instance's log (%f)" \
    || { echo "FAIL: $name: ExecStart does not end in %f"; FAILS=$((FAILS + 1)); }
done
[ "$FAILS" -eq 0 ] && echo "all unit checks passed" || { echo "$FAILS unit check(s) failed"; exit 1; }
