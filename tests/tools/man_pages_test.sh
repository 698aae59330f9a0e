#!/usr/bin/env bash
# The man pages (packaging/man/make_man_pages.sh, from the command's own
# --help): one per subcommand and shmlog(1), each rendering without a
# groff warning. Skipped (exit 77) without help2man or groff.
set -u
SHMLOG=$1
SCRIPT=$2
command -v help2man >/dev/null && command -v groff >/dev/null || { echo "help2man or groff not found: skipped"; exit 77; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAILS=0
"$SCRIPT" "$SHMLOG" "$WORK" 0.0.0-test || { echo "FAIL: the script failed"; exit 1; }
for name in $("$SHMLOG" --help | awk '/^Subcommands:/ { on = 1; next } on && NF { print $1 }'); do
  page="$WORK/shmlog-$name.1"
  if [ ! -s "$page" ]; then echo "FAIL: no page for $name"; FAILS=$((FAILS + 1)); continue; fi
  grep -q "^shmlog-$name \\\\- " "$page" || { echo "FAIL: $page: NAME is not shmlog-$name"; FAILS=$((FAILS + 1)); }
done
# Subcommands of subcommands (bridge to-kafka): shmlog-bridge-to-kafka(1).
if "$SHMLOG" bridge --help >/dev/null 2>&1; then
  for page in to-kafka from-kafka; do
    upper=$(echo "$page" | tr a-z A-Z)
    [ -s "$WORK/shmlog-bridge-$page.1" ] && grep -q "^\.TH SHMLOG-BRIDGE-$upper \"1\"" "$WORK/shmlog-bridge-$page.1" \
      || { echo "FAIL: no page shmlog-bridge-$page.1"; FAILS=$((FAILS + 1)); }
  done
fi
for page in "$WORK"/*.1; do
  warnings=$(groff -man -Tutf8 -ww "$page" 2>&1 >/dev/null)
  [ -z "$warnings" ] || { echo "FAIL: ${page##*/}: $warnings"; FAILS=$((FAILS + 1)); }
done
grep -q "shmlog-gc" "$WORK/shmlog.1" && echo "ok:   shmlog(1) lists the subcommands' pages" || { echo "FAIL: SEE ALSO"; FAILS=$((FAILS + 1)); }
echo "$(ls "$WORK" | wc -l) pages"
[ "$FAILS" -eq 0 ] && echo "all man page checks passed" || { echo "$FAILS man page check(s) failed"; exit 1; }
