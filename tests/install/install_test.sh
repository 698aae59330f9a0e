#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds a program against
# it with find_package(shmlog) and with pkg-config, and runs both.
set -euo pipefail
BUILD=$1 SOURCE=$2
PREFIX=$(mktemp -d /tmp/shmlog-install-XXXXXX)
trap 'rm -rf "$PREFIX"' EXIT
cmake --install "$BUILD" --prefix "$PREFIX" >/dev/null
test -x "$PREFIX/bin/shmlog"
# The systemd units run the command where it was installed.
grep -q "^ExecStart=$PREFIX/bin/shmlog keeper %f$" "$PREFIX/lib/systemd/system/shmlog-keeper@.service"
cmake -S "$SOURCE" -B "$PREFIX/outside" -DCMAKE_PREFIX_PATH="$PREFIX" >/dev/null
cmake --build "$PREFIX/outside" >/dev/null
"$PREFIX/outside/outside"
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
# shellcheck disable=SC2046
c++ -std=c++20 "$SOURCE/main.cc" $(pkg-config --cflags --libs shmlog) -o "$PREFIX/with-pkg-config"
"$PREFIX/with-pkg-config"
# The C API, from C11, through its own pkg-config file.
cc -std=c11 -D_POSIX_C_SOURCE=200809L "$SOURCE/../bindings/c_api_test.c" $(pkg-config --cflags --libs shmlog_c) -o "$PREFIX/c-api"
"$PREFIX/c-api" "$PREFIX"
echo "find_package and pkg-config (C++ and C) work"
