#!/usr/bin/env bash
# Whole-server throughput: one Caddy binary, four configs (plain,
# route_metrics nested as Caddyfile.example teaches it, a single
# route_metrics, Caddy's built-in metrics), for two backends (respond "ok"
# and reverse_proxy to a second, uninstrumented Caddy on loopback), under
# more than one load shape (wrk threads x connections). Writes one TSV row
# per measured run to $OUT/runs.tsv and keeps every raw wrk output beside
# it.
#
# Usage: bench/wrk.sh CADDY_BINARY OUT_DIR
# Env:   WRK_REPS (10) rounds, WRK_DURATION (5s) per run, WRK_SHAPES
#        ("2x32 1x16": wrk -t2 -c32, then -t1 -c16), WRK_WARMUP (3s),
#        WRK_BACKENDS ("respond proxy"),
#        WRK_CONFIGS ("plain route_metrics single builtin").
#
# How the noise of a shared 2-core machine is kept out of the ratios: the
# three configs run as three Caddy processes side by side (idle ones cost
# nothing), each warmed up once, and wrk visits them in short runs, round
# after round, in an order rotated every round. A drift in other people's
# load then hits all three alike, and each round gives a back-to-back
# ratio. Every round runs each load shape in turn, so the shapes are paired
# too: a figure that holds in one shape only shows. Besides req/s, each run records the CPU time the measured Caddy
# process used per request (/proc/PID/stat): that is what the
# instrumentation costs, whatever else competes for the cores.
#
# Nothing is pinned to CPUs: wrk, Caddy and the upstream share both cores
# as on a small real host; pinning wrk to one core and Caddy to the other
# would halve Caddy's cores instead of measuring its per-request overhead,
# and would not shield either from other jobs.
set -euo pipefail
CADDY=$(realpath "$1")
OUT=$2
HERE=$(cd "$(dirname "$0")" && pwd)
REPS=${WRK_REPS:-10}
DUR=${WRK_DURATION:-5s}
read -r -a SHAPES <<<"${WRK_SHAPES:-2x32 1x16}"
for shape in "${SHAPES[@]}"; do
  [[ $shape =~ ^[1-9][0-9]*x[1-9][0-9]*$ ]] || { echo "wrk.sh: bad load shape '$shape' (want THREADSxCONNS)" >&2; exit 1; }
done
WARMUP=${WRK_WARMUP:-3s}
BACKENDS=${WRK_BACKENDS:-respond proxy}
BASE_PORT=${LM_BENCH_PORT:-27180}
export LM_BENCH_UPSTREAM_PORT=${LM_BENCH_UPSTREAM_PORT:-27191}
read -r -a CONFIGS <<<"${WRK_CONFIGS:-plain route_metrics single builtin}"
NCFG=${#CONFIGS[@]}
URL_PATH=/api/hello

mkdir -p "$OUT/raw"
ROWS=$OUT/runs.tsv
printf 'backend\tconfig\trep\torder\trps\tp50_ms\tp99_ms\tnon2xx\tsocket_errors\tcounted\tloadavg1\trequests\tcaddy_cpu_s\tshape\n' >"$ROWS"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# CPU seconds (user + system) a process has used so far.
cpu_s() {
  awk -v t="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$1/stat"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_up() { # port; fails after ~10 s
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
    sleep 0.1
  done
  echo "wrk.sh: nothing listening on 127.0.0.1:$1" >&2
  return 1
}

start_caddy() { # caddyfile port logfile -> sets CADDY_PID
  LM_BENCH_PORT=$2 "$CADDY" run --adapter caddyfile --config "$1" >"$3" 2>&1 &
  CADDY_PID=$!
  PIDS+=("$CADDY_PID")
}

stop_pid() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# wrk prints latency with a unit (us, ms, s); the report wants ms.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
    printf "%.3f", n }'
}

# Requests the instrumentation has counted so far, read from the config's
# own /metrics: evidence that the measured server really recorded.
counted() { # config port
  local body
  body=$(curl -s "http://127.0.0.1:$2/metrics" || true)
  case $1 in
    plain) echo "-" ;;
    builtin) awk '/^caddy_http_requests_total\{/ { s += $NF } END { printf "%d", s }' <<<"$body" ;;
    route_metrics | single) awk '/^[a-z_]*http_requests_total\{/ { s += $NF } END { printf "%d", s }' <<<"$body" ;;
  esac
}

