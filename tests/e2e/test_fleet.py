"""deploy/ beyond one machine, on real Prometheus, once per version
(Debian's 2.42 and 3.x; see promserver.py): three Caddy instances, two
Prometheus agents configured from deploy/prometheus/prometheus-agent.yml
(agent A scrapes caddy-1 and caddy-2, agent B caddy-3) remote-writing to one
central Prometheus configured from prometheus-central.yml, which evaluates
the repository's rules (rules/*.yml, the same files the single server loads).

The configs are the deploy/ files with only what a test must change:
intervals scaled down 15:1 (scrapes, rule evaluation, the remote-write batch
deadline and the rule query offset), addresses, and each agent's external
labels. Retries and backoff keep their production values.

Per version, under a bounded load on all three instances (LOAD_SECONDS):
- the central store is stopped (SIGTERM) for OUTAGE_SECONDS and started
  again on the same data directory; the agents hold what they scrape in
  their WAL and deliver it once it is back;
- agent A is restarted (SIGTERM, then started on the same WAL directory).
Then: the central's latest value of every series equals Caddy's own
exposition (exact); the central holds exactly the scrapes each agent
counted itself; every series' samples follow the scrape interval with no
hole, through the outage and on each side of the restart; the fleet
recording rules (request rate, 5xx share, p99 per route across instances)
lie within bounds derived from the exact counts Caddy recorded; the
relabelling kept exactly the families the rules and dashboard read.

What a restart of an agent does and does not do: its WAL restores the
series, but remote write resumes from the time of the restart and never
resends older samples (prometheus/prometheus#8809, open). A graceful stop
flushes the queue first, so nothing scraped before the stop is lost (checked
below); the scrapes that would have happened while it was down do not exist.
Counters are cumulative, so the totals have no gap either way.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

import helpers
import promserver

DEPLOY = helpers.ROOT / "deploy"
PROM_DIR = DEPLOY / "prometheus"
AGENT_CFG = PROM_DIR / "prometheus-agent.yml"
CENTRAL_CFG = PROM_DIR / "prometheus-central.yml"
RULES = sorted((PROM_DIR / "rules").glob("*.yml"))
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "routemetrics.json"

SCALE = 15  # production scrape interval (15 s) / the test's (1 s)
INTERVAL = 1.0  # seconds: scrapes and rule evaluation
RATE_RANGE = 300.0  # the [5m] of the recording rules
LOAD_SECONDS = 40.0
OUTAGE_AT, OUTAGE_SECONDS = 6.0, 10.0
RESTART_AT = 26.0
REQUESTS_PER_SECOND = 20.0  # per instance
# A Prometheus applies discovered targets on a 5 s tick (scrape manager,
# --scrape.discovery-reload-interval in 3.x, fixed in 2.x), so a freshly
# started agent first scrapes up to 5 s plus one interval after it is ready.
DISCOVERY_TICK = 5.0
SLOW_SECONDS = 0.3  # the upstream's slow answer: in the (0.25, 0.5] bucket

# Agent A scrapes caddy-1 and caddy-2, agent B caddy-3. Each agent is in its
# own region and cluster (external labels); targets carry only `instance`.
AGENTS = {
    "agent-a": {"region": "e2e-r1", "cluster": "e2e-a", "instances": ["caddy-1", "caddy-2"]},
    "agent-b": {"region": "e2e-r2", "cluster": "e2e-b", "instances": ["caddy-3"]},
}
INSTANCES = [i for a in AGENTS.values() for i in a["instances"]]

# One cycle per instance, sent round-robin at REQUESTS_PER_SECOND. Routes:
# api (proxied: fast, slow, 503), checkout (proxied: 201 or 500), home
# (Caddy answers), other (404). Only caddy-1 has slow requests, so the fleet
# p99 of api differs clearly from an average of per-instance p99s.
PLANS = {
    "caddy-1": [("GET", "/api/ok")] * 14 + [("GET", "/api/slow")] * 2 + [("GET", "/api/fail")]
    + [("GET", "/")] * 2 + [("POST", "/checkout")],
    "caddy-2": [("GET", "/api/ok")] * 16 + [("GET", "/")] * 2 + [("POST", "/checkout/fail")]
    + [("GET", "/nope")],
    "caddy-3": [("GET", "/api/ok")] * 8 + [("GET", "/api/fail")] + [("GET", "/")],
}
EXPECTED_STATUS = {"/api/ok": 200, "/api/slow": 200, "/api/fail": 503, "/": 200, "/checkout": 201,
                   "/checkout/fail": 500, "/nope": 404}

CADDYFILE = """{
	admin localhost:%(admin)d
	auto_https off
}

