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
# page WORDS DESCRIPTION: shmlog-WORD1[-WORD2].1 from `shmlog WORDS --help`.
page() {
  local words=$1 description=$2 dashed=${1// /-}
  local file="$OUT/shmlog-$dashed.1"
  help2man --no-info --no-discard-stderr --version-string="$VERSION" \
    --name="$(printf '%s' "$description" | sed 's/^./\L&/')" --output="$file" "$SHMLOG $words"
  # help2man titles and names the page after the command's first word.
  upper=$(printf 'SHMLOG-%s' "$dashed" | tr '[:lower:]' '[:upper:]')
  sed -i -e "s/^\.TH [^\"]* \"1\"/.TH $upper \"1\"/" -e "s/^shmlog $words \\\\-/shmlog-$dashed \\\\-/" "$file"
}
printf '%s\n' "$subcommands" | while read -r name description; do
  page "$name" "$description"
  # A subcommand with subcommands of its own (bridge): a page for each.
  "$SHMLOG" "$name" --help | awk '/^Subcommands:/ { on = 1; next } on && NF' | while read -r sub subdescription; do
    page "$name $sub" "$subdescription"
  done
done
