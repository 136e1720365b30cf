#!/usr/bin/env bash
# Go stage: the caddymodule plugin against a freshly built libmetrics.
# Builds libmetrics with the same function ./xcaddy.sh uses (into
# build/libmetrics-prefix and build/lib), then in caddymodule/: gofmt must
# list nothing, go vet must pass, and go test -race runs every test with the
# race detector. Extra arguments go to go test, e.g. tests/go.sh -v -run Caddyfile.
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
[ $rc -eq 0 ] && echo "go: all Go checks passed" || echo "go: go test failed (rc=$rc)"
exit $rc
