#!/usr/bin/env bash
# The Prometheus alerting rules (packaging/prometheus): promtool checks
# them and runs their unit tests on synthetic series, and every metric
# they watch is one the exporter serves. Skipped (exit 77) without promtool.
set -u
RULES_DIR=$1
EXPORTER_SOURCE=$(realpath "$2")
command -v promtool >/dev/null || { echo "promtool not found: skipped"; exit 77; }
FAILS=0
cd "$RULES_DIR" || exit 1
promtool check rules shmlog-alerts.yml && echo "ok:   promtool check rules" || { echo "FAIL: check rules"; FAILS=$((FAILS + 1)); }
promtool test rules shmlog-alerts.test.yml && echo "ok:   promtool test rules" || { echo "FAIL: test rules"; FAILS=$((FAILS + 1)); }
for metric in $(grep -oE 'shmlog_[a-z_]+' shmlog-alerts.yml | sort -u); do
  grep -q "\"$metric\"" "$EXPORTER_SOURCE" && echo "ok:   the exporter serves $metric" \
    || { echo "FAIL: the rules watch $metric, which the exporter does not serve"; FAILS=$((FAILS + 1)); }
done
[ "$FAILS" -eq 0 ] && echo "all alert rule checks passed" || { echo "$FAILS alert rule check(s) failed"; exit 1; }
