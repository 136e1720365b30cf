#!/usr/bin/env bash
# The project's whole test suite, as CI runs it (.ci/run) and as the README
# tells a new user to run it. Installs what it needs (tests/setup.sh), then
# runs every stage even if an earlier one fails, and ends with one line
# "tests: N passed, N failed" counting stages. Output of each stage is kept
# under tests/out/.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/tests/out
mkdir -p "$OUT"

./tests/setup.sh || { echo "tests: setup failed; nothing was run"; echo "tests: 0 passed, 1 failed"; exit 1; }

STAGES=(
  "c:tests/c.sh"          # libmetrics: ctest plain, ASan+UBSan, TSan; valgrind; fuzz
  "go:tests/go.sh"        # caddymodule: gofmt, go vet, go test -race
  "e2e:tests/e2e.sh"      # built Caddy running Caddyfile.example; Prometheus; browser
  "stress:tests/stress.sh" # hostile traffic, reloads, faults, Caddyfile fuzzing (bounded)
)

passed=0; failed=0; failed_names=()
start_all=$(date +%s)
for entry in "${STAGES[@]}"; do
  name=${entry%%:*}; script=${entry#*:}
  echo
  echo "=== stage $name ($script) ==="
  t0=$(date +%s)
  if [ ! -x "$script" ]; then
    echo "stage $name: $script is missing"; rc=1
  else
    "$script" 2>&1 | tee "$OUT/$name.log"; rc=${PIPESTATUS[0]}
  fi
  t1=$(date +%s)
  if [ "$rc" -eq 0 ]; then
    echo "=== stage $name: PASS ($((t1 - t0)) s) ==="; passed=$((passed + 1))
  else
    echo "=== stage $name: FAIL rc=$rc ($((t1 - t0)) s), log: tests/out/$name.log ==="
    failed=$((failed + 1)); failed_names+=("$name")
  fi
done
echo
echo "total time: $(( $(date +%s) - start_all )) s"
[ $failed -eq 0 ] || echo "failed stages: ${failed_names[*]}"
echo "tests: $passed passed, $failed failed"
[ $failed -eq 0 ]
