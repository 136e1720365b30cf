#!/usr/bin/env bash
# Part of the Go stage (tests/go.sh): a Go build cache shared by two
# checkouts, or kept across a libmetrics change, must not hand one build the
# other's cgo package.
#
# Go keys a cgo package on its sources and the CGO_* variables, not on what
# pkg-config printed (`go help cache`). ./xcaddy.sh build records the same
# run-time path ($ORIGIN/lib) in every checkout, so before lm_go_env put a
# fingerprint of the install into CGO_CPPFLAGS, a second checkout reused the
# first one's package with its -L: once the first checkout was gone, the link
# failed with "cannot find -lmetrics" (CI, 2026-12-01).
#
# This builds the plugin's test binary (-race, whose dependencies go.sh has
# just compiled) as ./xcaddy.sh build would, against a copy of the install
# in checkout A, deletes A, then builds against a copy in checkout B, and
# requires the second link to succeed and to name B's library directory.
# Then, in B: building again reuses the compiled plugin, and building after
# a change to libmetrics.h compiles it again (the old header's cgo stubs
# are not reused).
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../xcaddy.sh
source ./xcaddy.sh

fail() { echo "go cache key: $*"; exit 1; }
[ -d "$LM_PREFIX/lib/pkgconfig" ] || fail "no libmetrics install in $LM_PREFIX (run lm_build_libmetrics first)"
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# A copy of the install at $1, its pkg-config files naming their new place.
install_copy() {
  mkdir -p "$1" && cp -a "$LM_PREFIX"/. "$1"/ &&
    sed -i "s|^prefix=.*|prefix=$1|" "$1"/lib/pkgconfig/*.pc
}

# Links the test binary against the install at $1 into $2, with the
# environment ./xcaddy.sh build uses; go's -x output goes to $2.log.
link_against() {
  env -u PKG_CONFIG_PATH -u CGO_CPPFLAGS -u CGO_LDFLAGS LM_PREFIX_COPY="$1" OUT="$2" bash -c '
    source ./xcaddy.sh && LM_PREFIX=$LM_PREFIX_COPY && lm_go_env "\$ORIGIN/lib" &&
      cd caddymodule && go test -race -c -x -o "$OUT" . 2>"$OUT.log"'
}

install_copy "$tmp/a/prefix" && install_copy "$tmp/b/prefix" || fail "could not copy $LM_PREFIX"
link_against "$tmp/a/prefix" "$tmp/a.test" || { tail -20 "$tmp/a.test.log"; fail "the link against checkout A failed"; }
rm -rf "$tmp/a"
link_against "$tmp/b/prefix" "$tmp/b.test" || {
  grep -E 'cannot find|ld returned' "$tmp/b.test.log"
  fail "the link against checkout B failed after checkout A was deleted: the cgo package was reused from A"
}
grep -q -- "-L$tmp/b/prefix/lib" "$tmp/b.test.log" || fail "the link against checkout B does not search $tmp/b/prefix/lib"
grep -q -- "-L$tmp/a/prefix/lib" "$tmp/b.test.log" && fail "the link against checkout B still searches checkout A's $tmp/a/prefix/lib"
echo "go cache key: a second checkout's build links its own libmetrics after the first checkout is gone"

# The plugin's cgo step, in go -x's log of a build that compiled it.
compiled_plugin() { grep -q -- '/cgo .*-importpath github.com/routemetrics/caddy-routemetrics ' "$1"; }
compiled_plugin "$tmp/b.test.log" || fail "go -x's log does not show the plugin's cgo step (did the log format change?)"
link_against "$tmp/b/prefix" "$tmp/b2.test" || { tail -20 "$tmp/b2.test.log"; fail "the second build in checkout B failed"; }
compiled_plugin "$tmp/b2.test.log" && fail "an unchanged install compiled the plugin again (the cache key is not stable)"
echo "/* a change */" >>"$tmp/b/prefix/include/libmetrics.h"
link_against "$tmp/b/prefix" "$tmp/b3.test" || { tail -20 "$tmp/b3.test.log"; fail "the build after a header change failed"; }
compiled_plugin "$tmp/b3.test.log" || fail "a changed libmetrics.h did not compile the plugin again: its old cgo stubs were reused"
echo "go cache key: an unchanged install reuses the compiled plugin; a changed libmetrics.h compiles it again"
