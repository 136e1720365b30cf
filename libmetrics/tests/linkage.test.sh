#!/usr/bin/env bash
# What the shipped libraries are, checked on the built files:
#  - the core, libmetrics.so, does not link libcmark (nor any library beyond
#    libc, libm, libpthread and libprotobuf-c, which encodes the protobuf
#    exposition); libmetrics_report.so links libcmark and libmetrics.so.N;
#  - each exports exactly the functions its header declares with LM_API
#    (every one starts with lm_, none with the internal lm__ prefix), so
#    nothing hidden leaks and nothing declared is missing;
#  - a test that uses only libmetrics.h loads libmetrics.so.N and not
#    libcmark; the pkg-config files say the same.
# usage: linkage.test.sh BUILD_DIR
set -euo pipefail
BUILD=$(cd "${1:?usage: linkage.test.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
INCLUDE=$HERE/../include
# The soname's number is the header's major version.
MAJOR=$(sed -n 's/^#define LM_VERSION_MAJOR \([0-9]*\)$/\1/p' "$INCLUDE/libmetrics.h")
[ -n "$MAJOR" ] || { echo "FAIL: no LM_VERSION_MAJOR in $INCLUDE/libmetrics.h"; exit 1; }
CORE=$BUILD/libmetrics.so.$MAJOR
REPORT=$BUILD/libmetrics_report.so.$MAJOR
fail() { echo "FAIL: $*"; exit 1; }

needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort; }

echo "--- NEEDED entries"
core_needed=$(needed "$CORE")
report_needed=$(needed "$REPORT")
echo "libmetrics.so.$MAJOR: $(echo $core_needed)"
echo "libmetrics_report.so.$MAJOR: $(echo $report_needed)"
grep -q cmark <<<"$core_needed" && fail "libmetrics.so.$MAJOR links libcmark"
while read -r lib; do
  case $lib in
    libc.so.* | libm.so.* | libpthread.so.* | ld-linux* | libprotobuf-c.so.*) ;;
    lib[amt]san.so.* | libubsan.so.* | libgcc_s.so.* | libstdc++.so.*) ;; # sanitizer builds
    *) fail "libmetrics.so.$MAJOR needs $lib beyond libc, libm, libpthread and libprotobuf-c" ;;
  esac
done <<<"$core_needed"
grep -q '^libcmark' <<<"$report_needed" || fail "libmetrics_report.so.$MAJOR does not link libcmark"
grep -qx "libmetrics.so.$MAJOR" <<<"$report_needed" || fail "libmetrics_report.so.$MAJOR does not link libmetrics.so.$MAJOR"

echo "--- exported functions against the headers' LM_API declarations"
declared() { grep -h '^LM_API' "$@" | sed 's/(.*//' | awk '{print $NF}' | tr -d '*' | sort; }
exported() { nm -D --defined-only "$1" | awk '$2 == "T" || $2 == "D" || $2 == "B" || $2 == "R" {print $3}' | sort; }
check_exports() { # library, header...
  local lib=$1; shift
  local want got
  want=$(declared "$@")
  got=$(exported "$lib")
  [ -n "$want" ] || fail "no LM_API declarations found in $*"
  if [ "$want" != "$got" ]; then
    echo "declared but not exported:"; comm -23 <(echo "$want") <(echo "$got")
    echo "exported but not declared:"; comm -13 <(echo "$want") <(echo "$got")
    fail "$(basename "$lib") exports differ from $(basename -a "$@" | tr '\n' ' ')"
  fi
  grep -v '^lm_' <<<"$got" && fail "$(basename "$lib") exports a symbol without the lm_ prefix"
  grep '^lm__' <<<"$got" && fail "$(basename "$lib") exports an internal lm__ symbol"
  echo "$(basename "$lib"): $(wc -l <<<"$got") functions, exactly the declared ones"
}
check_exports "$CORE" "$INCLUDE/libmetrics.h"
check_exports "$REPORT" "$INCLUDE/libmetrics_report.h"
grep -v '^lm_report' <<<"$(exported "$REPORT")" && fail "libmetrics_report exports a symbol outside lm_report"

echo "--- a program using libmetrics.h only"
prog=$BUILD/libmetrics/tests/test_expo
resolved=$(env -u LD_LIBRARY_PATH ldd "$prog")
grep -q "libmetrics.so.$MAJOR => $BUILD/" <<<"$resolved" || fail "test_expo does not load $BUILD/libmetrics.so.$MAJOR:
$resolved"
grep -q cmark <<<"$resolved" && fail "test_expo loads libcmark:
$resolved"
echo "test_expo loads libmetrics.so.$MAJOR from the build tree and no libcmark"

echo "--- pkg-config files"
export PKG_CONFIG_PATH=$BUILD
[ -z "$(pkg-config --print-requires libmetrics)" ] ||
  fail "libmetrics.pc requires $(pkg-config --print-requires libmetrics)"
[ "$(pkg-config --print-requires-private libmetrics)" = libprotobuf-c ] ||
  fail "libmetrics.pc requires privately $(pkg-config --print-requires-private libmetrics), not libprotobuf-c"
pkg-config --print-requires libmetrics-report | grep -q '^libmetrics' || fail "libmetrics-report.pc does not require libmetrics"
pkg-config --print-requires-private libmetrics-report | grep -q '^libcmark' || fail "libmetrics-report.pc does not require libcmark"
libs=$(pkg-config --libs libmetrics)
grep -qw -- -lmetrics <<<"$libs" && ! grep -q cmark <<<"$libs" || fail "pkg-config --libs libmetrics: $libs"
echo "libmetrics.pc: libprotobuf-c (private); libmetrics-report.pc: libmetrics, libcmark (private)"
echo "linkage: ok"
