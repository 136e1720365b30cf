#!/usr/bin/env bash
# Builds Prometheus 3 (prometheus and promtool) from the Go module proxy into
# build/tools/prometheus3/, for the end-to-end tests that run against both
# Debian's Prometheus 2.42 (/usr/bin/prometheus) and this one.
#
#   tests/tools/prometheus3.sh          build unless already built at the pin
#   tests/tools/prometheus3.sh --force  rebuild
#
# The first build downloads the module graph (about a minute) and compiles
# for about 16 CPU-minutes: some 8 minutes on two idle cores, longer on a
# shared machine; with Go's build cache warm it only links (about 2
# minutes). Later runs find the binaries and return at once. CI starts from
# a fresh clone, so it pays the build once per ./tests/run.sh (tests/e2e.sh
# calls this script before pytest).
#
# `go install pkg@version` is avoided: it asks the proxy for the module's
# version list, which some proxies refuse. A throw-away module pins the
# version with `go get` and `go build` compiles from it (as xcaddy.sh does).
# No web UI assets are embedded (no `builtinassets` tag): the tests use the
# HTTP API only, and the UI answers with an error page. CGO_ENABLED=0 gives
# the pure-Go resolver the release build asks for with its `netgo` tag.
set -euo pipefail

# Prometheus publishes its Go module as v0.<major><minor>.<patch>: v0.316.0
# is Prometheus 3.16.0.
PROM3_MODULE=github.com/prometheus/prometheus
PROM3_MODULE_VERSION=v0.316.0
PROM3_VERSION=3.16.0

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEST=$ROOT/build/tools/prometheus3
SRC=$ROOT/build/tools/prometheus3-src
STAMP=$DEST/VERSION

say() { printf '%s\n' "prometheus3.sh: $*"; }
die() { printf '%s\n' "prometheus3.sh: $*" >&2; exit 1; }

if [ "${1:-}" != --force ] && [ -x "$DEST/prometheus" ] && [ -x "$DEST/promtool" ] &&
  [ "$(cat "$STAMP" 2>/dev/null)" = "$PROM3_MODULE_VERSION" ]; then
  say "Prometheus $PROM3_VERSION already built in ${DEST#"$ROOT"/} (--force rebuilds)"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "Go is not on PATH; Prometheus $PROM3_VERSION needs Go 1.26.7 or newer"

say "building prometheus and promtool $PROM3_VERSION ($PROM3_MODULE@$PROM3_MODULE_VERSION) into ${DEST#"$ROOT"/}"
say "the first time this takes about 16 CPU-minutes (module download and compile; ~8 min on 2 idle cores)"
t0=$(date +%s)
rm -rf "$SRC" "$DEST.new"
mkdir -p "$SRC" "$DEST.new"
cd "$SRC"
go mod init prometheus3-build >/dev/null 2>&1 || die "go mod init failed in $SRC"
say "go get $PROM3_MODULE/cmd/prometheus@$PROM3_MODULE_VERSION"
GOFLAGS=-mod=mod go get "$PROM3_MODULE/cmd/prometheus@$PROM3_MODULE_VERSION" >"$SRC/go-get.log" 2>&1 || {
  tail -20 "$SRC/go-get.log"
  die "go get $PROM3_MODULE@$PROM3_MODULE_VERSION failed (module proxy reachable? GOPROXY=$(go env GOPROXY))"
}

# The version ldflags are what the release build sets (.promu.yml), so
# `prometheus --version` and the build_info metric name the real version.
ldflags="-X github.com/prometheus/common/version.Version=$PROM3_VERSION"
ldflags+=" -X github.com/prometheus/common/version.Revision=$PROM3_MODULE_VERSION"
ldflags+=" -X github.com/prometheus/common/version.Branch=module-proxy"
ldflags+=" -X github.com/prometheus/common/version.BuildUser=caddy-routemetrics-tests"
for bin in prometheus promtool; do
  say "go build $PROM3_MODULE/cmd/$bin"
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -ldflags "$ldflags" \
    -o "$DEST.new/$bin" "$PROM3_MODULE/cmd/$bin" || die "go build of $bin failed"
done

"$DEST.new/prometheus" --version 2>&1 | head -1 | grep -q "version $PROM3_VERSION" ||
  die "the built prometheus does not report version $PROM3_VERSION: $("$DEST.new/prometheus" --version 2>&1 | head -1)"
"$DEST.new/promtool" --version 2>&1 | head -1 | grep -q "version $PROM3_VERSION" ||
  die "the built promtool does not report version $PROM3_VERSION"
echo "$PROM3_MODULE_VERSION" >"$DEST.new/VERSION"
rm -rf "$DEST"
mv "$DEST.new" "$DEST"
say "done in $(($(date +%s) - t0)) s: $("$DEST/prometheus" --version 2>&1 | head -1)"
