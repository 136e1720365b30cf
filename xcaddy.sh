#!/usr/bin/env bash
# Builds and runs the custom Caddy with the route_metrics plugin.
#
#   ./xcaddy.sh build [--force]  libmetrics (CMake) -> build/lib, then
#                                build/caddy with xcaddy (CGO_ENABLED=1); the
#                                xcaddy step is skipped while build/caddy is
#                                newer than the Go sources and libmetrics.h
#   ./xcaddy.sh run              build as above, then run Caddyfile.example in
#                                the foreground
#   ./xcaddy.sh validate FILE    build as above, then `caddy validate` FILE
#   ./xcaddy.sh clean            remove what this script built
#
# libmetrics is linked dynamically, so a change to its .c files only needs
# the library rebuilt (always done, incremental); build/caddy is rebuilt
# when the plugin's Go code or the C header changes.
#
# build/caddy finds build/lib/libmetrics.so.1 through its RUNPATH
# ($ORIGIN/lib), so it runs without LD_LIBRARY_PATH; keep build/lib next to
# it when you copy it elsewhere (or install libmetrics system-wide).
#
# tests/go.sh sources this file for lm_build_libmetrics and lm_go_env; when
# sourced, nothing runs.

CADDY_VERSION=v2.11.9
XCADDY_VERSION=v0.4.5
LM_DEBIAN_PACKAGES=(cmake gcc make pkg-config libcmark-dev libprotobuf-c-dev protobuf-c-compiler)
# CMake build type of libmetrics (Release: -O3; the library builds warning-free
# under -Werror at every level). Override, e.g. LM_BUILD_TYPE=RelWithDebInfo,
# for symbols in a debugger.
LM_BUILD_TYPE=${LM_BUILD_TYPE:-Release}

LM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LM_BUILD=$LM_ROOT/build
LM_CMAKE_DIR=$LM_BUILD/libmetrics-cmake   # CMake build tree
LM_PREFIX=$LM_BUILD/libmetrics-prefix     # `cmake --install` target: lib/, include/, lib/pkgconfig/
LM_LIB=$LM_BUILD/lib                      # what build/caddy loads at run time
LM_TOOLS=$LM_BUILD/tools

say() { printf '%s\n' "xcaddy.sh: $*"; }
die() { printf '%s\n' "xcaddy.sh: $*" >&2; exit 1; }

# Installs the Debian packages the build needs when root; otherwise prints
# the exact command and fails.
lm_ensure_packages() {
  local missing=() p
  for p in "${LM_DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "missing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    say "not root; run this, then try again:"
    printf '  sudo apt-get update && sudo apt-get install -y --no-install-recommends %s\n' "${missing[*]}"
    return 1
  fi
  say "installing them: apt-get update && apt-get install -y ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

lm_ensure_go() {
  command -v go >/dev/null 2>&1 || {
    say "Go is not on PATH; Caddy $CADDY_VERSION needs Go 1.26 or newer (https://go.dev/dl/)"
    return 1
  }
  local v
  v=$(go env GOVERSION) || return 1
  case $v in
    go1.2[6-9]* | go1.[3-9][0-9]* | go[2-9]*) ;;
    *) say "found $v; Caddy $CADDY_VERSION needs Go 1.26 or newer"; return 1 ;;
  esac
}

