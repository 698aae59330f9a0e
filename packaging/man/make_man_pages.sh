#!/usr/bin/env bash
# Writes the man pages of the shmlog command from its own --help (Debian's
# help2man): shmlog.1, and shmlog-SUBCOMMAND.1 for each subcommand its
# --help lists. Usage: make_man_pages.sh SHMLOG OUTDIR VERSION
set -euo pipefail
SHMLOG=$1
OUT=$2
VERSION=$3
mkdir -p "$OUT"
# "name  description" for each subcommand, as `shmlog --help` lists them.
subcommands=$("$SHMLOG" --help | awk '/^Subcommands:/ { on = 1; next } on && NF')
see_also=$(mktemp)
trap 'rm -f "$see_also"' EXIT
{
  echo "[SEE ALSO]"
  printf '%s\n' "$subcommands" | awk '{ printf "%s\\fBshmlog-%s\\fR(1)", (NR > 1 ? ", " : ""), $1 } END { print "" }'
  echo ""
  echo "The README of shmlog says how the commands fit together."
} > "$see_also"
help2man --no-info --no-discard-stderr --version-string="$VERSION" --include="$see_also" \
  --name="a shared-memory log for low-latency IPC on one host" --output="$OUT/shmlog.1" "$SHMLOG"
printf '%s\n' "$subcommands" | while read -r name description; do
  page="$OUT/shmlog-$name.1"
  help2man --no-info --no-discard-stderr --version-string="$VERSION" \
    --name="$(printf '%s' "$description" | sed 's/^./\L&/')" --output="$page" "$SHMLOG $name"
  # help2man titles and names the page after the command's first word.
  upper=$(printf 'SHMLOG-%s' "$name" | tr '[:lower:]' '[:upper:]')
  sed -i -e "s/^\.TH SHMLOG /.TH $upper /" -e "s/^shmlog $name \\\\-/shmlog-$name \\\\-/" "$page"
done
