#!/usr/bin/env bash
# Installs what shmlog needs to build and test, from Debian's packages only.
# Idempotent: installs only what is missing. Uses sudo when not root.
set -euo pipefail
PACKAGES=(
  g++ cmake ninja-build pkg-config make       # toolchain
  clang libclang-rt-dev                       # fuzz targets (libFuzzer)
  libboost-dev liburing-dev libhwloc-dev      # shared memory, io_uring, topology
  libconcurrentqueue-dev libreaderwriterqueue-dev  # in-process baselines for the benchmarks
  gnuplot-nox                                 # shmlog lat --plot
  prometheus-cpp-dev curl                     # shmlog exporter, and its test
  prometheus                                  # promtool: checks and unit-tests the alerting rules
  help2man groff-base                         # man pages from the command's --help
  libcli11-dev                                # the command line
  nlohmann-json3-dev                          # the command's --json output
  librdkafka-dev                              # shmlog bridge to-kafka, and its mock-cluster tests
  kcat                                        # the bridge tests: a Kafka client reads what it wrote
  libgtest-dev libgmock-dev libbenchmark-dev  # tests and benchmarks
  python3 procps                              # test scripts (json checks, pkill)
  python3-dev pybind11-dev python3-pytest python3-numpy  # the Python module and its tests
  dpkg-dev file                               # cpack's Debian package: dpkg-shlibdeps names its dependencies
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