http://127.0.0.1:%(site)d {
	bind 127.0.0.1
	route_metrics
	handle /api/* {
		route_metrics api
		reverse_proxy 127.0.0.1:%(upstream)d
	}
	handle /checkout* {
		route_metrics checkout
		reverse_proxy 127.0.0.1:%(upstream)d
	}
	handle / {
		route_metrics home
		respond "home" 200
	}
	handle {
		respond 404
	}
}

http://127.0.0.1:%(internal)d {
	bind 127.0.0.1
	metrics_endpoint
}
"""

# Families compared exactly between Caddy and the central store (the other
# kept families, process_* and go_*, move on their own).
EXACT_FAMILIES = re.compile(r"http_.*|libmetrics_.*")
TARGET_LABELS = ("job", "instance", "region", "cluster")


# ------------------------------------------------------------ config


def duration_s(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    assert m, "unsupported duration %r" % text
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def scaled(text: str) -> str:
    return "%dms" % round(duration_s(text) * 1000 / SCALE)


def keep_regex() -> re.Pattern:
    """The agent's metric_relabel keep rule on __name__ (anchored, as
    Prometheus anchors relabel regexes)."""
    job = yaml.safe_load(AGENT_CFG.read_text())["scrape_configs"][0]
    keeps = [r for r in job["metric_relabel_configs"] if r.get("action") == "keep"]
    assert len(keeps) == 1 and keeps[0]["source_labels"] == ["__name__"], keeps
    return re.compile(keeps[0]["regex"].strip())


def agent_config(name: str, targets_glob: str, central_url: str) -> dict:
    cfg = yaml.safe_load(AGENT_CFG.read_text())
    assert set(cfg) <= {"global", "scrape_configs", "remote_write"}, "agent mode: no rules, no alerting"
    cfg["global"].update(scrape_interval="%ds" % INTERVAL, scrape_timeout="%ds" % INTERVAL)
    cfg["global"]["external_labels"] = {k: AGENTS[name][k] for k in ("region", "cluster")}
    (job,) = cfg["scrape_configs"]
    (sd,) = job["file_sd_configs"]
    sd["files"] = [targets_glob]
    (rw,) = cfg["remote_write"]
    rw["url"] = central_url
    q = rw["queue_config"]
    q["batch_send_deadline"] = scaled(q["batch_send_deadline"])
    return cfg


def central_config(port: int) -> dict:
    cfg = yaml.safe_load(CENTRAL_CFG.read_text())
    g = cfg["global"]
    g["evaluation_interval"] = "%ds" % INTERVAL
    g["scrape_interval"] = "%ds" % INTERVAL
    g["rule_query_offset"] = scaled(g["rule_query_offset"])
    cfg["rule_files"] = [str(PROM_DIR / f) for f in cfg["rule_files"]]
    (self_job,) = cfg["scrape_configs"]
    self_job["static_configs"] = [{"targets": ["127.0.0.1:%d" % port]}]
    return cfg


# ------------------------------------------------------------ traffic


class Upstream:
    """The app behind the proxied routes: /api/ok 200, /api/slow 200 after
    SLOW_SECONDS, /api/fail 503, POST /checkout 201, POST /checkout/fail 500."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self, code):
                body = b"x" * 32
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/api/slow":
                    time.sleep(SLOW_SECONDS)
                self.answer(503 if self.path == "/api/fail" else 200)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.answer(500 if self.path == "/checkout/fail" else 201)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def send(caddy, method, path) -> int:
    body = b"order=1" if method == "POST" else None
    return helpers.request(method, caddy.url("site", path), body=body, timeout=10).status


class PacedLoad(threading.Thread):
    """Sends one instance's plan round-robin at a fixed pace (never faster,
    slower if the machine is) until `seconds` have passed; counts answers
    by (method, path, status)."""

    def __init__(self, caddy, plan, seconds):
        super().__init__(daemon=True)
        self.caddy, self.plan, self.seconds = caddy, plan, seconds
        self.answered: Counter = Counter()
        self.failures: list[str] = []

    def run(self):
        t0 = time.monotonic()
        i = 0
        while True:
            due = t0 + i / REQUESTS_PER_SECOND
            now = time.monotonic()
            if due - t0 >= self.seconds or now - t0 >= self.seconds:
                return
            if due > now:
                time.sleep(due - now)
            method, path = self.plan[i % len(self.plan)]
            i += 1
            try:
                self.answered[(method, path, send(self.caddy, method, path))] += 1
            except Exception as e:  # noqa: BLE001 - every failure is reported
                self.failures.append("%s %s: %s: %s" % (method, path, type(e).__name__, e))


class LagMonitor(threading.Thread):
    """Polls the central store: how old is its newest sample of the
    instance that is furthest behind (now - min over instances of the
    newest `up` timestamp). Fails silently while the store is down."""

    def __init__(self, central):
        super().__init__(daemon=True)
        self.central = central
        self.samples: list[tuple[float, float]] = []
        self._quit = threading.Event()

    def run(self):
        while not self._quit.is_set():
            try:
                v = self.central.vector('min(timestamp(up{job="caddy"}))')
                if v:
                    now = time.time()
                    self.samples.append((now, now - list(v.values())[0]))
            except Exception:  # noqa: BLE001 - the store is down on purpose
                pass
            self._quit.wait(0.2)

    def stop(self):
        self._quit.set()
        self.join(10)


# ------------------------------------------------------------ reading series


def caddy_values(caddy) -> dict:
    """{(sample name, labels): value} of the exactly compared families the
    agents keep, from Caddy's own exposition."""
    keep = keep_regex()
    return {(n, labels): v for (n, labels), v in helpers.scrape(caddy.internal_metrics_url).values().items()
            if EXACT_FAMILIES.fullmatch(n) and keep.fullmatch(n)}


def strip_target(metric: dict) -> tuple[str, tuple]:
    labels = tuple(sorted((k, v) for k, v in metric.items() if k not in TARGET_LABELS + ("__name__",)))
    return metric["__name__"], labels


def central_values(central) -> dict[str, dict]:
    """{instance: {(name, labels): latest value}} of the exactly compared
    families, as the central store answers an instant query now."""
    out: dict[str, dict] = defaultdict(dict)
    for key, v in central.vector('{job="caddy",__name__=~"http_.*|libmetrics_.*"}').items():
        m = dict(key)
        out[m["instance"]][strip_target(m)] = v
    return out


def diff(a: dict, b: dict, limit=8) -> str:
    keys = sorted(set(a) | set(b), key=str)
    lines = ["%s: caddy %s, central %s" % (k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]
    return "\n".join(lines[:limit]) + ("\n... %d more" % (len(lines) - limit) if len(lines) > limit else "")


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """histogram_quantile over classic buckets [(upper bound, cumulative
    count)], as Prometheus computes it: counts forced monotonic, linear
    interpolation inside the bucket, 0 as the lower bound of the first
    bucket, the highest finite bound if the rank falls in +Inf."""
    bs = sorted(buckets)
    assert bs and math.isinf(bs[-1][0]), bs
    fixed, top = [], 0.0
    for ub, c in bs:
        top = max(top, c)
        fixed.append((ub, top))
    total = fixed[-1][1]
    if len(fixed) < 2 or total == 0:
        return math.nan
    rank = q * total
    b = next(i for i, (_, c) in enumerate(fixed) if c >= rank)  # +Inf holds them all
    if b == len(fixed) - 1:
        return fixed[-2][0]
    if b == 0 and fixed[0][0] <= 0:
        return fixed[0][0]
    start, end, count = 0.0, fixed[b][0], fixed[b][1]
    if b > 0:
        start = fixed[b - 1][0]
        count -= fixed[b - 1][1]
        rank -= fixed[b - 1][1]
    return start + (end - start) * (rank / count)


def lives(timestamps: list[float], gaps_at: list[tuple[float, float]]) -> list[list[float]]:
    """Splits a series' timestamps at the given (stop, start) windows of its
    agent: one list per agent lifetime."""
    out, cur = [], []
    bounds = sorted(gaps_at)
    for t in timestamps:
        while bounds and t > bounds[0][1]:
            out.append(cur)
            cur = []
            bounds.pop(0)
        cur.append(t)
    out.append(cur)
    return out


def missing_scrapes(ts: list[float]) -> int:
    """Samples missing from a run of timestamps that should follow the scrape
    interval: the span says how many ticks there were (a scrape's start
    jitters far less than half an interval, and a late one does not move the
    next)."""
    if len(ts) < 2:
        return 0
    return round((ts[-1] - ts[0]) / INTERVAL) + 1 - len(ts)


def holes(ts: list[float]) -> list[tuple[float, float]]:
    """Neighbouring timestamps further apart than 1.5 intervals (to show
    where samples are missing)."""
    return [(a, b) for a, b in zip(ts, ts[1:]) if b - a > 1.5 * INTERVAL]


def scrapes_done(agent) -> dict:
    """The agent's own count of its scrapes so far: every scrape after a
    target's first observes the interval since the previous one in
    prometheus_target_interval_length_seconds (a summary, both versions), so
    scrapes = its _count + one per target. t_from / t_to bracket the read:
    scrapes that started before t_from are in the count, after t_to not."""
    t_from = time.time()
    values = agent.own_metrics()
    t_to = time.time()
    count = sum(v for (n, labels), v in values.items()
                if n == "prometheus_target_interval_length_seconds_count" and dict(labels).get("interval") == "1s")
    return {"intervals": count, "t_from": t_from, "t_to": t_to}


# ------------------------------------------------------------ the run


def start_fleet_caddy(name: str, upstream_port: int):
    ports = {"site": helpers.free_port(), "internal": helpers.free_port(), "admin": helpers.free_port()}

    def probes(c):
        return {"site": lambda: helpers.request("GET", c.url("site", "/"), timeout=2).status == 200,
                "internal": lambda: helpers.request("GET", c.internal_metrics_url, timeout=2).status == 200}
    return helpers.start_caddy(CADDYFILE % dict(ports, upstream=upstream_port), name=name, ports=ports,
                               probes=probes)


@pytest.fixture(scope="module")
def fleet_run(prom_version, caddy_binary, tmp_path_factory):
    v = prom_version
    work = tmp_path_factory.mktemp("fleet-prometheus%s" % v.id)
    out = helpers.OUT / ("fleet-prometheus%s" % v.id)
    upstream = Upstream()
    caddies, procs = {}, {}
    lag = None
    t_begin = time.time()
    try:
        for name in INSTANCES:
            caddies[name] = start_fleet_caddy("fleet-%s-p%s" % (name, v.id), upstream.port)
        # Warm-up: every series the load will touch exists before the first
        # scrape, so the stored history of each starts at its baseline.
        for name, c in caddies.items():
            for method, path in sorted(set(PLANS[name])):
                assert send(c, method, path) == EXPECTED_STATUS[path], (name, method, path)

        central_port = helpers.free_port()
        procs["central"] = central = promserver.Prometheus(v, work, central_config(central_port), receiver=True,
                                                           port=central_port, name="central")
        for agent, spec in AGENTS.items():
            tdir = work / ("%s-targets" % agent)
            tdir.mkdir()
            groups = [{"targets": ["127.0.0.1:%d" % caddies[i].ports["internal"]], "labels": {"instance": i}}
                      for i in spec["instances"]]
            (tdir / "caddy.json").write_text(json.dumps(groups, indent=1))
            procs[agent] = promserver.Prometheus(
                v, work, agent_config(agent, str(tdir / "*.json"), central.base + "/api/v1/write"),
                agent=True, name=agent)

        baseline = {name: caddy_values(c) for name, c in caddies.items()}
        assert helpers.wait_until(lambda: central_values(central) == baseline, timeout=60, interval=0.5), (
            "the central store never held Caddy's baseline values:\n%s\n%s" % (
                "\n".join(diff(baseline[i], central_values(central).get(i, {})) for i in INSTANCES),
                "\n".join("--- %s log:\n%s" % (p.name, p.log_tail(12)) for p in procs.values())))
        t_baseline = time.time()

        lag = LagMonitor(central)
        lag.start()
        loads = {name: PacedLoad(c, PLANS[name], LOAD_SECONDS) for name, c in caddies.items()}
        t_load = time.time()
        for load in loads.values():
            load.start()

        def at(offset):
            time.sleep(max(0.0, t_load + offset - time.time()))

        at(OUTAGE_AT)
        central.stop()
        at(OUTAGE_AT + OUTAGE_SECONDS)
        central.start()
        at(RESTART_AT)
        scrapes = {"agent-a": [scrapes_done(procs["agent-a"])]}
        procs["agent-a"].restart()
        for load in loads.values():
            load.join(LOAD_SECONDS + 60)
        t_load_end = time.time()

        final = {name: caddy_values(c) for name, c in caddies.items()}
        caught_up = helpers.wait_until(lambda: central_values(central) == final, timeout=60, interval=0.5)
        t_caught_up = time.time()
        assert caught_up, "the central store never caught up with Caddy:\n%s" % (
            "\n".join(diff(final[i], central_values(central).get(i, {})) for i in INSTANCES))
        # Rules read data rule_query_offset back: wait until an evaluation
        # stamped after the load has run on the final counts.
        stamp = 'timestamp(endpoint:http_requests:rate5m{endpoint="api"})'
        assert helpers.wait_until(
            lambda: list(central.vector(stamp).values())[0] > t_load_end + 2 * INTERVAL, timeout=30, interval=0.5), (
            central.vector(stamp), t_load_end)
        lag.stop()
        for agent in AGENTS:
            scrapes.setdefault(agent, []).append(scrapes_done(procs[agent]))
        # Everything those agents had scraped when they were asked is at the
        # central store once every instance has a newer sample.
        last_read = max(r["t_to"] for rs in scrapes.values() for r in rs)
        assert helpers.wait_until(lambda: min(central.vector('timestamp(up{job="caddy"})').values()) > last_read + INTERVAL,
                                  timeout=30, interval=0.5)
        yield {
            "version": v, "central": central, "agents": {a: procs[a] for a in AGENTS}, "caddies": caddies,
            "loads": loads, "baseline": baseline, "final": final, "lag": lag.samples,
            "t_begin": t_begin, "t_baseline": t_baseline, "t_load": t_load, "t_load_end": t_load_end,
            "t_caught_up": t_caught_up, "t_q": time.time(), "work": work, "out": out, "scrapes": scrapes,
        }
    finally:
        if lag:
            lag.stop()
        # Agents first: stopping flushes their queue to the central store
        # (it would wait up to --storage.remote.flush-deadline for it).
        for p in sorted(procs.values(), key=lambda p: p.name == "central"):
            p.stop()
        problems = []
        for c in caddies.values():
            alive, code, crashes = c.alive(), c.stop(), c.crash_lines()
            if not alive or crashes:
                problems.append("Caddy %s died or crashed (exit %s):\n%s" % (c.name, code, c.log_tail()))
        upstream.stop()
        out.mkdir(parents=True, exist_ok=True)
        for p in procs.values():
            shutil.copy(p.log_path, out / p.log_path.name)
            shutil.copy(p.config_path, out / p.config_path.name)
        assert not problems, "\n".join(problems)


# ------------------------------------------------------------ static checks


def raw_metric_names(expr: str) -> set[str]:
    """Metric names an expression reads: what is left after removing
    strings, label matchers, grouping clauses, ranges, functions (a name
    before "("), keywords, numbers and recording-rule names (with ":")."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b[a-zA-Z_][a-zA-Z0-9_]*\s*\(", "(", e)
    keywords = {"by", "without", "on", "ignoring", "bool", "or", "and", "unless", "offset", "inf", "nan"}
    names = set(re.findall(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", e))
    return {n for n in names if ":" not in n and n.lower() not in keywords}


def test_relabelling_keeps_every_family_rules_and_dashboard_read():
    keep = keep_regex()
    read = set()
    for f in RULES:
        for g in yaml.safe_load(f.read_text())["groups"]:
            for r in g["rules"]:
                read |= raw_metric_names(r["expr"])
    dash = json.loads(DASHBOARD.read_text())
    for p in dash["panels"]:
        for t in p.get("targets", []):
            read |= raw_metric_names(t["expr"])
    for var in dash["templating"]["list"]:
        q = var.get("query")
        m = re.fullmatch(r"label_values\((.*),\s*\w+\)", q.get("query", "")) if isinstance(q, dict) else None
        if m:
            read |= raw_metric_names(m.group(1))
    synthetic = {"up"}  # written by the agent for each scrape, never relabelled
    assert {"http_requests_total", "http_request_duration_seconds_bucket", "process_cpu_seconds_total"} <= read, read
    dropped = sorted(n for n in read - synthetic if not keep.fullmatch(n))
    assert not dropped, "prometheus-agent.yml drops families the rules or dashboard read: %s" % dropped


def test_fleet_configs_pass_promtool(prom_version, tmp_path):
    v = prom_version
    rc, out = v.run_promtool("check", "config", "--agent", str(AGENT_CFG))
    assert rc == 0, out
    rc, out = v.run_promtool("check", "config", str(CENTRAL_CFG))
    if v.at_least(promserver.NEWER_GLOBAL_FIELDS["rule_query_offset"]):
        assert rc == 0 and "3 rule files found" in out, out
    else:
        # The one line prometheus-central.yml says to delete on an older
        # server is the only thing it refuses; without it the file passes.
        assert rc != 0 and "rule_query_offset" in out, out
        cfg = v.adapt_config(yaml.safe_load(CENTRAL_CFG.read_text()))
        cfg["rule_files"] = [str(PROM_DIR / f) for f in cfg["rule_files"]]
        adapted = tmp_path / "central.yml"
        adapted.write_text(yaml.safe_dump(cfg))
        rc, out = v.run_promtool("check", "config", str(adapted))
        assert rc == 0, out
    # The agent config is not a server config (no rules), and vice versa the
    # central one must not be taken for an agent's.
    rc, out = v.run_promtool("check", "config", "--agent", str(CENTRAL_CFG))
    assert rc != 0, out


# ------------------------------------------------------------ the fleet run


def test_load_answered_as_planned(fleet_run):
    for name, load in fleet_run["loads"].items():
        assert not load.failures, (name, load.failures[:10])
        wrong = {k: n for k, n in load.answered.items() if k[2] != EXPECTED_STATUS[k[1]]}
        assert not wrong, (name, wrong)
        assert sum(load.answered.values()) >= LOAD_SECONDS * REQUESTS_PER_SECOND * 0.5, (name, load.answered)


def endpoint_of(path: str) -> str:
    return {"api": "api", "checkout": "checkout", "": "home"}.get(path.split("/")[1], "other")


def test_caddy_counted_exactly_what_was_sent(fleet_run):
    """The ground truth the rest compares against: Caddy's counters moved by
    exactly the answers the load generator got."""
    for name, load in fleet_run["loads"].items():
        sent = Counter()
        for (method, path, status), n in load.answered.items():
            sent[(endpoint_of(path), method, str(status))] += n
        base, final = fleet_run["baseline"][name], fleet_run["final"][name]
        moved = {}
        for (n, labels), v in final.items():
            if n == "http_requests_total" and v != base.get((n, labels), 0):
                d = dict(labels)
                moved[(d["endpoint"], d["method"], d["status"])] = v - base.get((n, labels), 0)
        assert moved == dict(sent), (name, moved, dict(sent))


def test_exact_totals_at_the_central_store(fleet_run):
    """Every series of the http_* and libmetrics_* families, every instance:
    the central's latest value is Caddy's own, and no series is missing or
    extra (this was the wait condition; re-read here to report it)."""
    now = central_values(fleet_run["central"])
    assert set(now) == set(INSTANCES), set(now)
    for name in INSTANCES:
        assert now[name] == fleet_run["final"][name], diff(fleet_run["final"][name], now[name])
        assert len(now[name]) > 50, (name, len(now[name]))


def test_series_carry_region_and_cluster_of_their_agent(fleet_run):
    central = fleet_run["central"]
    got = {tuple(sorted(dict(k).items())) for k in central.vector(
        'count by (instance, region, cluster) ({job="caddy"})')}
    want = {tuple(sorted({"instance": i, "region": spec["region"], "cluster": spec["cluster"]}.items()))
            for spec in AGENTS.values() for i in spec["instances"]}
    assert got == want, (got, want)


def test_relabelling_kept_only_the_budgeted_families(fleet_run):
    """Caddy exposes more families than the agents keep (per-route upstream
    histograms, Go runtime); the central store holds exactly the kept ones,
    and each agent's own scrape_samples_post_metric_relabeling says so."""
    keep = keep_regex()
    central = fleet_run["central"]
    stored = set(central.label_values('{job="caddy"}', "__name__"))
    for name, c in fleet_run["caddies"].items():
        exposed = {n for n, _ in helpers.scrape(c.internal_metrics_url).values()}
        dropped = {n for n in exposed if not keep.fullmatch(n)}
        assert dropped and any(n.startswith("http_upstream_duration_seconds") for n in dropped), dropped
        assert not dropped & stored, dropped & stored
        kept_series = sum(1 for n, _ in helpers.scrape(c.internal_metrics_url).values() if keep.fullmatch(n))
        post = central.vector('scrape_samples_post_metric_relabeling{instance="%s"}' % name)
        scraped = central.vector('scrape_samples_scraped{instance="%s"}' % name)
        assert list(post.values()) == [float(kept_series)], (name, post, kept_series)
        assert list(scraped.values())[0] > kept_series, (name, scraped)
    # Besides the kept families: the agents' per-scrape series, and the
    # central's own ALERTS series (an alert's labels may include job).
    synthetic = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
                 "scrape_series_added", "ALERTS", "ALERTS_FOR_STATE"}
    assert {n for n in stored if not keep.fullmatch(n)} <= synthetic, stored


def test_le_labels_identical_to_the_exposition(fleet_run):
    """Prometheus 3 normalises `le` to a float's form when it scrapes ("1" ->
    "1.0"); 2.42 stores what it reads. The module writes the normalised form,
    so either agent stores the exposition's own values and a mixed-version
    fleet sums the same bucket series."""
    central = fleet_run["central"]
    stored = set(central.label_values('http_request_duration_seconds_bucket{job="caddy"}', "le"))
    exposed = {dict(labels)["le"] for (n, labels) in fleet_run["final"]["caddy-1"]
               if n == "http_request_duration_seconds_bucket"}
    assert stored == exposed and "1.0" in exposed, (stored, exposed)


def raw_samples(fleet_run) -> dict[tuple, list[float]]:
    """Timestamps of every stored sample of job caddy, by series."""
    central, t_q = fleet_run["central"], fleet_run["t_q"]
    span = int(t_q - fleet_run["t_begin"]) + 5
    assert span < RATE_RANGE, "the run is longer than the rules' window; the bounds below assume it is not"
    m = central.matrix('{job="caddy",__name__!~"ALERTS.*"}[%ds]' % span, t_q)
    return {k: [t for t, _ in pts] for k, pts in m.items()}


def test_every_scrape_reached_the_central_store(fleet_run):
    """Nothing lost between an agent and the central store, through the
    outage and the restart: the `up` samples stored for an agent's targets
    (one per scrape, written whole with every series of the scrape, see the
    next test) are exactly the scrapes the agent counted itself, in agent
    A's first life (counted just before its restart), its second life and
    agent B's whole life."""
    samples = raw_samples(fleet_run)
    up = {dict(k)["instance"]: ts for k, ts in samples.items() if dict(k)["__name__"] == "up"}
    a = fleet_run["agents"]["agent-a"]
    lives_of = {"agent-a": [(0.0, a.stops[0]), (a.stops[0], math.inf)], "agent-b": [(0.0, math.inf)]}
    report, problems = [], []
    for agent, reads in fleet_run["scrapes"].items():
        targets = AGENTS[agent]["instances"]
        for (born, died), read in zip(lives_of[agent], reads):
            did = read["intervals"] + len(targets)

            def stored(until):
                return sum(1 for i in targets for t in up[i] if born < t <= min(died, until))
            low, high = stored(read["t_from"]), stored(read["t_to"])
            report.append({"agent": agent, "life_from": born, "scraped": did, "stored": [low, high]})
            if not low <= did <= high:
                problems.append("%s: scraped %d times up to its count, the central store holds %d..%d of them" % (
                    agent, did, low, high))
    fleet_run["out"].mkdir(parents=True, exist_ok=True)
    (fleet_run["out"] / "scrapes.json").write_text(json.dumps(report, indent=1))
    assert len(report) == 3, report
    assert not problems, problems


def test_samples_cover_the_run_through_outage_and_restart(fleet_run):
    """Every series' stored samples follow the scrape interval: across the
    central outage (delivered late, with their timestamps) and on each side
    of agent A's restart. Across the restart the hole is the restart itself
    plus Prometheus's discovery tick: no scrape happens while an agent is
    down. A tick the agent itself skips (its scrape loop held up for more
    than an interval, which a loaded two-core machine can do) shows as a
    hole too; the test before this one proves such a tick was never scraped
    rather than lost, and at most one per agent life is tolerated here."""
    central = fleet_run["central"]
    a = fleet_run["agents"]["agent-a"]
    a_stop, a_start = a.stops[0], a.starts[1]  # stop asked for; ready again
    outage = (central.stops[0], central.starts[1])
    t_load = fleet_run["t_load"]
    samples = raw_samples(fleet_run)
    restarted = set(AGENTS["agent-a"]["instances"])
    problems, counted, gaps, skipped = [], 0, [], {}
    for key, ts in samples.items():
        m = dict(key)
        inst = m["instance"]
        parts = lives(ts, [(a_stop, a_start)] if inst in restarted else [])
        for n, part in enumerate(parts):
            missing = missing_scrapes(part)
            if missing:
                skipped[(inst, n)] = ["%+.2f..%+.2f" % (x - t_load, y - t_load) for x, y in holes(part)]
            if missing > 1:
                problems.append("%s: %d samples missing; holes (s after the load began): %s" % (
                    m, missing, skipped[(inst, n)]))
        if inst in restarted:
            before, after = parts
            gaps.append(after[0] - before[-1])
            if before[-1] < a_stop - 1.5 * INTERVAL:
                problems.append("%s: last sample %.2f s before agent A's stop: lost in the stop" % (m, a_stop - before[-1]))
            if after[0] > a_start + DISCOVERY_TICK + 2 * INTERVAL:
                problems.append("%s: first sample %.1f s after agent A was ready again" % (m, after[0] - a_start))
        in_outage = [t for t in ts if outage[0] <= t <= outage[1]]
        if len(in_outage) < (outage[1] - outage[0]) / INTERVAL - 2:
            problems.append("%s: %d samples during the %.1f s outage" % (m, len(in_outage), outage[1] - outage[0]))
        counted += 1
    fleet_run["out"].mkdir(parents=True, exist_ok=True)
    (fleet_run["out"] / "gaps.json").write_text(json.dumps({
        "series": counted, "agent_restart_s": a_start - a_stop, "outage_s": outage[1] - outage[0],
        "restart_gap_s": [min(gaps), max(gaps)],
        "skipped_ticks": {"%s life %d" % k: v for k, v in skipped.items()}}, indent=1))
    assert counted >= 3 * 50, counted
    assert not problems, "\n".join(problems[:20]) + "\n(%d problems; central down %+.1f..%+.1f s, agent A " \
        "restarted %+.1f..%+.1f s after the load began)" % (
            len(problems), outage[0] - t_load, outage[1] - t_load, a_stop - t_load, a_start - t_load)


def test_every_series_sampled_at_every_scrape(fleet_run):
    """Within an instance, every series has a sample at each of its `up`
    timestamps (a scrape is written and delivered whole)."""
    samples = raw_samples(fleet_run)
    up = {dict(k)["instance"]: set(ts) for k, ts in samples.items() if dict(k)["__name__"] == "up"}
    assert set(up) == set(INSTANCES)
    bad = [(dict(k)["__name__"], dict(k)["instance"], len(up[dict(k)["instance"]] ^ set(ts)))
           for k, ts in samples.items() if set(ts) != up[dict(k)["instance"]]]
    assert not bad, bad[:20]


def test_delivery_delay_within_rule_query_offset(fleet_run):
    """The newest stored sample was never older than the central config's
    rule_query_offset (production value), even across the outage: rules
    that read that far back see complete data."""
    offset = duration_s(yaml.safe_load(CENTRAL_CFG.read_text())["global"]["rule_query_offset"])
    lag = fleet_run["lag"]
    assert len(lag) > 50, lag
    worst = max(d for _, d in lag)
    after_outage = [d for t, d in lag if fleet_run["central"].starts[1] <= t <= fleet_run["central"].starts[1] + 1]
    assert worst < offset, "samples reached the central store up to %.1f s late; rule_query_offset is %.0f s" % (
        worst, offset)
    # The outage really delayed delivery (the monitor saw it).
    assert after_outage and max(after_outage) >= OUTAGE_SECONDS - 1, after_outage


def sent_per_endpoint(fleet_run):
    """From Caddy's own counters: per endpoint, requests, 5xx and the
    cumulative duration buckets (by `le` as exposed), moved between baseline
    and final."""
    req, err = Counter(), Counter()
    buckets: dict = defaultdict(Counter)
    for name in INSTANCES:
        base, final = fleet_run["baseline"][name], fleet_run["final"][name]
        for (n, labels), v in final.items():
            d = dict(labels)
            moved = v - base.get((n, labels), 0)
            if n == "http_requests_total":
                req[d["endpoint"]] += moved
                if d["status"].startswith("5"):
                    err[d["endpoint"]] += moved
            elif n == "http_request_duration_seconds_bucket":
                buckets[d["endpoint"]][d["le"]] += moved
    return req, err, buckets


def extrapolation_limit(fleet_run) -> tuple[int, float]:
    """(n, k_max): the fewest stored samples of a request or bucket series,
    and the most rate() can stretch a series' increase over a window that
    holds its whole history, 1 + 2.2 / (n - 1) (1.1 average sample
    intervals at each end)."""
    samples = raw_samples(fleet_run)
    n_min = min(len(ts) for k, ts in samples.items()
                if dict(k)["__name__"] in ("http_requests_total", "http_request_duration_seconds_bucket"))
    return n_min, 1 + 2.2 / (n_min - 1)


def quantile_bounds(q: float, buckets: dict[float, float], k_max: float) -> tuple[float, float]:
    """Range of histogram_quantile(q) when each cumulative bucket count c
    may be read as anything in [c, k_max * c] (see the test below). The
    quantile depends on the shares F(le) = bucket / +Inf after counts are
    forced monotonic, and falls as any F grows. The largest F(le) reachable
    is min(1, k_max * c(le) / c(+Inf)), the smallest c(le) / (k_max *
    c(+Inf)); each is reached for every le at once, so the quantile at those
    shares is its lowest and highest value."""
    total = buckets[math.inf]
    low = [(le, min(1.0, k_max * c / total)) for le, c in buckets.items() if not math.isinf(le)] + [(math.inf, 1.0)]
    high = [(le, c / (k_max * total)) for le, c in buckets.items() if not math.isinf(le)] + [(math.inf, 1.0)]
    return bucket_quantile(q, low), bucket_quantile(q, high)


def test_fleet_recording_rules_agree_with_what_was_sent(fleet_run):
    """Request rate, 5xx share and p99 per route across the three instances.

    At the evaluation time tau, every series' rate(...[5m]) is its increase
    within the window, extrapolated, over 300 s. The window holds the whole
    stored history (the run is shorter than 5 minutes), whose first sample is
    the baseline and last the final count, so the raw increase is exactly
    what Caddy counted (checked above), d. Extrapolation stretches it by at
    most 1.1 average sample intervals at each end and never shrinks it, so
    rate = d * k / 300 with 1 <= k <= k_max = 1 + 2.2 / (n - 1), n the
    fewest samples of a series. Each series has its own k, hence:
      rate:    sum(d) / 300 <= rule <= k_max * sum(d) / 300, per route and
               per route and bucket (endpoint_le:...);
      share:   e / (k_max * n) <= rule <= k_max * e / n;
      p99:     within quantile_bounds() of the buckets Caddy counted, and
               exactly histogram_quantile of the recorded per-route bucket
               rates of the same evaluation (summed across instances before
               the quantile, never averaged)."""
    central = fleet_run["central"]
    n_min, k_max = extrapolation_limit(fleet_run)
    req, err, buckets = sent_per_endpoint(fleet_run)
    assert set(req) == {"api", "checkout", "home", "other"}, req
    eps = 1e-9
    quantile_rule = "endpoint_quantile:http_request_duration_seconds:histogram_quantile_rate5m"
    (tau,) = central.vector('timestamp(%s{endpoint="api",quantile="0.99"})' % quantile_rule).values()

    def by_endpoint(expr, key="endpoint", **match):
        out = {}
        for k, v in central.vector(expr, tau).items():
            d = dict(k)
            if all(d.get(a) == b for a, b in match.items()):
                out[d[key] if isinstance(key, str) else tuple(d[x] for x in key)] = v
        return out

    rate = by_endpoint("endpoint:http_requests:rate5m")
    share = by_endpoint("endpoint:http_requests_errors:ratio_rate5m")
    p99 = by_endpoint(quantile_rule, quantile="0.99")
    bucket_rates = by_endpoint("endpoint_le:http_request_duration_seconds_bucket:rate5m", key=("endpoint", "le"))
    report = {"k_max": k_max, "n_min": n_min, "tau": tau, "routes": {}}
    problems = []

    def check(what, got, lo, hi):
        if got is None or not (lo * (1 - eps) <= got <= hi * (1 + eps)):
            problems.append("%s = %s not in [%r, %r]" % (what, got, lo, hi))

    for ep in sorted(req):
        check("%s rate" % ep, rate.get(ep), req[ep] / RATE_RANGE, k_max * req[ep] / RATE_RANGE)
        check("%s 5xx share" % ep, share.get(ep), err[ep] / (k_max * req[ep]), min(1.0, k_max * err[ep] / req[ep]))
        recorded = {}
        for le, c in buckets[ep].items():
            got = bucket_rates.get((ep, le))
            check("%s bucket le=%s rate" % (ep, le), got, c / RATE_RANGE, k_max * c / RATE_RANGE)
            recorded[float(le)] = got or 0.0
        q_lo, q_hi = quantile_bounds(0.99, {float(le): c for le, c in buckets[ep].items()}, k_max)
        check("%s p99" % ep, p99.get(ep), q_lo, q_hi)
        from_rates = bucket_quantile(0.99, list(recorded.items()))
        check("%s p99 against its recorded bucket rates" % ep, p99.get(ep), from_rates, from_rates)
        report["routes"][ep] = {"sent": req[ep], "5xx": err[ep],
                                "rate": [req[ep] / RATE_RANGE, rate.get(ep), k_max * req[ep] / RATE_RANGE],
                                "share": [err[ep] / (k_max * req[ep]), share.get(ep), k_max * err[ep] / req[ep]],
                                "p99": [q_lo, p99.get(ep), q_hi], "p99_from_recorded_buckets": from_rates}
    fleet_run["out"].mkdir(parents=True, exist_ok=True)
    (fleet_run["out"] / "rules-vs-sent.json").write_text(json.dumps(report, indent=1))
    assert not problems, "\n".join(problems) + "\n" + json.dumps(report, indent=1)
    # The fixture's traffic makes the checks bite: errors on two routes, none
    # on home, and api's fleet p99 in the slow bucket, which caddy-1 alone
    # fills (an average of per-instance p99s would be far lower).
    assert err["home"] == 0 and err["api"] > 0 and err["checkout"] > 0, err
    assert 0.25 < p99["api"] <= 0.5, p99
    per_inst = central.vector('instance_endpoint_quantile:http_request_duration_seconds:histogram_quantile_rate5m'
                              '{endpoint="api",quantile="0.99"}', tau)
    assert len(per_inst) == 3 and sum(per_inst.values()) / 3 < p99["api"] * 0.8, per_inst


def slo_budgets() -> dict[str, float]:
    """{slo: error budget} from the objectives in routemetrics-slo.yml."""
    out = {}
    for f in RULES:
        for g in yaml.safe_load(f.read_text())["groups"]:
            for r in g["rules"]:
                if r.get("record") == "slo:objective:ratio":
                    out[r["labels"]["slo"]] = 1 - float(re.fullmatch(r"vector\(([\d.]+)\)", r["expr"]).group(1))
    assert set(out) == {"availability", "latency"}, out
    return out


def test_central_rules_healthy_and_alerts_as_the_traffic_says(fleet_run):
    """Every rule of every file evaluates without error at the central store,
    and the SLO alerts that fire are the ones the traffic Caddy counted calls
    for. Every SLI window (5m .. 3d) holds the same few minutes of data here,
    so they all read the run's share (within the extrapolation factor), and
    each burn-rate alert reduces to its lowest multiple of the budget: the
    fast ones fire above 6x, the slow ones above 1x. A share within the
    extrapolation factor of a threshold could go either way and is not
    asserted."""
    central = fleet_run["central"]
    groups = central.get("/api/v1/rules")["groups"]
    bad = [(g["name"], r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] != "ok"]
    assert not bad, bad
    assert len({g["file"] for g in groups}) == len(RULES), [g["file"] for g in groups]

    _, k_max = extrapolation_limit(fleet_run)
    budget = slo_budgets()
    req, err, buckets = sent_per_endpoint(fleet_run)
    le = [r for f in RULES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]
          if r.get("record") == "slo:objective:ratio" and r["labels"]["slo"] == "latency"][0]["labels"]["le"]
    share = {("availability", ep): err[ep] / req[ep] for ep in req}
    share.update({("latency", ep): 1 - buckets[ep][le] / buckets[ep]["+Inf"] for ep in req})
    expected, unsure = set(), set()
    for (slo, ep), x in share.items():
        for speed, multiple in (("Fast", 6), ("Slow", 1)):
            alert = ("Route%sBudgetBurn%s" % (slo.capitalize(), speed), ep)
            threshold = multiple * budget[slo]
            if x * k_max > threshold and x / k_max <= threshold:
                unsure.add(alert)
            elif x > threshold:
                expected.add(alert)
    firing = {(a["labels"]["alertname"], a["labels"].get("endpoint"))
              for a in central.get("/api/v1/alerts")["alerts"] if a["state"] == "firing"}
    assert firing - unsure == expected, {"firing": sorted(firing), "expected": sorted(expected),
                                         "unsure": sorted(unsure), "shares": {str(k): v for k, v in share.items()}}
    # The traffic makes this bite: 5xx on api and checkout far above 6x the
    # budget; caddy-1's slow api requests above the latency budget.
    assert {("RouteAvailabilityBudgetBurnFast", "api"), ("RouteAvailabilityBudgetBurnFast", "checkout"),
            ("RouteLatencyBudgetBurnSlow", "api")} <= expected, expected
    assert not {a for a in firing if a[1] == "home" and a[0].startswith("RouteAvailability")}, firing


def test_central_resource_figures_recorded(fleet_run):
    """The central's and agents' own figures at the end of the run, kept in
    tests/out/e2e/fleet-prometheus<N>/resources.json for the sizing notes."""
    central = fleet_run["central"]
    own = central.own_metrics()

    def one(values, name):
        vals = [v for (n, _), v in values.items() if n == name]
        assert len(vals) == 1, (name, vals)
        return vals[0]
    figures = {
        "version": fleet_run["version"].version,
        "central_head_series": one(own, "prometheus_tsdb_head_series"),
        "central_resident_bytes": one(own, "process_resident_memory_bytes"),
        "central_samples_appended": sum(v for (n, _), v in own.items()
                                        if n == "prometheus_tsdb_head_samples_appended_total"),
        "caddy_series_at_central": len(central.vector('{job="caddy",__name__!~"ALERTS.*"}')),
        "agents": {},
    }
    for name, agent in fleet_run["agents"].items():
        am = agent.own_metrics()
        figures["agents"][name] = {
            "samples_sent": sum(v for (n, _), v in am.items() if n == "prometheus_remote_storage_samples_total"),
            "bytes_sent": sum(v for (n, _), v in am.items() if n == "prometheus_remote_storage_bytes_total"),
            "samples_failed": sum(v for (n, _), v in am.items() if n == "prometheus_remote_storage_samples_failed_total"),
            "samples_dropped": sum(v for (n, _), v in am.items() if n == "prometheus_remote_storage_samples_dropped_total"),
            "resident_bytes": one(am, "process_resident_memory_bytes"),
        }
    figures["timeline_s"] = {k: round(fleet_run[k] - fleet_run["t_begin"], 2)
                             for k in ("t_baseline", "t_load", "t_load_end", "t_caught_up", "t_q")}
    figures["max_delivery_delay_s"] = max(d for _, d in fleet_run["lag"])
    fleet_run["out"].mkdir(parents=True, exist_ok=True)
    (fleet_run["out"] / "resources.json").write_text(json.dumps(figures, indent=1))
    assert figures["caddy_series_at_central"] > 3 * 50, figures
    assert figures["central_head_series"] >= figures["caddy_series_at_central"], figures
    for name, a in figures["agents"].items():
        assert a["samples_sent"] > 0 and a["samples_dropped"] == 0, (name, a)
