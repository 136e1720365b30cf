#!/usr/bin/env bash
# Route templates: what they cost, side by side in one run.
#   1. lm_match_bench: ns per lm_matcher_match at 10 .. 10,000 templates,
#      allocations while matching;
#   2. caddymodule BenchmarkTemplates: per-request Go-side cost with
#      templates, and the extra cgo crossing alone;
#   3. caddymodule BenchmarkTemplateCardinality: series and scrape size of a
#      50-template app under mixed traffic for each cardinality lever.
# Prints every figure and how to reproduce it; figures go by hand into
# bench/RESULTS.md ("Route templates"). Not part of tests/run.sh.
#   bench/templates.sh [reps]     (default 7)
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-7}
# lm_build_libmetrics, lm_go_env (as tests/go.sh).
# shellcheck source=../xcaddy.sh
source ./xcaddy.sh
lm_ensure_go
echo "== 1. C matcher (bench/lm_match_bench.c)"
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLM_BUILD_TESTS=OFF >/dev/null
cmake --build build/bench --target lm_match_bench >/dev/null
build/bench/bench/lm_match_bench "$REPS"
lm_build_libmetrics >/dev/null
lm_go_env "$LM_PREFIX/lib"
cd caddymodule
echo
echo "== 2. per request in Go (caddymodule/bench_templates_test.go)"
echo "reproduce: cd caddymodule && go test -run '^\$' -bench '^BenchmarkTemplates\$' -benchmem -count $REPS"
go test -run '^$' -bench '^BenchmarkTemplates$' -benchmem -count "$REPS" . | grep -E '^Benchmark'
echo
echo "== 3. series and scrape size (caddymodule/bench_cardinality_test.go)"
go test -run '^$' -bench '^BenchmarkTemplateCardinality$' -benchtime 1x . | grep -vE '^(goos|goarch|pkg|cpu|PASS|ok)'
