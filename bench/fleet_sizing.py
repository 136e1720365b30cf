#!/usr/bin/env python3
"""Sizing a fleet that ships Caddy's per-route metrics through Prometheus
agents to a central store: measures, prints and saves (bench/out/fleet/)
the figures behind the sizing table in deploy/README.md.

Part 1, per Caddy instance (no Prometheus needed): build/caddy runs a
generated Caddyfile with R named routes and B latency buckets; one request
per route x method x status creates every label set; then one scrape is
counted. Reported: series exposed, series kept by the agent's relabelling
(deploy/prometheus/prometheus-agent.yml), the formula that predicts them,
bytes per scrape as Prometheus fetches it (gzip) and plain, and samples per
second at a 15 s scrape interval.

Part 2, the central store: one Prometheus agent scrapes one Caddy (the
10-route site of part 1, under light traffic so counters move) as N virtual
instances (N file_sd targets on the same address, each its own `instance`
label) at the production interval of 15 s, and remote-writes to a central
Prometheus with the receiver. For each N the central's own metrics are
read after several scrapes: head series, resident memory, Go heap in use,
samples appended per second, and the agent's remote-write bytes per sample.
The slope between steps gives memory per series, extrapolated to 1,000
instances with the arithmetic printed.

Run (after ./xcaddy.sh build and tests/tools/prometheus3.sh):
  /usr/bin/python3 bench/fleet_sizing.py            # both parts, ~6 minutes
  /usr/bin/python3 bench/fleet_sizing.py --part 1   # ~20 s
  /usr/bin/python3 bench/fleet_sizing.py --prometheus 2   # Debian's 2.42 as central and agent
Every process it starts is stopped on exit; load is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import yaml  # noqa: E402

import helpers  # noqa: E402
import promserver  # noqa: E402

OUT = ROOT / "bench" / "out" / "fleet"
AGENT_CFG = ROOT / "deploy" / "prometheus" / "prometheus-agent.yml"
CENTRAL_CFG = ROOT / "deploy" / "prometheus" / "prometheus-central.yml"
PROD_INTERVAL = 15.0
DEFAULT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
STATUSES = [200, 201, 301, 404, 500, 503, 429, 302]

# (routes, methods, statuses, buckets) per row of part 1.
SHAPES = [(1, 1, 1, 14), (10, 2, 4, 14), (10, 2, 4, 8), (25, 3, 5, 14), (50, 2, 4, 14), (50, 4, 6, 20)]
# Part 2: the site shape and the numbers of virtual instances.
CENTRAL_SHAPE = (10, 2, 4, 14)
CENTRAL_STEPS = [50, 150, 300]
SETTLE_SCRAPES = 4  # scrapes of every target before a step is read


def caddyfile(routes: int, buckets: list[float], ports: dict) -> str:
    b = " ".join("%g" % x for x in buckets)
    handles = "\n".join(
        "\thandle /r%d/* {\n\t\troute_metrics r%d {\n\t\t\tbuckets %s\n\t\t}\n"
        "\t\trespond \"ok\" {http.request.uri.query.s}\n\t}" % (i, i, b) for i in range(routes))
    return """{
	admin localhost:%(admin)d
	auto_https off
}

http://127.0.0.1:%(site)d {
	bind 127.0.0.1
	route_metrics {
		buckets %(b)s
	}
%(handles)s
	handle {
		respond 404
	}
}

