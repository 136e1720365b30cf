#!/usr/bin/env bash
# libmetrics: unit tests in three builds (plain, ASan+UBSan, TSan for the
# concurrency tests), valgrind memcheck of every test binary, and each
# libFuzzer target for a bounded time. Build trees go to build/. Every build
# turns warnings into errors (LM_WERROR=ON), as developers and CI must keep
# the code warning-free.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

build() { # dir, extra cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLM_WERROR=ON "$@" >"$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log"; return 1; }
  cmake --build "$dir" -j "$JOBS"
}

mkdir -p build
echo "--- plain build + ctest"
build build/release
ctest --test-dir build/release --output-on-failure -j "$JOBS"

echo "--- ASan+UBSan build + ctest"
build build/asan -DLM_SANITIZE=address,undefined -DLM_BUILD_BENCH=OFF
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/asan --output-on-failure -j "$JOBS"

echo "--- TSan build + concurrency tests"
build build/tsan -DLM_SANITIZE=thread -DLM_BUILD_BENCH=OFF
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  ctest --test-dir build/tsan --output-on-failure -L concurrency

echo "--- valgrind memcheck of every unit test binary"
for t in build/release/libmetrics/tests/test_*; do
  [ -x "$t" ] || continue
  echo "valgrind $(basename "$t")"
  LM_TEST_SMALL=1 valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --error-exitcode=1 "$t" >/dev/null
done
echo "valgrind: clean"

if [ -d libmetrics/fuzz ] && ls libmetrics/fuzz/*.c >/dev/null 2>&1; then
  echo "--- libFuzzer targets, ${FUZZ_SECONDS}s each"
  CC=clang build build/fuzz -DLM_BUILD_FUZZ=ON -DLM_BUILD_TESTS=OFF -DLM_BUILD_BENCH=OFF
  for f in build/fuzz/libmetrics/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    name=$(basename "$f")
    corpus=libmetrics/fuzz/corpus/$name
    mkdir -p "$corpus" build/fuzz/new-$name
    "$f" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
      build/fuzz/new-$name "$corpus" 2>&1 | tail -n 3
  done
fi
echo "c: all C checks passed"