# Builds libmetrics ($LM_BUILD_TYPE), installs it into build/libmetrics-prefix
# (headers and libmetrics.pc for cgo) and copies the shared library into
# build/lib (for build/caddy's RUNPATH). Fast when nothing changed.
lm_build_libmetrics() {
  lm_ensure_packages || return 1
  say "building libmetrics (CMake, $LM_BUILD_TYPE) in ${LM_CMAKE_DIR#"$LM_ROOT"/}"
  mkdir -p "$LM_BUILD"
  cmake -S "$LM_ROOT" -B "$LM_CMAKE_DIR" -DCMAKE_BUILD_TYPE="$LM_BUILD_TYPE" \
    -DCMAKE_INSTALL_PREFIX="$LM_PREFIX" -DLM_BUILD_TESTS=OFF -DLM_BUILD_BENCH=OFF \
    >"$LM_CMAKE_DIR.configure.log" 2>&1 ||
    { cat "$LM_CMAKE_DIR.configure.log"; say "CMake configure failed"; return 1; }
  cmake --build "$LM_CMAKE_DIR" --target metrics -j "$(nproc)" >"$LM_CMAKE_DIR.build.log" 2>&1 ||
    { cat "$LM_CMAKE_DIR.build.log"; say "libmetrics build failed"; return 1; }
  cmake --install "$LM_CMAKE_DIR" >/dev/null || { say "cmake --install failed"; return 1; }
  mkdir -p "$LM_LIB"
  local f
  for f in "$LM_PREFIX"/lib/libmetrics.so*; do
    # Copy only what changed: a running build/caddy keeps its mapping either
    # way, but an unchanged library keeps its timestamp.
    if [ -L "$f" ] || ! cmp -s "$f" "$LM_LIB/$(basename "$f")"; then
      rm -f "$LM_LIB/$(basename "$f")" && cp -P "$f" "$LM_LIB"/ || return 1
    fi
  done
  say "libmetrics $(sed -n 's/^Version: //p' "$LM_PREFIX/lib/pkgconfig/libmetrics.pc") -> ${LM_LIB#"$LM_ROOT"/}/"
}

# Exports the cgo environment for building against build/libmetrics-prefix.
# $1 is the run-time search path to record in the binary.
lm_go_env() {
  export CGO_ENABLED=1
  export PKG_CONFIG_PATH=$LM_PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
  export CGO_LDFLAGS="-Wl,--enable-new-dtags -Wl,-rpath,$1${CGO_LDFLAGS:+ $CGO_LDFLAGS}"
}

# Builds the pinned xcaddy once into build/tools. `go install pkg@version`
# is avoided: it asks the module proxy for the version list (deprecation
# check), which some proxies refuse.
lm_ensure_xcaddy() {
  XCADDY=$LM_TOOLS/xcaddy
  if [ -x "$XCADDY" ] && [ "$(cat "$XCADDY.version" 2>/dev/null)" = "$XCADDY_VERSION" ]; then
    return 0
  fi
  say "building xcaddy $XCADDY_VERSION into ${LM_TOOLS#"$LM_ROOT"/}"
  local d=$LM_TOOLS/xcaddy-src
  rm -rf "$d" && mkdir -p "$d" || return 1
  (
    cd "$d" &&
      go mod init xcaddy-build >/dev/null 2>&1 &&
      GOFLAGS=-mod=mod go get "github.com/caddyserver/xcaddy/cmd@$XCADDY_VERSION" &&
      GOFLAGS=-mod=mod CGO_ENABLED=0 go build -o "$XCADDY" github.com/caddyserver/xcaddy/cmd/xcaddy
  ) || { say "could not build xcaddy $XCADDY_VERSION"; return 1; }
  echo "$XCADDY_VERSION" >"$XCADDY.version"
}

cmd_build() {
  local force=${1:-}
  lm_ensure_go || exit 1
  lm_build_libmetrics || exit 1
  if [ "$force" != --force ] && ! needs_build; then
    say "build/caddy is newer than caddymodule/ and libmetrics.h: xcaddy step skipped (build --force redoes it)"
    cmd_check_binary
    return 0
  fi
  lm_ensure_xcaddy || exit 1
  (
    # CGO_ENABLED=1 exactly: xcaddy builds with cgo off otherwise, and the
    # plugin cannot exist without it. xcaddy's default go build flags are
    # kept (XCADDY_GO_BUILD_FLAGS would replace them).
    lm_go_env '$ORIGIN/lib'
    say "xcaddy build $CADDY_VERSION --with github.com/routemetrics/caddy-routemetrics=./caddymodule (CGO_ENABLED=1, RUNPATH \$ORIGIN/lib)"
    cd "$LM_ROOT" &&
      "$XCADDY" build "$CADDY_VERSION" \
        --with github.com/routemetrics/caddy-routemetrics@v0.0.0=./caddymodule \
        --output "$LM_BUILD/caddy.new"
  ) || { rm -f "$LM_BUILD/caddy.new"; die "xcaddy build failed"; }
  mv -f "$LM_BUILD/caddy.new" "$LM_BUILD/caddy"
  cmd_check_binary
}

