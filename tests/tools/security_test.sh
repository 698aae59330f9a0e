#!/usr/bin/env bash
# What another local user (nobody, through setpriv) can do to a log: with
# the default mode nothing, each refusal saying "permission denied"; with
# group mode what the group's members may; and an object they plant at a
# log's shared-memory name is never used. Needs root to switch users;
# skipped (exit 77) without it.
set -uo pipefail
SHMLOG=$1
if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null; then
  echo "skipped: needs root and setpriv to act as another user"
  exit 77
fi
WORK=$(mktemp -d /tmp/shmlog-security.XXXXXX)
chmod 0755 "$WORK"
cleanup() {
  for log in "$WORK"/*/; do "$SHMLOG" delete "$log" >/dev/null 2>&1; done
  rm -rf "$WORK"
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
as_member() { setpriv --reuid=65534 --regid=65534 --groups=0 "$@"; }  # in root's group (gid 0)

# refused NAME -- CMD...: CMD fails, saying "permission denied" and naming the log.
refused() {
  local name=$1; shift 2
  local out
  if out=$("$@" 2>&1 </dev/null); then
    fail "$name: succeeded as another user"
  elif ! grep -qi "permission denied" <<<"$out" || ! grep -q "$WORK" <<<"$out"; then
    fail "$name: unclear refusal: $out"
  fi
}

# The default mode (0600): the owner's alone.
PRIVATE=$WORK/private
"$SHMLOG" create "$PRIVATE" >/dev/null || fail "create"
echo "secret" | "$SHMLOG" produce "$PRIVATE" || fail "produce as owner"
refused "info" -- as_nobody "$SHMLOG" info "$PRIVATE"
refused "consume" -- as_nobody "$SHMLOG" consume "$PRIVATE" --idle-timeout-ms 10
refused "produce" -- as_nobody sh -c "echo intruder | '$SHMLOG' produce '$PRIVATE'"
refused "groups" -- as_nobody "$SHMLOG" groups "$PRIVATE"
refused "delete" -- as_nobody "$SHMLOG" delete "$PRIVATE"
[ -d "$PRIVATE" ] || fail "the log is gone after another user's delete"
got=$("$SHMLOG" consume "$PRIVATE" --idle-timeout-ms 50)
[ "$got" = "secret" ] || fail "the owner reads '$got', not just 'secret'"

# Group mode (0660): a member of the log's group produces and consumes.
SHARED=$WORK/shared
"$SHMLOG" create "$SHARED" --mode 0660 >/dev/null || fail "create --mode 0660"
echo "from owner" | "$SHMLOG" produce "$SHARED" || fail "produce as owner"
echo "from member" | as_member "$SHMLOG" produce "$SHARED" || fail "produce as a group member"
got=$(as_member "$SHMLOG" consume "$SHARED" --idle-timeout-ms 50 | tr '\n' ,)
[ "$got" = "from owner,from member," ] || fail "a group member reads '$got'"
refused "consume by a non-member" -- as_nobody "$SHMLOG" consume "$SHARED" --idle-timeout-ms 10

# Group mode on a durable log: every file and directory gets the mode, so a
# member's keeper writes the segment files, and a member may make the
# memory anew after it was lost.
DURABLE=$WORK/durable
"$SHMLOG" create "$DURABLE" --mode 0660 --durability fsync --segment-size 64K --ring-segments 2 >/dev/null \
  || fail "create --mode 0660 --durability fsync"
echo "from owner" | "$SHMLOG" produce "$DURABLE" --acks durable || fail "durable produce as owner"
echo "from member" | as_member "$SHMLOG" produce "$DURABLE" --acks durable || fail "durable produce as a group member"
memory=$("$SHMLOG" info "$DURABLE" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["memory_path"])')
rm -f "$memory"  # as a reboot would
got=$(as_member "$SHMLOG" consume "$DURABLE" --idle-timeout-ms 50 | tr '\n' ,)
[ "$got" = "from owner,from member," ] || fail "a group member recovers '$got' from the segment files"
got=$("$SHMLOG" consume "$DURABLE" --idle-timeout-ms 50 | tr '\n' ,)
[ "$got" = "from owner,from member," ] || fail "the owner reads '$got' after a member made the memory anew"
# repair, by a member who may not read one of the files: refused naming it,
# not "nothing to repair".
seg=$(find "$DURABLE/partition-0" -name '*.seg' | head -1)
chmod 0600 "$seg"
out=$(as_member "$SHMLOG" repair "$DURABLE" 2>&1) && fail "repair with an unreadable file succeeded: $out"
grep -qi "permission denied" <<<"$out" && grep -q "$seg" <<<"$out" || fail "unclear refusal of repair: $out"
chmod 0660 "$seg"
bad_modes=$(find "$DURABLE" \( -type f ! -perm 0660 \) -o \( -type d ! -perm 0770 \) | grep -v '/shmlog.state.tmp$' || true)
[ -z "$bad_modes" ] || fail "files or directories without the log's mode: $bad_modes"

# An empty directory another user made is not taken for a log: they could
# change its entries under the owner.
mkdir -m 1777 "$WORK/tmp"  # like /tmp: anyone may make entries
as_nobody mkdir "$WORK/tmp/theirs"
out=$("$SHMLOG" create "$WORK/tmp/theirs" 2>&1) && fail "create in another user's empty directory succeeded"
grep -q "belongs to uid 65534" <<<"$out" || fail "unclear refusal of another user's directory: $out"
rm -rf "$WORK/tmp"

# An object planted at the name of a log's shared memory, after the memory
# went (a reboot, or RemoveIPC): the owner's next open does not use it.
PLANTED=$WORK/planted
"$SHMLOG" create "$PLANTED" >/dev/null || fail "create"
memory=$("$SHMLOG" info "$PLANTED" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["memory_path"])')
cp "$memory" "$WORK/copy" && chmod 0644 "$WORK/copy" && rm -f "$memory"
as_nobody sh -c "cat '$WORK/copy' > '$memory' && chmod 0666 '$memory'" || fail "planting as nobody"
before=$(sha1sum <"$memory")
echo "after reboot" | "$SHMLOG" produce "$PLANTED" || fail "produce after a planted object"
now=$("$SHMLOG" info "$PLANTED" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["memory_path"])')
[ "$now" != "$memory" ] || fail "the log runs on the planted object $memory"
[ "$(sha1sum <"$memory")" = "$before" ] || fail "the planted object was written to"
rm -f "$memory"

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "security: all checks passed"
