#!/usr/bin/env bash
# Installs what the tests and the build need on a fresh Debian machine.
# Prints each step; as root it runs apt-get itself, otherwise it prints the
# exact command and stops.
set -euo pipefail

PACKAGES=(
  cmake gcc make pkg-config          # build libmetrics
  clang libclang-rt-14-dev           # libFuzzer, sanitizer runtimes
  libcmark-dev                       # status page rendering
  libprotobuf-c-dev protobuf-c-compiler  # protobuf exposition (protoc-c at build time)
  valgrind                           # memcheck of the C tests
  prometheus                         # promtool and end-to-end Prometheus
  python3 python3-pytest python3-prometheus-client  # strict OpenMetrics parser, e2e tests
  python3-venv                       # tests/venv.sh: pinned PyPI packages (FastAPI example)
  wrk curl jq iproute2 procps        # load, HTTP, network namespaces
  chromium                           # browser test of the status page
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} Debian packages present"
  exit 0
fi
echo "setup: missing Debian packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: not root; run:  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "setup: apt-get update && apt-get install -y ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
