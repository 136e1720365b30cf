#!/usr/bin/env bash
# Runs the example FastAPI app (app/) behind Caddy with route_metrics, in
# the foreground; Ctrl-C stops both.
#
#   examples/fastapi/run.sh                 # one uvicorn worker
#   WORKERS=4 examples/fastapi/run.sh       # four
#
# It builds Caddy if needed (./xcaddy.sh build), makes the app's virtual
# environment (build/venv-fastapi-example, pinned requirements.txt, via
# tests/venv.sh), starts uvicorn on 127.0.0.1:8081 with the SQLite database
# in build/fastapi-example/, and runs build/caddy on ./Caddyfile: the site
# on :8080, Prometheus metrics on 127.0.0.1:9091/metrics.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
EXAMPLE=examples/fastapi
WORKERS=${WORKERS:-1}
case $WORKERS in ''|*[!0-9]*|0) echo "run.sh: WORKERS must be a positive number, not '$WORKERS'" >&2; exit 2 ;; esac

./xcaddy.sh build
PYTHON=$(tests/venv.sh "$EXAMPLE/requirements.txt" build/venv-fastapi-example | tail -n 1)
DATA=$ROOT/build/fastapi-example
mkdir -p "$DATA"

pids=()
stop() {
  trap - INT TERM EXIT
  echo "run.sh: stopping Caddy and uvicorn" >&2
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

echo "run.sh: uvicorn app.main:app, $WORKERS worker(s), on 127.0.0.1:8081; database $DATA/app.db" >&2
DATABASE_URL="sqlite:///$DATA/app.db" "$PYTHON" -m uvicorn app.main:app --app-dir "$EXAMPLE" \
  --host 127.0.0.1 --port 8081 --workers "$WORKERS" --no-access-log &
pids+=($!)
# Caddy starts once the app accepts connections, so that early requests
# reach the app instead of getting a 502.
for _ in $(seq 600); do
  (exec 3<>/dev/tcp/127.0.0.1/8081) 2>/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "run.sh: uvicorn exited during start-up" >&2; exit 1; }
  sleep 0.1
done
echo "run.sh: build/caddy run --config $EXAMPLE/Caddyfile (site :8080, metrics 127.0.0.1:9091/metrics)" >&2
build/caddy run --config "$EXAMPLE/Caddyfile" --adapter caddyfile &
pids+=($!)

# Until Ctrl-C, or until either of them exits on its own (then the other
# is stopped too, and its exit status is ours).
rc=0
wait -n "${pids[@]}" || rc=$?
exit "$rc"
