#!/usr/bin/env bash
# Independent checks of the exposition produced by expo_dump (a rich,
# hostile registry): promtool (parse + lint) on text 0.0.4, the strict
# prometheus_client OpenMetrics parser, our structure checker on both, a
# cross-format comparison of every sample, and proof that the structure
# checker rejects broken bodies.
# usage: expo_parsers.test.sh BUILD_DIR
set -euo pipefail
BUILD=${1:?usage: expo_parsers.test.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DUMP=$BUILD/libmetrics/tests/expo_dump
CHECK=$ROOT/tests/tools/check_exposition.py
PY=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$DUMP" text >"$tmp/body.prom"
"$DUMP" openmetrics >"$tmp/body.om"
echo "expo_dump: text $(wc -c <"$tmp/body.prom") bytes, openmetrics $(wc -c <"$tmp/body.om") bytes"

echo "--- promtool check metrics (parse and lint)"
if ! promtool check metrics <"$tmp/body.prom" >"$tmp/promtool.out" 2>&1; then
  cat "$tmp/promtool.out"
  echo "FAIL: promtool check metrics rejected the text exposition"
  exit 1
fi
cat "$tmp/promtool.out"
echo "promtool: clean"

echo "--- prometheus_client parsers and cross-format comparison"
"$PY" - "$tmp/body.prom" "$tmp/body.om" <<'EOF'
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families as text_parse

text = open(sys.argv[1], encoding="utf-8").read()
om = open(sys.argv[2], encoding="utf-8").read()
om_fams = list(om_parse(om))  # strict: raises on any violation
text_fams = list(text_parse(text))

def samples(fams):
    out = {}
    for f in fams:
        for s in f.samples:
            if s.name.startswith("process_"):
                continue  # differs between the two expo_dump processes
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, "duplicate sample %r" % (key,)
            out[key] = s.value
    return out

t, o = samples(text_fams), samples(om_fams)
problems = []
for k in o:
    if k not in t:
        problems.append("only in OpenMetrics: %r" % (k,))
    elif t[k] != o[k]:
        problems.append("value differs for %r: text %r, OpenMetrics %r" % (k, t[k], o[k]))
# OpenMetrics leaves out _sum/_count where a sum would be negative or the
# buckets have negative thresholds; nothing else may be missing.
allowed = {("app_temperature_delta_celsius_sum", ()), ("app_temperature_delta_celsius_count", ()),
           ("app_clock_skew_seconds_sum", (("route", "behind"),)),
           ("app_clock_skew_seconds_count", (("route", "behind"),))}
for k in t:
    if k not in o and k not in allowed:
        problems.append("only in text: %r" % (k,))
for k in allowed:
    if k not in t:
        problems.append("text lacks %r" % (k,))
    if k in o:
        problems.append("OpenMetrics should omit %r" % (k,))

names = {f.name for f in om_fams}
for want in ("app_requests", "app_latency_seconds", "app_logins", "libmetrics_series_folded",
             "web_http_requests", "web_http_request_duration_seconds", "process_cpu_seconds",
             "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"):
    if want not in names:
        problems.append("OpenMetrics lacks family %s" % want)
for bad in ("app_never_used",):
    if bad in names:
        problems.append("family without series %s was exposed" % bad)

# Hostile label values survive escaping exactly (after the core's sanitising).
paths = {dict(k[1]).get("path") for k in o if k[0] == "app_requests_total"}
for want in ('/q"uote', "C:\\back\\slash\\", "/new\nline\n", "/nul\ufffdbyte",
             "/bad\ufffd\ufffd utf8 \ufffd(", "\\\"\n", "/unicode caf\u00e9 \u20ac \U0001F600"):
    if want not in paths:
        problems.append("label value %r not found in OpenMetrics (got %r)" % (want, sorted(paths)))
help_ = {f.name: f.documentation for f in om_fams}
if help_.get("app_requests") != 'Requests with "hostile" labels: back\\slash, new\nline.':
    problems.append("HELP round trip: %r" % help_.get("app_requests"))
thelp = {f.name: f.documentation for f in text_fams}
if thelp.get("app_requests") != 'Requests with "hostile" labels: back\\slash, new\nline.':
    problems.append("text HELP round trip: %r" % thelp.get("app_requests"))
if o.get(("libmetrics_series_folded_total", (("family", "app_logins_total"),))) != 5:
    problems.append("folded counter of app_logins_total is not 5")
if o.get(("app_logins_total", (("user", "_overflow"),))) != 5:
    problems.append("overflow series of app_logins_total is not 5")
if problems:
    print("\n".join(problems))
    sys.exit(1)
print("parsers: OpenMetrics %d families, text %d families, %d samples agree"
      % (len(om_fams), len(text_fams), len(o)))
EOF

echo "--- check_exposition.py"
"$PY" "$CHECK" --format text "$tmp/body.prom"
"$PY" "$CHECK" --format openmetrics "$tmp/body.om"
"$PY" "$CHECK" --format openmetrics - <"$tmp/body.om" >/dev/null

echo "--- check_exposition.py rejects broken bodies"
CHECK="$CHECK" "$PY" - "$tmp" <<'EOF'
import os, re, sys
d = sys.argv[1]
om = open(os.path.join(d, "body.om"), "rb").read()
text = open(os.path.join(d, "body.prom"), "rb").read()

def sub_once(body, pat, rep):
    new, n = re.subn(pat, rep, body, count=1, flags=re.M)
    assert n == 1, pat
    return new

lines = om.split(b"\n")
cases = {
    "not cumulative": (om, lambda b: sub_once(b, rb'^(app_latency_seconds_bucket\{route="home",le="0.005"\}) 4$', rb"\1 1")),
    "+Inf != _count": (om, lambda b: sub_once(b, rb'^(app_latency_seconds_count\{route="home"\}) 10$', rb"\1 11")),
    "no +Inf": (text, lambda b: sub_once(b, rb'^app_body_size_bytes_bucket\{le="\+Inf"\} 14\n', b"")),
    "le not increasing": (text, lambda b: sub_once(b, rb'le="1000.0"', b'le="10.0"')),
    "duplicate series": (om, lambda b: sub_once(b, rb'^(app_up 1\n)', rb"\1\1")),
    "interleaved": (om, lambda b: b.replace(b"# EOF\n", b'app_up 2\n# EOF\n')),
    "missing EOF": (om, lambda b: b[: -len(b"# EOF\n")]),
    "two EOF": (om, lambda b: b + b"# EOF\n"),
    "bad UTF-8": (text, lambda b: sub_once(b, rb"caf\xc3\xa9", b"caf\xe9")),
    "TYPE after samples": (text, lambda b: sub_once(b, rb"^(app_up 1\n)", rb"\1# TYPE app_up gauge\n")),
    "raw newline in value": (text, lambda b: sub_once(b, rb'path="/plain"', b'path="/pl\nain"')),
    "unescaped quote (OM HELP)": (om, lambda b: sub_once(b, rb"^# HELP app_up Always 1.", b'# HELP app_up "Always" 1.')),
    "histogram series interleaved": (text, lambda b: sub_once(b, rb'^(app_latency_seconds_sum\{route="home"\} .*\n)', rb'\1app_latency_seconds_bucket{route="zzz",le="+Inf"} 0\n')),
    "negative counter": (om, lambda b: sub_once(b, rb'^app_logins_total\{user="user0"\} 1$', b'app_logins_total{user="user0"} -1')),
    "name clash": (om, lambda b: sub_once(b, rb"^app_up 1$", b'app_up 1\napp_logins_total{user="x"} 1')),
}
import subprocess
failed = 0
for name, (body, mutate) in cases.items():
    fmt = "openmetrics" if body is om else "text"
    bad = mutate(body)
    p = subprocess.run(["/usr/bin/python3", os.environ.get("CHECK"), "--format", fmt, "-"],
                       input=bad, capture_output=True)
    if p.returncode != 1:
        failed += 1
        print("checker accepted a broken body (%s): rc=%d %s" % (name, p.returncode, p.stdout.decode()))
    else:
        first = p.stdout.decode().splitlines()[0]
        print("rejected (%s): %s" % (name, first))
sys.exit(1 if failed else 0)
EOF
echo "expo_parsers: all checks passed"
