#!/usr/bin/env bash
# Runs every benchmark side by side in one run and writes bench/RESULTS.md
# (medians, spreads, ratios, the machine, the command for each figure).
#
#   bench/run.sh           full run (about 25 minutes on 2 cores)
#   bench/run.sh --quick   smoke run (about 3 minutes): tiny counts, short
#                          wrk runs; writes bench/out/RESULTS.quick.md and
#                          leaves bench/RESULTS.md alone
#
# Parts (each writes its raw output under bench/out/):
#   c       bench/lm_bench from a CMake build with LM_BUILD_BENCH=ON
#   reload  bench/lm_reload_bench (same build): request stalls while a reload
#           changes a namespace's buckets, 1,000 routes
#   record  caddymodule BenchmarkRecord: per-request recording, our path vs
#           client_golang (and Caddy's own calls), serial and parallel
#   chain   caddymodule BenchmarkChain, BenchmarkChainOverhead and
#           BenchmarkFloor (the steps of one record, alone): a whole
#           request through a real Caddy server with and without
#           route_metrics (and its extras, and Caddy's built-in metrics),
#           interleaved rounds pinned to one CPU
#   scrape  caddymodule BenchmarkScrape: 1k/10k/100k series, lm vs client_golang
#   memory  caddymodule BenchmarkSeriesMemory: RSS per series, one fresh
#           process per size and implementation
#   wrk     bench/wrk.sh: build/caddy plain vs route_metrics (nested) vs a
#           single route_metrics vs built-in metrics, respond and
#           reverse_proxy, two load shapes (wrk -t2 -c32, -t1 -c16)
# BENCH_PARTS="record scrape" bench/run.sh runs a subset (the report then
# shows only what bench/out/ holds).
#
# Never fails on a number: targets are reported as met or missed. It fails
# only when a part cannot run at all. Not part of tests/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=0
case ${1:-} in
  --quick) QUICK=1 ;;
  "") ;;
  -h | --help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: bench/run.sh [--quick]" >&2; exit 2 ;;
esac
PARTS=${BENCH_PARTS:-c reload record chain scrape memory wrk}
OUT=$ROOT/bench/out
if [ $QUICK = 1 ]; then OUT=$ROOT/bench/out/quick; fi
BUILD=$ROOT/build/bench
mkdir -p "$OUT" "$BUILD"
CMDS=$OUT/commands.tsv
: >"$CMDS"
T0=$(date +%s)
BENCHSTAT=benchstat