for i in $(seq 0 $((NCFG - 1))) 11; do
  port=$((BASE_PORT + i)); [ "$i" = 11 ] && port=$LM_BENCH_UPSTREAM_PORT
  port_free "$port" || { echo "wrk.sh: port $port is busy" >&2; exit 1; }
done

for backend in $BACKENDS; do
  case $backend in
    respond) export LM_BENCH_BACKEND='respond "ok"' ;;
    proxy)
      export LM_BENCH_BACKEND="reverse_proxy 127.0.0.1:$LM_BENCH_UPSTREAM_PORT"
      start_caddy "$HERE/caddy/upstream.Caddyfile" "$LM_BENCH_UPSTREAM_PORT" "$OUT/raw/upstream.log"
      UPSTREAM_PID=$CADDY_PID
      wait_up "$LM_BENCH_UPSTREAM_PORT"
      ;;
    *) echo "wrk.sh: unknown backend $backend" >&2; exit 1 ;;
  esac
  declare -A PID_OF=() PORT_OF=()
  for i in $(seq 0 $((NCFG - 1))); do
    cfg=${CONFIGS[$i]}
    PORT_OF[$cfg]=$((BASE_PORT + i))
    start_caddy "$HERE/caddy/$cfg.Caddyfile" "${PORT_OF[$cfg]}" "$OUT/raw/$backend-$cfg.caddy.log"
    PID_OF[$cfg]=$CADDY_PID
  done
  for cfg in "${CONFIGS[@]}"; do
    url=http://127.0.0.1:${PORT_OF[$cfg]}$URL_PATH
    wait_up "${PORT_OF[$cfg]}"
    body=$(curl -s "$url")
    [ "$body" = ok ] || { echo "wrk.sh: $backend/$cfg answered '$body', want 'ok'" >&2; exit 1; }
    wrk -t"${SHAPES[0]%x*}" -c"${SHAPES[0]#*x}" -d"$WARMUP" "$url" >/dev/null
  done
  for rep in $(seq "$REPS"); do
    for shape in "${SHAPES[@]}"; do
      threads=${shape%x*} conns=${shape#*x}
      # Rotate the order each round (A B C, B C A, C A B, ...) so no config
      # always runs first after a pause or last in a hot streak.
      for k in $(seq 0 $((NCFG - 1))); do
        cfg=${CONFIGS[$(((k + rep - 1) % NCFG))]}
        pid=${PID_OF[$cfg]} port=${PORT_OF[$cfg]}
        tag=$backend-$shape-$cfg-$rep
        f=$OUT/raw/$tag.wrk.txt
        load=$(cut -d' ' -f1 /proc/loadavg)
        c0=$(cpu_s "$pid")
        wrk -t"$threads" -c"$conns" -d"$DUR" --latency "http://127.0.0.1:$port$URL_PATH" >"$f"
        c1=$(cpu_s "$pid")
        n=$(counted "$cfg" "$port")
        rps=$(awk '/^Requests\/sec:/ { print $2 }' "$f")
        p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$f")")
        p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$f")")
        non2xx=$(awk '/Non-2xx/ { print $NF }' "$f"); non2xx=${non2xx:-0}
        serr=$(awk '/Socket errors/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$f"); serr=${serr:-0}
        nreq=$(awk '/requests in/ { print $1 }' "$f")
        cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$backend" "$cfg" "$rep" "$k" \
          "$rps" "$p50" "$p99" "$non2xx" "$serr" "$n" "$load" "$nreq" "$cpu" "$shape" >>"$ROWS"
        echo "wrk: $tag  $rps req/s  p99 ${p99} ms  caddy cpu ${cpu}s/${nreq} req  counted=$n  load=$load"
      done
    done
  done
  for cfg in "${CONFIGS[@]}"; do stop_pid "${PID_OF[$cfg]}"; done
  if [ "$backend" = proxy ]; then stop_pid "$UPSTREAM_PID"; fi
done
