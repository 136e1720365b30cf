#!/usr/bin/env bash
# Go stage: the caddymodule plugin against a freshly built libmetrics.
# Builds libmetrics with the same function ./xcaddy.sh uses (into
# build/libmetrics-prefix and build/lib), then in caddymodule/: gofmt must
# list nothing, go vet must pass, and go test -race runs every test with the
# race detector; then the native histogram differential check is fuzzed for
# FUZZ_SECONDS (default 30), and tests/go_cache_key.sh proves a build cache
# shared by two checkouts links each against its own libmetrics. Extra
# arguments go to go test (and skip the fuzzing and the cache check), e.g.
# tests/go.sh -v -run Caddyfile.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../xcaddy.sh
source ./xcaddy.sh

lm_ensure_go || exit 1
echo "--- libmetrics"
lm_build_libmetrics || exit 1
# Test binaries live in temporary directories, so they find the library by
# an absolute run-time path rather than $ORIGIN.
lm_go_env "$LM_PREFIX/lib"
cd caddymodule || exit 1

echo "--- gofmt -l"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "go: not gofmt-formatted:"; echo "$unformatted"; exit 1
fi
echo "gofmt: clean"

echo "--- go vet ./..."
go vet ./... || { echo "go: go vet failed"; exit 1; }
echo "go vet: clean"

echo "--- go test -race -count=1${*:+ $*} ./..."
go test -race -count=1 "$@" ./...
rc=$?
if [ $rc -eq 0 ] && [ $# -eq 0 ]; then
  # The native histogram differential check against client_golang, fuzzed
  # for a bounded time beyond its seeds (native_diff_test.go).
  FUZZ_SECONDS=${FUZZ_SECONDS:-30}
  echo "--- go test -fuzz FuzzNativeDifferential -fuzztime ${FUZZ_SECONDS}s"
  timeout --kill-after=30 $((FUZZ_SECONDS + 600)) \
    go test -run '^$' -fuzz '^FuzzNativeDifferential$' -fuzztime "${FUZZ_SECONDS}s" -parallel 2 .
  rc=$?
fi
if [ $rc -eq 0 ] && [ $# -eq 0 ]; then
  echo "--- a Go build cache shared by two checkouts (tests/go_cache_key.sh)"
  ../tests/go_cache_key.sh
  rc=$?
fi
[ $rc -eq 0 ] && echo "go: all Go checks passed" || echo "go: go test failed (rc=$rc)"
exit $rc
