#!/usr/bin/env bash
# Stress stage: hostile traffic, reloads, faults and fuzzing against the
# built Caddy, each scenario asserting and publishing one line of figures.
#
#   1. ./xcaddy.sh build (fast when up to date)
#   2. go test -fuzz FuzzCaddyfile for STRESS_FUZZ_SECONDS (default 60)
#   3. pytest tests/stress: cardinality flood, hostile bytes and config
#      strings, saturating load with scrapers, reload torture, bucket churn,
#      faults (hang-ups, slow reader, failing upstreams)
#   4. tests/stress/results.py writes tests/out/stress/RESULTS.md from the
#      run's figures (copy it over tests/stress/RESULTS.md to publish).
#
# Sizes: STRESS_SCALE=1 (default) is the bounded run tests/run.sh does, a
# few minutes on two cores; larger scales multiply the flood (200k
# requests x scale), the wrk time (20 s x scale), the reloads (100 x
# scale) and the upstream fault requests, e.g. STRESS_SCALE=10 by hand. Everything listens on free 127.0.0.1 ports, so it can run
# beside another instance. Logs and bodies go to tests/out/stress/ and
# tests/out/e2e/stress-*/. Extra arguments go to pytest, e.g. -k reload.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p tests/out/stress
SCALE=${STRESS_SCALE:-1}
FUZZ_SECONDS=${STRESS_FUZZ_SECONDS:-60}
rc=0

echo "--- ./xcaddy.sh build"
./xcaddy.sh build || { echo "stress: ./xcaddy.sh build failed"; exit 1; }

echo "--- go test -fuzz FuzzCaddyfile (${FUZZ_SECONDS}s; a failure leaves its input in caddymodule/testdata/fuzz)"
fuzz_log=tests/out/stress/fuzz.log
t0=$(date +%s)
(
  # shellcheck source=../xcaddy.sh
  source ./xcaddy.sh
  lm_ensure_go && lm_build_libmetrics >/dev/null && lm_go_env "$LM_PREFIX/lib" && cd caddymodule &&
    go test -run '^$' -fuzz '^FuzzCaddyfile$' -fuzztime "${FUZZ_SECONDS}s" .
) >"$fuzz_log" 2>&1
frc=$?
tail -n 4 "$fuzz_log"
# One figures line, like the pytest scenarios (results.py reads it).
execs=$(grep -o 'execs: [0-9]*' "$fuzz_log" | tail -n 1 | cut -d' ' -f2)
seeds=$(find caddymodule/testdata/fuzz/FuzzCaddyfile -type f | wc -l)
echo "caddyfile_fuzz: fuzz_seconds=$FUZZ_SECONDS execs=${execs:-0} seed_inputs=$seeds wall_s=$(( $(date +%s) - t0 )) result=$([ $frc -eq 0 ] && echo pass || echo FAIL)" \
  >tests/out/stress/fuzz-figures.txt
[ $frc -eq 0 ] || { echo "stress: FuzzCaddyfile failed (log $fuzz_log)"; rc=1; }

echo "--- pytest tests/stress (STRESS_SCALE=$SCALE)"
# /usr/bin/python3: Debian's, with pytest and prometheus_client. The hard
# timeout only guards against a hang; the bounded run takes ~3 minutes.
STRESS_SCALE=$SCALE PYTHONDONTWRITEBYTECODE=1 timeout --signal=INT --kill-after=30 $((900 * SCALE)) \
  /usr/bin/python3 -m pytest -q -rfE -p no:cacheprovider --junitxml=tests/out/stress/junit.xml tests/stress "$@"
prc=$?
[ $prc -eq 124 ] && echo "stress: pytest timed out"
[ $prc -eq 0 ] || rc=1

/usr/bin/python3 tests/stress/results.py --command "STRESS_SCALE=$SCALE tests/stress.sh${*:+ $*}" \
  --out tests/out/stress/RESULTS.md || rc=1
[ $rc -eq 0 ] && echo "stress: all scenarios passed" || echo "stress: FAILED (see above and tests/out/stress/)"
exit $rc
