#!/usr/bin/env bash
# The Debian package (packaging/README.md): cpack makes it from the build
# tree, and unpacked into an empty root (never installed on this machine)
# its command runs, the C API test program builds against its headers and
# library through its pkg-config file, and Debian's python3 imports its
# module and writes a log that its command reads. Skipped (exit 77) where
# dpkg-deb or dpkg-shlibdeps is missing.
set -u
BUILD=${1:?usage: deb_test.sh BUILD_DIR SOURCE_DIR PYTHON}
SOURCE=$2 PYTHON=$3
for tool in dpkg-deb dpkg-shlibdeps cpack pkg-config cc; do
  command -v "$tool" >/dev/null || { echo "$tool not found: skipped"; exit 77; }
done
WORK=$(mktemp -d /tmp/shmlog-deb-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
pass() { echo "ok:   $*"; }

if ! cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$WORK/out" >"$WORK/cpack.log" 2>&1; then
  cat "$WORK/cpack.log"; echo "FAIL: cpack"; exit 1
fi
DEB=$(echo "$WORK"/out/shmlog_*.deb)
[ -f "$DEB" ] || { echo "FAIL: no shmlog_*.deb: $(ls "$WORK/out")"; exit 1; }
pass "cpack made ${DEB##*/} ($(du -k "$DEB" | cut -f1) KiB)"

# The control file: dependencies named from the libraries the binaries link.
CONTROL=$(dpkg-deb -I "$DEB")
DEPENDS=$(printf '%s\n' "$CONTROL" | sed -n 's/^ Depends: //p')
missing=""
expected="libc6 libstdc++6 liburing libhwloc libprometheus-cpp python3"
# librdkafka where the command has `bridge` (built where librdkafka-dev is).
"$BUILD/tools/shmlog" bridge --help >/dev/null 2>&1 && expected="$expected librdkafka"
for dep in $expected; do
  printf '%s' "$DEPENDS" | grep -q "\(^\|, \)$dep" || missing="$missing $dep"
done
[ -n "$DEPENDS" ] && [ -z "$missing" ] && pass "Depends: $DEPENDS" || fail "Depends lacks$missing: '$DEPENDS'"
VERSION=$(dpkg-deb -f "$DEB" Version)
[ "$(dpkg-deb -f "$DEB" Package)" = shmlog ] && [ -n "$(dpkg-deb -f "$DEB" Maintainer)" ] \
  && pass "package shmlog $VERSION, maintainer $(dpkg-deb -f "$DEB" Maintainer)" || fail "control file: $CONTROL"

ROOT="$WORK/root"
dpkg-deb -x "$DEB" "$ROOT" || { echo "FAIL: dpkg-deb -x"; exit 1; }
for f in usr/bin/shmlog usr/include/shmlog/log.h usr/include/shmlog.h usr/lib/libshmlog.a usr/lib/libshmlog_c.a \
         usr/lib/cmake/shmlog/shmlogConfig.cmake usr/lib/pkgconfig/shmlog_c.pc usr/share/man/man1/shmlog.1.gz \
         usr/lib/systemd/system/shmlog-keeper@.service usr/share/bash-completion/completions/shmlog; do
  [ -e "$ROOT/$f" ] || fail "the package has no /$f"
done
pass "command, headers, libraries, CMake and pkg-config files, man page, unit, completion are there"
grep -q "^ExecStart=/usr/bin/shmlog keeper %f$" "$ROOT/usr/lib/systemd/system/shmlog-keeper@.service" \
  && pass "the keeper unit runs /usr/bin/shmlog" || fail "keeper unit: $(grep ExecStart "$ROOT/usr/lib/systemd/system/shmlog-keeper@.service")"

out=$("$ROOT/usr/bin/shmlog" --version 2>&1)
[ "$out" = "shmlog $VERSION" ] && pass "shmlog --version: $out" || fail "shmlog --version said '$out', the package is $VERSION"

# The C API, from C11, through the package's own pkg-config file (its
# prefix is relative to the file, so no sysroot is needed).
export PKG_CONFIG_PATH="$ROOT/usr/lib/pkgconfig"
FLAGS=$(pkg-config --cflags --libs shmlog_c)
[ "$(readlink -f "$(pkg-config --variable=includedir shmlog_c)")" = "$ROOT/usr/include" ] \
  || fail "pkg-config points outside the package: $FLAGS"
# shellcheck disable=SC2086
if cc -std=c11 -D_POSIX_C_SOURCE=200809L "$SOURCE/tests/bindings/c_api_test.c" $FLAGS -o "$WORK/c-api" 2>"$WORK/cc.err"; then
  "$WORK/c-api" "$WORK" >/dev/null && pass "the C API test program, built with pkg-config against the package, runs" \
    || fail "the C API test program built against the package fails"
else
  fail "the C API test program does not build against the package: $(tail -3 "$WORK/cc.err")"
fi

# The C++ library through the package's CMake files, as tests/install does.
if cmake -S "$SOURCE/tests/install" -B "$WORK/outside" -DCMAKE_PREFIX_PATH="$ROOT/usr" >"$WORK/cmake.log" 2>&1 \
   && grep -q "^shmlog_DIR:PATH=$ROOT/usr/lib/cmake/shmlog$" "$WORK/outside/CMakeCache.txt" \
   && cmake --build "$WORK/outside" >>"$WORK/cmake.log" 2>&1 && "$WORK/outside/outside" >/dev/null; then
  pass "a CMake project finds the package's shmlog::shmlog, builds and runs"
else
  fail "find_package(shmlog) against the package: $(tail -3 "$WORK/cmake.log")"
fi

# The module, from where Debian's python3 looks with the prefix /usr.
SITE="$ROOT/usr/lib/python3/dist-packages"
PYTHONPATH="$SITE" "$PYTHON" -c '
import sys, shmlog
assert shmlog.__file__.startswith(sys.argv[1]), shmlog.__file__
shmlog.Log.create(sys.argv[2]).producer().append(b"from python")
' "$SITE" "$WORK/log" && [ "$("$ROOT/usr/bin/shmlog" consume "$WORK/log" --idle-timeout-ms 100)" = "from python" ] \
  && pass "$PYTHON imports the module from $SITE; the command reads what it wrote" \
  || fail "the package's Python module (PYTHONPATH=$SITE $PYTHON)"
"$ROOT/usr/bin/shmlog" delete "$WORK/log" >/dev/null 2>&1

[ "$FAILS" -eq 0 ] && echo "the Debian package works" || { echo "$FAILS package check(s) failed"; exit 1; }
