#!/usr/bin/env bash
# End-to-end stage: builds the custom Caddy (./xcaddy.sh build, fast when up
# to date) and the tests' Python virtual environment (tests/venv.sh: the
# example FastAPI app's pinned packages, reused while unchanged), then runs
# the pytest suite in tests/e2e against build/caddy on Caddyfile.example and
# examples/fastapi/Caddyfile. Logs, scraped bodies and junit.xml go to
# tests/out/e2e/.
#
# Root: only tests/e2e/test_netns*.py need it (ip netns, veth pairs). Run as
# a normal user and everything else runs; those modules then FAIL with a
# message saying so (it never skips). The suite binds ports 8080, 8081, 9091
# and 2019 on 127.0.0.1 (and a 198.51.100.x veth address in the netns test);
# it fails at once, naming the owner, if one is taken.
#
# Extra arguments go to pytest, e.g. tests/e2e.sh -k counts.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p tests/out/e2e

echo "--- ./xcaddy.sh build"
if [ ! -x ./xcaddy.sh ]; then
  echo "e2e: ./xcaddy.sh is missing or not executable"; exit 1
fi
./xcaddy.sh build || { echo "e2e: ./xcaddy.sh build failed"; exit 1; }
[ -x build/caddy ] || { echo "e2e: ./xcaddy.sh build did not produce build/caddy"; exit 1; }
build/caddy version

# Prometheus 3 for the tests that run against both Prometheus versions
# (Debian's 2.42 and 3.x): built from the Go module proxy into
# build/tools/prometheus3/: about 16 CPU-minutes of compiling on a fresh
# clone (some 8 minutes on two idle cores, so in every CI run), skipped when
# already built.
echo "--- tests/tools/prometheus3.sh"
tests/tools/prometheus3.sh || { echo "e2e: building Prometheus 3 failed"; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  echo "e2e: not root: tests/e2e/test_netns.py will fail (it needs ip netns); run as root for a full pass"
fi

echo "--- tests/venv.sh"
# A failure here fails only the tests that need the environment (their
# fixture runs tests/venv.sh again and reports why); the rest still run.
tests/venv.sh || echo "e2e: tests/venv.sh failed: the FastAPI parity tests will fail"

echo "--- pytest tests/e2e"
# /usr/bin/python3 explicitly: Debian's python has pytest and
# prometheus_client; another python3 on PATH may not. The hard timeout only
# guards against a hung server; the suite takes about 10 minutes here, most
# of it the real-Prometheus tests, which run once per Prometheus version.
PYTHONDONTWRITEBYTECODE=1 timeout --signal=INT --kill-after=30 900 \
  /usr/bin/python3 -m pytest -q -rfE -p no:cacheprovider \
  --junitxml=tests/out/e2e/junit.xml tests/e2e "$@"
rc=$?
[ $rc -eq 124 ] && echo "e2e: pytest timed out after 900 s"
exit $rc