# Proves the binary loads our libmetrics by RUNPATH, not by luck.
cmd_check_binary() {
  local caddy=$LM_BUILD/caddy
  say "checking ${caddy#"$LM_ROOT"/}"
  local dyn resolved
  dyn=$(readelf -d "$caddy") || die "readelf -d build/caddy failed"
  grep -qiE 'runpath.*\$ORIGIN/lib' <<<"$dyn" ||
    die "build/caddy has no RUNPATH \$ORIGIN/lib: $(grep -iE 'rpath|runpath' <<<"$dyn")"
  resolved=$(env -u LD_LIBRARY_PATH ldd "$caddy" | awk '/libmetrics/ {print $1, $2, $3}') && [ -n "$resolved" ] || die "build/caddy does not link libmetrics"
  case $resolved in
    *"$LM_LIB/libmetrics.so"*) ;;
    *) die "build/caddy resolves libmetrics elsewhere: $resolved" ;;
  esac
  local modules # captured first: grep -q closing the pipe early would fail pipefail
  modules=$("$caddy" list-modules 2>/dev/null) || die "build/caddy list-modules failed"
  grep -qx 'http.handlers.route_metrics' <<<"$modules" && grep -qx 'http.handlers.metrics_endpoint' <<<"$modules" ||
    die "build/caddy lacks http.handlers.route_metrics or http.handlers.metrics_endpoint"
  say "ok: $("$caddy" version | cut -d' ' -f1), RUNPATH \$ORIGIN/lib, $resolved"
}

# True when build/caddy is missing or older than the sources compiled into
# it (the plugin's Go code and the C header it includes).
needs_build() {
  [ -x "$LM_BUILD/caddy" ] || return 0
  [ -n "$(find "$LM_ROOT/caddymodule" "$LM_ROOT/libmetrics/include" -newer "$LM_BUILD/caddy" \
    \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' -o -name '*.h' \) ! -name '*_test.go' \
    -print -quit)" ]
}

cmd_run() {
  cmd_build
  say "starting: build/caddy run --config Caddyfile.example --adapter caddyfile"
  say "site http://127.0.0.1:8080 (/, /api/*, /contact, /metrics for private clients), metrics http://127.0.0.1:9091/metrics, demo app :8081; Ctrl-C stops"
  cd "$LM_ROOT" && exec "$LM_BUILD/caddy" run --config Caddyfile.example --adapter caddyfile
}

cmd_validate() {
  [ $# -eq 1 ] || die "usage: ./xcaddy.sh validate FILE"
  cmd_build
  say "build/caddy validate --config $1 --adapter caddyfile"
  exec "$LM_BUILD/caddy" validate --config "$1" --adapter caddyfile
}

cmd_clean() {
  say "removing build/caddy, build/lib, ${LM_CMAKE_DIR#"$LM_ROOT"/}, ${LM_PREFIX#"$LM_ROOT"/}, build/tools"
  rm -rf "$LM_BUILD/caddy" "$LM_BUILD/caddy.new" "$LM_LIB" "$LM_CMAKE_DIR" "$LM_CMAKE_DIR".*.log \
    "$LM_PREFIX" "$LM_TOOLS"
}

usage() {
  sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case ${1:-} in
    build) shift; cmd_build "$@" ;;
    run) cmd_run ;;
    validate) shift; cmd_validate "$@" ;;
    clean) cmd_clean ;;
    -h | --help | help) usage ;;
    *) usage; exit 2 ;;
  esac
fi