http://127.0.0.1:%(internal)d {
	bind 127.0.0.1
	metrics_endpoint
}
""" % dict(ports, b=b, handles=handles)


def start(routes: int, n_buckets: int, name: str):
    buckets = DEFAULT_BUCKETS if n_buckets == 14 else [round(0.001 * 1.6 ** i, 6) for i in range(n_buckets)]
    assert len(buckets) == n_buckets
    ports = {"site": helpers.free_port(), "internal": helpers.free_port(), "admin": helpers.free_port()}

    def probes(c):
        return {"internal": lambda: helpers.request("GET", c.internal_metrics_url, timeout=2).status == 200}
    return helpers.start_caddy(caddyfile(routes, buckets, ports), name=name, ports=ports, probes=probes)


def touch_label_sets(caddy, routes, methods, statuses):
    for r in range(routes):
        for m in METHODS[:methods]:
            for s in STATUSES[:statuses]:
                resp = helpers.request(m, caddy.url("site", "/r%d/x?s=%d" % (r, s)), timeout=10)
                assert resp.status == s, (r, m, s, resp.status)


def keep_regex():
    job = yaml.safe_load(AGENT_CFG.read_text())["scrape_configs"][0]
    (rule,) = [r for r in job["metric_relabel_configs"] if r.get("action") == "keep"]
    return re.compile(rule["regex"].strip())


def part1() -> list[dict]:
    keep = keep_regex()
    rows = []
    for routes, methods, statuses, n_buckets in SHAPES:
        c = start(routes, n_buckets, "fleet-sizing")
        try:
            touch_label_sets(c, routes, methods, statuses)
            s = helpers.scrape(c.internal_metrics_url, gzip_ok=True)
            assert s.content_encoding == "gzip", s.content_encoding
            names = [n for n, _ in s.values()]
            kept = [n for n in names if keep.fullmatch(n)]
            label_sets = routes * methods * statuses
            # Per label set: requests, request and response bytes, B buckets
            # + +Inf, sum, count. Per route: in-flight gauge (named routes
            # and `other`).
            http_series = label_sets * (n_buckets + 6) + (routes + 1)
            fixed = len(kept) - http_series
            rows.append({
                "routes": routes, "methods": methods, "statuses": statuses, "buckets": n_buckets,
                "label_sets": label_sets, "series_exposed": len(names), "series_kept": len(kept),
                "formula_http": http_series, "fixed_kept": fixed,
                "bytes_gzip": len(s.raw), "bytes_plain": len(s.body),
                "gzip_ratio": len(s.body) / len(s.raw),
                "samples_per_s_at_15s": len(kept) / PROD_INTERVAL,
            })
        finally:
            c.stop()
    fixed = {r["fixed_kept"] for r in rows}
    assert len(fixed) == 1, "kept series not predicted by the formula: %s" % rows
    return rows


class Traffic(threading.Thread):
    """Light paced traffic over every label set, so counters move while the
    central store ingests them (bounded by `seconds`)."""

    def __init__(self, caddy, shape, seconds, per_second=40.0):
        super().__init__(daemon=True)
        self.caddy, self.shape, self.seconds, self.per_second = caddy, shape, seconds, per_second
        self.quit = threading.Event()

    def run(self):
        routes, methods, statuses, _ = self.shape
        plan = [(m, "/r%d/x?s=%d" % (r, s)) for r in range(routes) for m in METHODS[:methods]
                for s in STATUSES[:statuses]]
        t0, i = time.monotonic(), 0
        while not self.quit.is_set() and time.monotonic() - t0 < self.seconds:
            m, p = plan[i % len(plan)]
            i += 1
            try:
                helpers.request(m, self.caddy.url("site", p), timeout=10)
            except Exception:  # noqa: BLE001 - traffic only moves counters
                pass
            self.quit.wait(max(0.0, t0 + i / self.per_second - time.monotonic()))


def one(values: dict, name: str) -> float:
    return sum(v for (n, _), v in values.items() if n == name)


def part2(version_id: str) -> dict:
    v = promserver.resolve(version_id)
    work = OUT / ("central-prometheus%s" % version_id)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    routes, methods, statuses, n_buckets = CENTRAL_SHAPE
    c = start(routes, n_buckets, "fleet-sizing-central")
    procs, traffic = [], None
    steps = []
    try:
        touch_label_sets(c, routes, methods, statuses)
        total_s = (len(CENTRAL_STEPS) + 1) * (SETTLE_SCRAPES + 2) * PROD_INTERVAL + 120
        traffic = Traffic(c, CENTRAL_SHAPE, total_s)
        traffic.start()
        port = helpers.free_port()
        ccfg = yaml.safe_load(CENTRAL_CFG.read_text())
        ccfg["rule_files"] = [str(CENTRAL_CFG.parent / f) for f in ccfg["rule_files"]]
        ccfg["scrape_configs"][0]["static_configs"] = [{"targets": ["127.0.0.1:%d" % port]}]
        central = promserver.Prometheus(v, work, ccfg, receiver=True, port=port, name="central")
        procs.append(central)
        tdir = work / "targets"
        tdir.mkdir()
        acfg = yaml.safe_load(AGENT_CFG.read_text())
        acfg["scrape_configs"][0]["file_sd_configs"][0]["files"] = [str(tdir / "*.json")]
        acfg["scrape_configs"][0]["file_sd_configs"][0]["refresh_interval"] = "5s"
        acfg["remote_write"][0]["url"] = central.base + "/api/v1/write"

        def write_targets(n):
            groups = [{"targets": ["127.0.0.1:%d" % c.ports["internal"]], "labels": {"instance": "caddy-%04d" % i}}
                      for i in range(n)]
            (tdir / "caddy.json.new").write_text(json.dumps(groups))
            (tdir / "caddy.json.new").rename(tdir / "caddy.json")

        write_targets(0)
        agent = promserver.Prometheus(v, work, acfg, agent=True, name="agent")
        procs.append(agent)
        for n in [0] + CENTRAL_STEPS:
            write_targets(n)
            # Let discovery and the first scrapes of the new targets pass,
            # then count samples appended over SETTLE_SCRAPES intervals.
            time.sleep(PROD_INTERVAL + 5)
            a0, t0 = one(central.own_metrics(), "prometheus_tsdb_head_samples_appended_total"), time.time()
            time.sleep(SETTLE_SCRAPES * PROD_INTERVAL)
            cm, am = central.own_metrics(), agent.own_metrics()
            appended = (one(cm, "prometheus_tsdb_head_samples_appended_total") - a0) / (time.time() - t0)
            counted = central.vector('count({job="caddy",__name__!~"ALERTS.*"})')
            steps.append({
                "instances": n,
                "caddy_series": list(counted.values())[0] if counted else 0,
                "head_series": one(cm, "prometheus_tsdb_head_series"),
                "resident_bytes": one(cm, "process_resident_memory_bytes"),
                "heap_inuse_bytes": one(cm, "go_memstats_heap_inuse_bytes"),
                "appended_per_s": appended,
                "agent_samples_sent": one(am, "prometheus_remote_storage_samples_total"),
                "agent_bytes_sent": one(am, "prometheus_remote_storage_bytes_total"),
                "agent_resident_bytes": one(am, "process_resident_memory_bytes"),
                "agent_failed": one(am, "prometheus_remote_storage_samples_failed_total"),
            })
            print("  N=%4d  series at central %7d  head %7d  RSS %6.1f MiB  heap %6.1f MiB  appended %7.0f/s" % (
                n, steps[-1]["caddy_series"], steps[-1]["head_series"], steps[-1]["resident_bytes"] / 2**20,
                steps[-1]["heap_inuse_bytes"] / 2**20, steps[-1]["appended_per_s"]), flush=True)
    finally:
        if traffic:
            traffic.quit.set()
            traffic.join(15)
        for p in sorted(procs, key=lambda p: p.name == "central"):  # the agent flushes first
            p.stop()
        c.stop()
    return {"version": v.version, "shape": CENTRAL_SHAPE, "steps": steps}


def extrapolate(p2: dict) -> dict:
    """Slopes between the first and last step with instances: head series
    per instance (the kept series, the per-scrape series and the outputs of
    the instance-level recording rules), memory per head series at the
    central and per series at the agent, wire bytes per sample; then the
    same at 1,000 instances."""
    s = p2["steps"]
    first, last = s[1], s[-1]
    d_n = last["instances"] - first["instances"]
    d_series = last["head_series"] - first["head_series"]
    per_instance = d_series / d_n
    per_series = {k: (last[k] - first[k]) / d_series for k in ("resident_bytes", "heap_inuse_bytes")}
    agent_per_series = (last["agent_resident_bytes"] - first["agent_resident_bytes"]) / (
        last["caddy_series"] - first["caddy_series"])
    wire = (last["agent_bytes_sent"] - first["agent_bytes_sent"]) / (
        last["agent_samples_sent"] - first["agent_samples_sent"])
    n = 1000
    series = n * per_instance
    return {
        "head_series_per_instance": per_instance, "bytes_per_head_series": per_series,
        "agent_bytes_per_series": agent_per_series, "wire_bytes_per_sample": wire,
        "appended_per_s_per_instance": (last["appended_per_s"] - first["appended_per_s"]) / d_n,
        "instances": n, "series": series, "samples_per_s": series / PROD_INTERVAL,
        "resident_bytes": s[0]["resident_bytes"] + series * per_series["resident_bytes"],
        "heap_inuse_bytes": s[0]["heap_inuse_bytes"] + series * per_series["heap_inuse_bytes"],
        "wire_bytes_per_s": series / PROD_INTERVAL * wire,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["1", "2", "all"], default="all")
    ap.add_argument("--prometheus", choices=list(promserver.VERSION_IDS), default="3")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.platform(),
              "caddy": str(helpers.CADDY)}
    print("Part 1: series and bytes per Caddy instance (one scrape after one request per label set)")
    rows = part1()
    result["part1"] = rows
    print("| routes | methods | statuses | buckets | label sets | series exposed | kept by the agent "
          "| formula L*(B+6)+R+1+fixed | scrape gzip | plain | samples/s at 15 s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %d | %d | %d | %d | %d | %d | %d | %d*%d+%d+%d = %d | %.1f KiB | %.1f KiB | %.1f |" % (
            r["routes"], r["methods"], r["statuses"], r["buckets"], r["label_sets"], r["series_exposed"],
            r["series_kept"], r["label_sets"], r["buckets"] + 6, r["routes"] + 1, r["fixed_kept"],
            r["formula_http"] + r["fixed_kept"], r["bytes_gzip"] / 1024, r["bytes_plain"] / 1024,
            r["samples_per_s_at_15s"]))
    if args.part in ("2", "all"):
        print("\nPart 2: central store (Prometheus %s), one agent, %s-shaped instances at 15 s" % (
            args.prometheus, CENTRAL_SHAPE))
        p2 = part2(args.prometheus)
        result["part2"] = p2
        shape_row = [r for r in rows if (r["routes"], r["methods"], r["statuses"], r["buckets"]) == CENTRAL_SHAPE][0]
        x = extrapolate(p2)
        result["extrapolation"] = x
        steps = p2["steps"]
        print("\nSlopes between N=%d and N=%d:" % (steps[1]["instances"], steps[-1]["instances"]))
        print("  head series per instance: %.0f (%d kept from Caddy + the rest: per-scrape series and"
              " instance-level recording rules)" % (x["head_series_per_instance"], shape_row["series_kept"]))
        print("  samples appended per second per instance: %.1f (at 15 s)" % x["appended_per_s_per_instance"])
        print("  central memory per head series: %.0f B resident, %.0f B Go heap in use" % (
            x["bytes_per_head_series"]["resident_bytes"], x["bytes_per_head_series"]["heap_inuse_bytes"]))
        print("  agent memory per series scraped: %.0f B resident" % x["agent_bytes_per_series"])
        print("  remote write on the wire: %.1f B per sample" % x["wire_bytes_per_sample"])
        print("1,000 instances: %.0f head series; / 15 s = %.0f samples/s; memory %.0f MiB + %.0f x %.0f B ="
              " %.2f GiB resident (%.2f GiB Go heap); remote write %.2f MB/s into the central store" % (
                  x["series"], x["samples_per_s"], steps[0]["resident_bytes"] / 2**20, x["series"],
                  x["bytes_per_head_series"]["resident_bytes"], x["resident_bytes"] / 2**30,
                  x["heap_inuse_bytes"] / 2**30, x["wire_bytes_per_s"] / 1e6))
    (OUT / "fleet-sizing.json").write_text(json.dumps(result, indent=1))
    print("\nsaved %s" % (OUT / "fleet-sizing.json").relative_to(ROOT))


if __name__ == "__main__":
    main()
