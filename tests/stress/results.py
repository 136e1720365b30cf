#!/usr/bin/env python3
"""Writes RESULTS.md from the last stress run's figures.

Each scenario of tests/stress publishes one line "scenario: k=v k=v ..."
into tests/out/stress/figures.txt (tests/stress.sh adds the Go fuzz line in
fuzz-figures.txt). This turns them into a Markdown page with the date, the
command, the machine and what each scenario asserts.

    tests/stress/results.py --command "STRESS_SCALE=1 tests/stress.sh" \\
        --out tests/stress/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "tests" / "out" / "stress"

# What each line proves (the test asserts it; the figures are the evidence).
ASSERTS = {
    "cardinality": "distinct path, Host and method (half random tokens) on every request to Caddyfile.example; "
                   "every request counted exactly once under the label set its answer predicts (requests, "
                   "histogram _count and body bytes per series), labels only from config, no folds, VmRSS "
                   "growth under the bound, exposition valid (promtool, OpenMetrics parser, check_exposition.py)",
    "cardinality_cap": "client-chosen statuses 200..999 on 3 routes x 9 methods: each HTTP family stops at its "
                       "10,000-series cap, series + libmetrics_series_folded_total == label sets sent, the "
                       "_overflow series holds exactly the rest, statuses >599 are status=\"other\", nothing lost",
    "hostile_bytes": "every byte 0x00-0xff in method, path (404 and proxied), header value and Host, plus 64 KiB "
                     "path/header/Host/method, >1 MiB headers, invalid UTF-8, bare CR/LF, obs-fold, NUL, "
                     "smuggling shapes: recorded == accepted series by series, rejected leave no trace, both "
                     "/metrics listeners valid in both formats, no request bytes in the exposition",
    "config_strings": "counter help with every byte, label values with C0, DEL, non-UTF-8, quotes, backslashes, "
                      "newlines, a route name with the same: both formats parse back to exactly the adapted "
                      "config after libmetrics' documented sanitising; exposition valid",
    "concurrency": "wrk -t2 -c64 with a counting script + 10 scrapers (text/OpenMetrics, both listeners): "
                   "counter deltas == requests wrk generated (in flight at stop included), every scrape "
                   "self-consistent (no duplicates, cumulative buckets, +Inf == _count), sample strict-parsed, "
                   "scrape p99 and max under the bounds",
    "reload": "reloads (admin /load, every 10th `caddy reload`) adding, renaming, removing routes, a second "
              "namespace, bucket changes, under load: all succeed, health probe outage under the bound, no "
              "counter decreases in any scrape (histograms too when buckets stay), no duplicate series, every "
              "answered request recorded under the route that answered, fds/goroutines/VmRSS back within "
              "bounds once settled",
    "reload_baseline": "the same reloads without route_metrics: requests failing during reloads (connections "
                       "reset/closed by the replaced server, Caddy's own behaviour) are no more frequent with "
                       "the module (<= 2x baseline + 1 point)",
    "bucket_churn": "flip the default namespace's buckets until a reload is refused: the refusal names the "
                    "exhausted limit, the running config keeps serving and counting exactly, a reload that keeps "
                    "the buckets still succeeds (a known limit: replaced histograms are never freed)",
    "fault_hangup": "scrapers hang up mid-body (plain/gzip, FIN/RST) on a ~5 MB exposition: descriptors and "
                    "goroutines back, next scrape whole and valid",
    "fault_slow_reader": "a scrape read 1 byte per 10 ms holds its handler (in-flight gauge == 1) while scrapes, "
                         "requests, requests creating new series and a reload adding a route keep normal latency",
    "fault_upstream": "upstream sleeping past response_header_timeout (504), RST (502), close (502), truncated "
                      "body (aborted: recorded 500), nothing listening (502): recorded exactly what was "
                      "answered, Caddy keeps serving",
    "caddyfile_fuzz": "go test -fuzz FuzzCaddyfile: both directives alone and through the real adapter; any "
                      "input is an error (ours naming file:line) or a config that validates and would provision",
}


def read_lines() -> list[str]:
    lines = []
    for name in ("fuzz-figures.txt", "figures.txt"):
        p = OUT / name
        if p.exists():
            lines += [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
    return lines


def pytest_summary() -> str:
    p = OUT / "junit.xml"
    if not p.exists():
        return "no junit.xml"
    suite = ET.parse(p).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    a = suite.attrib
    return "%s tests, %s failures, %s errors, %s skipped in %.0f s" % (
        a.get("tests"), a.get("failures"), a.get("errors"), a.get("skipped"), float(a.get("time", 0)))


def render(lines: list[str], command: str) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    try:
        load = "%.1f %.1f %.1f" % os.getloadavg()
    except OSError:
        load = "?"
    out = [
        "# Stress results",
        "",
        "Generated by `tests/stress/results.py` from the figures the last run printed",
        "(one line per scenario; each test asserts what the right column says, the",
        "figures are the evidence). Regenerate: run the command below, then",
        "`tests/stress/results.py --command '<command>' --out tests/stress/RESULTS.md`.",
        "",
        "- date: %s" % now,
        "- command: `%s`" % command,
        "- pytest: %s" % pytest_summary(),
        "- machine: %s, %d CPUs, Linux %s, load average at the end %s (shared with other work)" % (
            platform.machine(), os.cpu_count() or 0, platform.release(), load),
        "",
        "| scenario | figures | asserted |",
        "| --- | --- | --- |",
    ]
    for line in lines:
        name, _, figs = line.partition(": ")
        figs = " ".join("`%s`" % kv for kv in figs.split())
        out.append("| %s | %s | %s |" % (name, figs, ASSERTS.get(name, "")))
    missing = sorted(set(ASSERTS) - {ln.partition(": ")[0] for ln in lines})
    if missing:
        out += ["", "Scenarios without figures in this run (failed before publishing, or deselected): " +
                ", ".join(missing)]
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--command", default="tests/stress.sh")
    ap.add_argument("--out", default=str(OUT / "RESULTS.md"))
    args = ap.parse_args()
    lines = read_lines()
    if not lines:
        print("results.py: no figures in %s" % OUT, file=sys.stderr)
        return 1
    Path(args.out).write_text(render(lines, args.command))
    print("results.py: %d scenario lines -> %s" % (len(lines), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