has_part() { [[ " $PARTS " == *" $1 "* ]]; }
# cmd PART COMMAND...: logs the command as the report will quote it (paths
# relative to the repository root) and runs it.
cmd() {
  local part=$1 a line=""; shift
  for a in "$@"; do
    [ "$a" = "$ROOT" ] && a=.
    a=${a//"$ROOT/"/}
    [ "$a" = "$BENCHSTAT" ] && a=benchstat
    if [[ ! $a =~ ^[A-Za-z0-9_./=:,+@-]+$ ]]; then a="'${a//\'/\'\\\'\'}'"; fi
    line+="$a "
  done
  printf '%s\t%s\n' "$part" "${line% }" >>"$CMDS"
  "$@"
}

# lm_build_libmetrics, lm_go_env, LM_LIB, LM_BUILD, LM_BUILD_TYPE.
# shellcheck source=../xcaddy.sh
source "$ROOT/xcaddy.sh"
# After the source: xcaddy.sh has a say() of its own.
say() { printf 'bench: %s\n' "$*"; }

# ------------------------------------------------------------- machine
{
  echo "lm_build_type=$LM_BUILD_TYPE"
  echo "date=$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (uncommitted changes)')"
  echo "nproc=$(nproc)"
  echo "cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "kernel=$(uname -sr)"
  echo "go=$(go env GOVERSION)"
  echo "gcc=$(gcc -dumpfullversion) ($(gcc --version | head -1))"
  echo "wrk=$(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
  echo "mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null || echo unknown)"
  echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "quick=$QUICK"
} >"$OUT/machine.txt"
say "machine: $(tr '\n' ' ' <"$OUT/machine.txt")"

# ------------------------------------------------------------- builds
# libmetrics exactly as build/caddy gets it (xcaddy.sh: CMake
# $LM_BUILD_TYPE into build/lib), and the C micro-benchmark from the same
# sources and build type in our own tree.
lm_build_libmetrics >"$BUILD/libmetrics.log" 2>&1 || { cat "$BUILD/libmetrics.log"; exit 1; }
if has_part c || has_part reload; then
  say "building the C micro-benchmarks (CMake $LM_BUILD_TYPE, LM_BUILD_BENCH=ON) in build/bench/c"
  cmd c cmake -S "$ROOT" -B "$BUILD/c" -DCMAKE_BUILD_TYPE="$LM_BUILD_TYPE" -DLM_BUILD_TESTS=OFF \
    -DLM_BUILD_BENCH=ON -DLM_WERROR="$LM_WERROR" >"$BUILD/c.configure.log" 2>&1 ||
    { cat "$BUILD/c.configure.log"; exit 1; }
  cmd c cmake --build "$BUILD/c" --target lm_bench lm_reload_bench -j "$(nproc)" >"$BUILD/c.build.log" 2>&1 ||
    { tail -30 "$BUILD/c.build.log"; exit 1; }
fi

GO_PARTS=0
for p in record chain scrape memory; do has_part $p && GO_PARTS=1; done
TESTBIN=$BUILD/caddymodule.test
if [ $GO_PARTS = 1 ]; then
  say "building the caddymodule test binary (cgo, libmetrics from build/lib)"
  (
    lm_go_env "$LM_LIB"
    cd "$ROOT/caddymodule" && go test -c -o "$TESTBIN" .
  )
  BENCHSTAT=$(command -v benchstat || true)
  [ -n "$BENCHSTAT" ] || BENCHSTAT=$(go env GOPATH)/bin/benchstat
  if [ ! -x "$BENCHSTAT" ]; then
    say "installing benchstat (golang.org/x/perf) through the Go module proxy"
    go install golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
  fi
fi

if has_part wrk; then
  say "building build/caddy (./xcaddy.sh build; skipped when up to date)"
  "$ROOT/xcaddy.sh" build >"$BUILD/xcaddy.log" 2>&1 || { tail -30 "$BUILD/xcaddy.log"; exit 1; }
fi

# ------------------------------------------------------------- c
if has_part c; then
  LMB=$(find "$BUILD/c" -type f -name lm_bench -perm -u+x | head -1)
  if [ -z "$LMB" ]; then
    say "no lm_bench binary in build/bench/c (bench/CMakeLists.txt not there yet?)"
    echo "lm_bench was not built: no bench/CMakeLists.txt target named lm_bench" >"$OUT/lm_bench.txt"
  else
    say "running ${LMB#"$ROOT"/}"
    if [ $QUICK = 1 ]; then
      cmd c env LM_BENCH_SCALE=0.1 "$LMB" 5 >"$OUT/lm_bench.txt" 2>&1 || say "lm_bench failed (kept its output)"
    else
      cmd c "$LMB" 7 >"$OUT/lm_bench.txt" 2>&1 || say "lm_bench failed (kept its output)"
    fi
  fi
fi

# ------------------------------------------------------------- reload
if has_part reload; then
  LRB=$(find "$BUILD/c" -type f -name lm_reload_bench -perm -u+x | head -1)
  say "running ${LRB#"$ROOT"/}"
  if [ $QUICK = 1 ]; then
    cmd reload "$LRB" 0.5 >"$OUT/lm_reload_bench.txt" 2>&1 || say "lm_reload_bench failed (kept its output)"
  else
    cmd reload "$LRB" 3 >"$OUT/lm_reload_bench.txt" 2>&1 || say "lm_reload_bench failed (kept its output)"
  fi
fi

# ------------------------------------------------------------- Go
if [ $QUICK = 1 ]; then
  GO_COUNT=2; GO_TIME=100ms; SCRAPE_COUNT=2; SCRAPE_RE='^BenchmarkScrape$/^series=(1000|10000)$/'
  MEM_SIZES="1000 10000"; MEM_REPS=1
else
  GO_COUNT=10; GO_TIME=1s; SCRAPE_COUNT=6; SCRAPE_RE='^BenchmarkScrape$'
  MEM_SIZES="1000 10000 100000"; MEM_REPS=3
fi
# GOMAXPROCS is left at the default (= nproc) so b.RunParallel uses every
# core, as Caddy would.
if has_part record; then
  say "BenchmarkRecord x$GO_COUNT"
  cmd record "$TESTBIN" -test.run '^$' -test.bench '^BenchmarkRecord$' -test.benchmem \
    -test.count "$GO_COUNT" -test.benchtime "$GO_TIME" >"$OUT/go_record.txt"
  cmd record "$BENCHSTAT" -col /impl "$OUT/go_record.txt" >"$OUT/go_record.benchstat.txt"
fi
if has_part chain; then
  # One CPU (the last), GOMAXPROCS 1: the collector and the request share
  # it, as on a busy server, and other jobs on the other CPU disturb less.
  # Rounds interleave the configurations (each round runs them all once),
  # so a change in the machine's load hits them alike.
  CHAIN_CPU=$(($(nproc) - 1))
  if [ $QUICK = 1 ]; then CHAIN_ROUNDS=2; CHAIN_TIME=200ms; else CHAIN_ROUNDS=10; CHAIN_TIME=1s; fi
  say "BenchmarkChain, BenchmarkChainOverhead: $CHAIN_ROUNDS interleaved rounds on CPU $CHAIN_CPU"
  : >"$OUT/go_chain.txt"
  : >"$OUT/go_chain.load.txt"
  for round in $(seq "$CHAIN_ROUNDS"); do
    echo "round=$round loadavg=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/go_chain.load.txt"
    run=cmd
    [ "$round" = 1 ] || run=""
    $run ${run:+chain} taskset -c "$CHAIN_CPU" "$TESTBIN" -test.run '^$' \
      -test.bench '^BenchmarkChain(Overhead)?$' -test.benchmem -test.cpu 1 -test.count 1 \
      -test.benchtime "$CHAIN_TIME" >>"$OUT/go_chain.txt" 2>>"$OUT/go_chain.err" ||
      { tail -20 "$OUT/go_chain.err"; say "BenchmarkChain failed"; exit 1; }
  done
  echo "round=end loadavg=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/go_chain.load.txt"
  (cd "$OUT" && cmd chain "$BENCHSTAT" go_chain.txt >go_chain.benchstat.txt)
  say "BenchmarkFloor x$CHAIN_ROUNDS on CPU $CHAIN_CPU"
  cmd floor taskset -c "$CHAIN_CPU" "$TESTBIN" -test.run '^$' -test.bench '^BenchmarkFloor$' \
    -test.cpu 1 -test.count "$CHAIN_ROUNDS" -test.benchtime "$CHAIN_TIME" >"$OUT/go_floor.txt" 2>&1 ||
    { tail -20 "$OUT/go_floor.txt"; say "BenchmarkFloor failed"; exit 1; }
fi
if has_part scrape; then
  say "BenchmarkScrape x$SCRAPE_COUNT"
  cmd scrape "$TESTBIN" -test.run '^$' -test.bench "$SCRAPE_RE" -test.benchmem \
    -test.count "$SCRAPE_COUNT" -test.benchtime 1s >"$OUT/go_scrape.txt"
  cmd scrape "$BENCHSTAT" -col /impl "$OUT/go_scrape.txt" >"$OUT/go_scrape.benchstat.txt"
fi
if has_part memory; then
  say "BenchmarkSeriesMemory: sizes $MEM_SIZES, $MEM_REPS fresh processes each"
  : >"$OUT/go_memory.txt"
  for rep in $(seq "$MEM_REPS"); do
    for n in $MEM_SIZES; do
      for impl in lm prom; do
        cmd memory "$TESTBIN" -test.run '^$' \
          -test.bench "^BenchmarkSeriesMemory\$/^series=$n\$/^impl=$impl\$" -test.benchtime 1x \
          >>"$OUT/go_memory.txt"
      done
    done
  done
  # One line per command kind is enough for the report.
  awk -F'\t' '!($1 == "memory" && seen++)' "$CMDS" >"$CMDS.tmp" && mv "$CMDS.tmp" "$CMDS"
fi

# ------------------------------------------------------------- wrk
if has_part wrk; then
  if [ $QUICK = 1 ]; then
    export WRK_REPS=2 WRK_DURATION=2s WRK_WARMUP=1s
  else
    export WRK_REPS=${WRK_REPS:-10} WRK_DURATION=${WRK_DURATION:-5s} WRK_WARMUP=${WRK_WARMUP:-3s}
  fi
  say "wrk: $WRK_REPS interleaved rounds of ${WRK_DURATION} per config and backend"
  cmd wrk env WRK_REPS="$WRK_REPS" WRK_DURATION="$WRK_DURATION" WRK_WARMUP="$WRK_WARMUP" \
    "$ROOT/bench/wrk.sh" "$LM_BUILD/caddy" "$OUT/wrk"
fi

echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
echo "duration_s=$(($(date +%s) - T0))" >>"$OUT/machine.txt"

# ------------------------------------------------------------- report
REPORT=$ROOT/bench/RESULTS.md
[ $QUICK = 1 ] && REPORT=$OUT/RESULTS.quick.md
/usr/bin/python3 "$ROOT/bench/report.py" "$OUT" "$ROOT/bench/analysis.md" >"$REPORT"
say "wrote ${REPORT#"$ROOT"/} in $(($(date +%s) - T0)) s"
