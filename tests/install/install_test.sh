#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds a program against
# it with find_package(shmlog) and with pkg-config, and runs both.
set -euo pipefail
BUILD=$1 SOURCE=$2
PREFIX=$(mktemp -d /tmp/shmlog-install-XXXXXX)
trap 'rm -rf "$PREFIX"' EXIT
cmake --install "$BUILD" --prefix "$PREFIX" >/dev/null
test -x "$PREFIX/bin/shmlog"
cmake -S "$SOURCE" -B "$PREFIX/outside" -DCMAKE_PREFIX_PATH="$PREFIX" >/dev/null
cmake --build "$PREFIX/outside" >/dev/null
"$PREFIX/outside/outside"
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
# shellcheck disable=SC2046
c++ -std=c++20 "$SOURCE/main.cc" $(pkg-config --cflags --libs shmlog) -o "$PREFIX/with-pkg-config"
"$PREFIX/with-pkg-config"
echo "find_package and pkg-config both work"
