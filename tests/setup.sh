#!/usr/bin/env bash
# Installs what the tests and the build need. Each requirement is checked
# as what the tests use (a command, a pkg-config module, a Python module,
# clang's libFuzzer runtime), so a machine that has them all passes
# whatever its distribution. Only what is missing is installed: with
# apt-get as root; not root, the exact apt-get command is printed; without
# apt-get, what to install is listed (with the Debian package names). The
# checking and installing is xcaddy.sh's lm_require.
set -euo pipefail
cd "$(dirname "$0")/.."
LM_SCRIPT=setup
# shellcheck source=../xcaddy.sh
source ./xcaddy.sh

# KIND:WHAT:DEBIAN-PACKAGE (see lm_requirement_met in xcaddy.sh).
REQUIREMENTS=(
  "${LM_BUILD_REQUIREMENTS[@]}"                     # build libmetrics: cmake cc make pkg-config libcmark libprotobuf-c protoc-c
  cmd:clang:clang libfuzzer:libfuzzer:libclang-rt-14-dev  # libFuzzer, sanitizer runtimes
  cmd:valgrind:valgrind                             # memcheck of the C tests
  cmd:promtool:prometheus cmd:prometheus:prometheus # promtool and end-to-end Prometheus
  cmd:/usr/bin/python3:python3 py:pytest:python3-pytest # e2e tests (tests/e2e.sh runs /usr/bin/python3)
  py:prometheus_client:python3-prometheus-client    # strict OpenMetrics parser
  py:ensurepip:python3-venv                         # tests/venv.sh: pinned PyPI packages (FastAPI example)
  cmd:wrk:wrk cmd:curl:curl cmd:jq:jq               # load, HTTP
  cmd:ip:iproute2 cmd:ps:procps                     # network namespaces, processes
  cmd:/usr/bin/chromium:chromium                    # browser test of the status page
)

lm_require "${REQUIREMENTS[@]}" || exit 1
echo "setup: all ${#REQUIREMENTS[@]} requirements present"
