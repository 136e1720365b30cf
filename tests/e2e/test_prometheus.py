"""deploy/ against real tools: promtool on the rules and their unit tests,
then a real Prometheus scraping two build/caddy instances through file-based
discovery, with the deploy rules loaded and the Grafana dashboard's queries
run against it. Everything that runs promtool or Prometheus runs once per
version (`prom_version`: Debian's 2.42 and 3.x, see promserver.py).

Instance A runs Caddyfile.example on its own ports and is scraped at the
address deploy/prometheus/prometheus.yml names; instance B runs the same file
with every port moved. Prometheus is configured from
deploy/prometheus/prometheus-fleet.yml with only the intervals (1 s), the
rule and target paths changed, so both configs are exercised.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

import helpers
import promserver

DEPLOY = helpers.ROOT / "deploy"
PROM_DIR = DEPLOY / "prometheus"
RULES = sorted((PROM_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROM_DIR / "tests").glob("*.yml"))
SINGLE = PROM_DIR / "prometheus.yml"
FLEET = PROM_DIR / "prometheus-fleet.yml"
FLEET_TARGETS = PROM_DIR / "targets" / "caddy.json"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "routemetrics.json"
GRAFANA_DS = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_DASH_PROV = DEPLOY / "grafana" / "provisioning" / "dashboards" / "routemetrics.yml"

SCRAPE_INTERVAL = 1.0  # seconds, for scrapes and rule evaluation
# Grafana's $__rate_interval is max($__interval + scrape interval, 4 x scrape
# interval); with 1 s scrapes and 1 s steps that is 4 s.
RATE_INTERVAL = "4s"
STEP = 1.0

# Requests sent to the api route during the measured window, per instance.
API_REQUESTS = {"caddy-a": 60, "caddy-b": 36}


# ------------------------------------------------------------ small helpers


def load_rules():
    """[(group name, rule dict)] over every rule file."""
    out = []
    for f in RULES:
        for g in yaml.safe_load(f.read_text())["groups"]:
            out.extend((g["name"], r) for r in g["rules"])
    return out


def recording_names():
    return sorted({r["record"] for _, r in load_rules() if "record" in r})


def strip_comment(line: str) -> str:
    # Caddyfile comments start at a '#' that begins a token; the example has
    # none inside quoted strings.
    return re.sub(r"(^|\s)#.*$", "", line)


def caddyfile_blocks(text: str):
    """Top-level blocks of a Caddyfile as (header, body lines at depth 1 and
    deeper). The global options block has an empty header."""
    blocks, depth, header, body = [], 0, None, []
    for raw in text.splitlines():
        line = strip_comment(raw).strip()
        if not line:
            continue
        opens, closes = line.count("{"), line.count("}")
        if depth == 0 and line.endswith("{"):
            header, body = line[:-1].strip(), []
        elif depth > 0 and not (depth == 1 and line == "}"):
            body.append((depth, line))
        depth += opens - closes
        if depth == 0 and header is not None:
            blocks.append((header, body))
            header = None
    assert depth == 0, "unbalanced braces in Caddyfile"
    return blocks


def metrics_listeners(text: str):
    """Every site of the Caddyfile that serves metrics_endpoint, as dicts
    with host (after `bind`), port, path of the handle holding it, and
    whether a matcher guards it."""
    out = []
    for header, body in caddyfile_blocks(text):
        if not header:
            continue
        directives = [line for _, line in body]
        ep = [line for line in directives if line.split()[0] == "metrics_endpoint"]
        if not ep:
            continue
        binds = [line.split()[1:] for d, line in body if d == 1 and line.split()[0] == "bind"]
        handles = [line.split()[1] for d, line in body
                   if d == 1 and line.startswith("handle ") and len(line.split()) > 2]
        metric_paths = [h for h in handles if h.endswith("metrics")]
        for addr in header.replace(",", " ").split():
            u = urllib.parse.urlsplit(addr if "://" in addr else "http://" + addr)
            hosts = binds[0] if binds else [u.hostname or ""]
            for host in hosts:
                out.append({"address": addr, "host": host, "port": u.port,
                            "paths": metric_paths,
                            "guarded": any(len(line.split()) > 1 for line in ep)})
    return out


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Grafana-style interpolation of $var, ${var} and [[var]]."""
    def rep(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in variables:
            raise AssertionError("dashboard uses an unknown variable $%s in %r" % (name, expr))
        return variables[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", rep, expr)


def regex_of(values) -> str:
    """What Grafana sends for a multi-value variable set to All (no
    allValue): the values, regex-escaped, as an alternation."""
    vals = sorted(values)
    esc = [re.sub(r"([\\.^$*+?()\[\]{}|])", r"\\\1", v) for v in vals]
    return esc[0] if len(esc) == 1 else "(" + "|".join(esc) + ")"


def finite(v: str) -> bool:
    return math.isfinite(float(v))


# ------------------------------------------------------------ static checks


def test_promtool_check_rules_and_configs(prom_version):
    rc, out = prom_version.run_promtool("check", "rules", *map(str, RULES))
    assert rc == 0, out
    assert len(RULES) >= 3 and out.count("SUCCESS") == len(RULES), out
    for cfg in (SINGLE, FLEET):
        rc, out = prom_version.run_promtool("check", "config", str(cfg))
        assert rc == 0, "%s:\n%s" % (cfg, out)


def test_promtool_unit_tests(prom_version):
    assert len(RULE_TESTS) >= 4, RULE_TESTS
    rc, out = prom_version.run_promtool("test", "rules", *map(str, RULE_TESTS))
    assert rc == 0, out
    assert "FAILED" not in out and out.count("SUCCESS") == len(RULE_TESTS), out


def test_prometheus_scrapes_the_address_caddy_serves():
    listeners = metrics_listeners(helpers.EXAMPLE.read_text())
    internal = [lst for lst in listeners if lst["host"] in ("127.0.0.1", "::1", "localhost")
                and not lst["guarded"]]
    assert len(internal) == 1, "expected one loopback, unguarded metrics listener in %s: %s" % (
        helpers.EXAMPLE, listeners)
    served = "%s:%d" % (internal[0]["host"], internal[0]["port"])

    cfg = yaml.safe_load(SINGLE.read_text())
    jobs = [j for j in cfg["scrape_configs"] if j["job_name"] == "caddy"]
    assert len(jobs) == 1, cfg["scrape_configs"]
    targets = [t for sc in jobs[0]["static_configs"] for t in sc["targets"]]
    assert targets == [served], "prometheus.yml scrapes %s, Caddyfile.example serves metrics on %s" % (
        targets, served)
    assert jobs[0].get("metrics_path", "/metrics") in internal[0]["paths"], internal[0]
    assert "rules/*.yml" in cfg["rule_files"]


def test_fleet_config_and_targets_file():
    cfg = yaml.safe_load(FLEET.read_text())
    job = [j for j in cfg["scrape_configs"] if j["job_name"] == "caddy"][0]
    files = [f for sd in job["file_sd_configs"] for f in sd["files"]]
    assert any(Path(PROM_DIR, f).match("targets/*.json") or f == "targets/*.json" for f in files), files
    assert "rules/*.yml" in cfg["rule_files"]
    groups = json.loads(FLEET_TARGETS.read_text())
    assert len(groups) >= 2
    instances = [g["labels"]["instance"] for g in groups]
    assert len(set(instances)) == len(instances), "instance names must be unique: %s" % instances
    for g in groups:
        assert g["targets"] and all(re.fullmatch(r"[\w.-]+:\d+", t) for t in g["targets"]), g
        assert g["labels"].get("cluster"), g


def test_latency_threshold_is_one_parameter():
    """The latency objective's `le` label names the threshold; every latency
    SLI rule must read that same bucket."""
    rules = load_rules()
    obj = [r for _, r in rules if r.get("record") == "slo:objective:ratio"]
    lat = [r for r in obj if r.get("labels", {}).get("slo") == "latency"]
    assert len(lat) == 1 and len([r for r in obj if r["labels"]["slo"] == "availability"]) == 1, obj
    le = lat[0]["labels"]["le"]
    float(le)
    slow = [r for _, r in rules if r.get("record", "").startswith("endpoint:http_requests_slow:")]
    assert len(slow) == 7, [r["record"] for r in slow]
    for r in slow:
        found = re.findall(r'le="([^"]*)"', r["expr"])
        assert found == [le], "%s reads le=%s, the objective says le=%s" % (r["record"], found, le)
    # Every alert reads its budget from the recording rule, never a literal.
    for _, r in rules:
        if r.get("alert", "").startswith("Route"):
            assert "scalar(slo:error_budget:ratio{slo=" in r["expr"], r["alert"]
            assert re.search(r"0\.99", r["expr"]) is None, r["alert"]
            assert r["annotations"]["runbook_url"].startswith("deploy/RUNBOOK.md#"), r["alert"]
            assert r["labels"]["severity"] in ("page", "ticket") and "endpoint" in r["annotations"]["summary"]


def test_runbook_has_every_alert_anchor():
    text = (DEPLOY / "RUNBOOK.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+\s+(.*)$", text, re.M)}
    for _, r in load_rules():
        if "alert" in r:
            anchor = r["annotations"]["runbook_url"].split("#", 1)[1]
            assert anchor in anchors, "%s: no heading for #%s in deploy/RUNBOOK.md" % (r["alert"], anchor)


def test_dashboard_and_provisioning_agree():
    dash = json.loads(DASHBOARD.read_text())
    ds = yaml.safe_load(GRAFANA_DS.read_text())["datasources"]
    assert len(ds) == 1 and ds[0]["type"] == "prometheus"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["current"]["value"] == ds[0]["uid"]
    assert "label_values(http_requests_total" in variables["endpoint"]["query"]["query"]
    assert variables["endpoint"]["query"]["query"].endswith(", endpoint)")
    assert variables["instance"]["query"]["query"].endswith(", instance)")
    prov = yaml.safe_load(GRAFANA_DASH_PROV.read_text())["providers"]
    assert prov and prov[0]["type"] == "file" and prov[0]["options"]["path"]
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    titles = " | ".join(p["title"] for p in panels).lower()
    for word in ("request rate", "error", "latency", "in flight", "contact", "cpu", "memory"):
        assert word in titles, "no %r panel in %s" % (word, titles)
    ids = [p["id"] for p in dash["panels"]]
    assert len(set(ids)) == len(ids)
    for p in panels:
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"] and all(t.get("expr") for t in p["targets"]), p["title"]


# ------------------------------------------------------------ live fleet


def wait_ports_free(ports, timeout=30.0):
    """Instance A needs Caddyfile.example's own ports; give a neighbour's
    test a moment to release them instead of failing at once."""
    helpers.wait_until(lambda: not any(helpers.port_in_use(p) for p in ports), timeout, 0.5)


def start_instance(name, ports):
    text = helpers.example_text(ports if ports != helpers.DEFAULT_PORTS else None)
    if ports != helpers.DEFAULT_PORTS:
        for role, old in helpers.DEFAULT_PORTS.items():
            assert not re.search(r":%d\b" % old, text), "%s port %d left in the rewritten file" % (role, old)
    return helpers.start_caddy(text, name=name, ports=ports)


def send(caddy, method, path, expect, body=None):
    hdrs = {"Content-Type": "application/x-www-form-urlencoded"} if body else None
    r = helpers.request(method, caddy.url("site", path), body=body, headers=hdrs, timeout=10)
    assert r.status == expect, "%s %s on %s: %d" % (method, path, caddy.name, r.status)


def api_counts(caddy) -> float:
    """Sum of http_requests_total{endpoint="api"} as the instance reports it
    (the internal listener's scrapes are not themselves counted)."""
    vals = helpers.scrape(caddy.internal_metrics_url).values()
    return sum(v for k, v in helpers.series(vals, "http_requests_total", endpoint="api").items())


@pytest.fixture(scope="module")
def fleet(prom_version, caddy_binary, tmp_path_factory):
    single = yaml.safe_load(SINGLE.read_text())
    a_target = single["scrape_configs"][0]["static_configs"][0]["targets"][0]
    a_host, a_port = a_target.rsplit(":", 1)
    assert int(a_port) == helpers.DEFAULT_PORTS["internal"], a_target
    # E2E_FREE_PORTS=1 (running beside another instance of the suite) moves
    # A's ports too; A is then scraped on the same host, moved port.
    a_ports = helpers.suite_ports()
    a_target = "%s:%d" % (a_host, a_ports["internal"])

    started = []
    prom = None
    try:
        wait_ports_free(a_ports.values())
        a = start_instance("prometheus-a", a_ports)
        started.append(a)
        b_ports = {}
        for role in helpers.DEFAULT_PORTS:
            p = helpers.free_port()
            while p in b_ports.values() or p in a_ports.values() or p in helpers.DEFAULT_PORTS.values():
                p = helpers.free_port()
            b_ports[role] = p
        b = start_instance("prometheus-b", b_ports)
        started.append(b)

        work = tmp_path_factory.mktemp("prometheus%s" % prom_version.id)
        (work / "targets").mkdir()
        example_labels = json.loads(FLEET_TARGETS.read_text())[0]["labels"]
        groups = [{"targets": [a_target], "labels": dict(example_labels, instance="caddy-a", cluster="e2e")},
                  {"targets": ["127.0.0.1:%d" % b_ports["internal"]],
                   "labels": dict(example_labels, instance="caddy-b", cluster="e2e")}]
        (work / "targets" / "caddy.json").write_text(json.dumps(groups, indent=1))

        cfg = yaml.safe_load(FLEET.read_text())
        cfg["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
        cfg["rule_files"] = [str(PROM_DIR / f) for f in cfg["rule_files"]]
        job = [j for j in cfg["scrape_configs"] if j["job_name"] == "caddy"][0]
        for sd in job["file_sd_configs"]:
            sd["files"] = [str(work / f) for f in sd["files"]]
        prom = promserver.Prometheus(prom_version, work, cfg)

        def both_up():
            t = prom.get("/api/v1/targets")["activeTargets"]
            return sorted((x["labels"]["instance"], x["health"]) for x in t) == [
                ("caddy-a", "up"), ("caddy-b", "up")]
        assert helpers.wait_until(both_up, timeout=20, interval=0.25), (
            prom.get("/api/v1/targets"), prom.log_tail())

        inst = {"caddy-a": a, "caddy-b": b}
        # Warm-up: create every series (a counter series appears with its first
        # request), then wait until Prometheus holds the instances' own values.
        for c in inst.values():
            send(c, "GET", "/", 200)
            send(c, "GET", "/api/warm", 200)
            send(c, "GET", "/contact", 200)
            send(c, "POST", "/contact", 201, body=b"name=warm")
            send(c, "GET", "/no-such-page", 404)
        base = {name: api_counts(c) for name, c in inst.items()}

        def prom_api():
            return {dict(k)["instance"]: v for k, v in prom.vector(
                'sum by (instance) (http_requests_total{job="caddy",endpoint="api"})').items()}
        assert helpers.wait_until(lambda: prom_api() == base, timeout=15, interval=0.2), (prom_api(), base)
        t0 = time.time()
        time.sleep(1.5)  # at least one scrape of the baseline inside the window

        # The measured traffic, spread over ~12 s so rates have a shape.
        ticks = max(API_REQUESTS.values())
        contact_posts = 0
        for i in range(ticks):
            for name, c in inst.items():
                if i < API_REQUESTS[name]:
                    send(c, "GET", "/api/items/%d" % i, 200)
            if i % 4 == 0:
                send(a, "GET", "/", 200)
                send(b, "POST", "/contact", 201, body=b"name=test%d" % i)
                contact_posts += 1
                send(a, "GET", "/missing/%d" % i, 404)
                send(b, "GET", "/", 200)
            time.sleep(0.2)
        final = {name: api_counts(c) for name, c in inst.items()}
        assert {n: final[n] - base[n] for n in inst} == API_REQUESTS, (base, final)
        assert helpers.wait_until(lambda: prom_api() == final, timeout=15, interval=0.2), (prom_api(), final)
        time.sleep(2.5)  # let every rule evaluate on the final samples
        t_q = time.time()

        yield {"version": prom_version.id, "prom": prom, "a": a, "b": b, "a_target": a_target, "t0": t0, "t_q": t_q, "t_start": t0 - 10,
               "base": base, "final": final, "contact_posts": contact_posts}
    finally:
        if prom:
            prom.stop()
        problems = []
        for c in started:
            alive = c.alive()
            code = c.stop()
            crashes = c.crash_lines()
            if not alive:
                problems.append("Caddy %s died (exit %s):\n%s" % (c.name, code, c.log_tail()))
            if crashes:
                problems.append("Caddy %s log shows a crash:\n%s" % (c.name, "\n".join(crashes[:20])))
        if prom:
            # Keep the log next to the Caddy logs for post-mortems.
            helpers.OUT.mkdir(parents=True, exist_ok=True)
            shutil.copy(prom.log_path, helpers.OUT / ("prometheus%s-e2e.log" % prom_version.id))
        assert not problems, "\n".join(problems)


def test_both_targets_up_with_fleet_labels(fleet):
    prom = fleet["prom"]
    targets = prom.get("/api/v1/targets")["activeTargets"]
    by_inst = {t["labels"]["instance"]: t for t in targets}
    assert set(by_inst) == {"caddy-a", "caddy-b"}
    for t in targets:
        assert t["health"] == "up" and t["labels"]["job"] == "caddy" and t["labels"]["cluster"] == "e2e", t
    # Instance A is scraped at exactly the address deploy/prometheus/prometheus.yml
    # names (unless E2E_FREE_PORTS=1 moved its port).
    single = yaml.safe_load(SINGLE.read_text())["scrape_configs"][0]["static_configs"][0]["targets"][0]
    if os.environ.get("E2E_FREE_PORTS") != "1":
        assert fleet["a_target"] == single
    assert by_inst["caddy-a"]["scrapeUrl"] == "http://%s/metrics" % fleet["a_target"]
    up = prom.vector('up{job="caddy"}')
    assert sorted(up.values()) == [1.0, 1.0], up


def test_every_rule_evaluates_and_every_recording_returns_data(fleet):
    prom = fleet["prom"]
    groups = prom.get("/api/v1/rules")["groups"]
    loaded = {r["name"] for g in groups for r in g["rules"]}
    expected = {r.get("record") or r.get("alert") for _, r in load_rules()}
    assert expected <= loaded, expected - loaded
    bad = [(g["name"], r["name"], r.get("lastError")) for g in groups for r in g["rules"]
           if r["health"] != "ok"]
    assert not bad, bad

    empty = [name for name in recording_names() if not prom.vector(name, fleet["t_q"])]
    assert not empty, "recording rules without data: %s" % empty

    at = fleet["t_q"]
    rate = prom.vector('endpoint:http_requests:rate5m', at)
    assert {dict(k)["endpoint"] for k in rate} >= set(helpers.ROUTES), rate
    assert all(v > 0 for v in rate.values()), rate
    per_inst = prom.vector('instance_endpoint:http_requests:rate5m{endpoint="api"}', at)
    assert {dict(k)["instance"] for k in per_inst} == {"caddy-a", "caddy-b"}, per_inst
    # The demo upstream never fails: every route's 5xx share is 0, present.
    err = prom.vector('endpoint:http_requests_errors:ratio_rate5m', at)
    assert len(err) >= 4 and all(v == 0 for v in err.values()), err
    p99 = prom.vector('endpoint_quantile:http_request_duration_seconds:histogram_quantile_rate5m'
                      '{endpoint="api",quantile="0.99"}', at)
    assert len(p99) == 1 and 0 < list(p99.values())[0] <= 10, p99
    # The latency threshold bucket exists under the exact label value the
    # SLO rules select, on both instances.
    le = [r for _, r in load_rules() if r.get("record") == "slo:objective:ratio"
          and r["labels"]["slo"] == "latency"][0]["labels"]["le"]
    n = prom.vector('count by (instance) (http_request_duration_seconds_bucket{job="caddy",le="%s"})' % le, at)
    assert len(n) == 2, n
    slow = prom.vector('endpoint:http_requests_slow:ratio_rate5m{endpoint="api"}', at)
    assert len(slow) == 1 and 0 <= list(slow.values())[0] < 0.01, slow
    contact = prom.vector('service_source:contact_submissions:rate5m', at)
    assert [dict(k) for k in contact] == [{"__name__": "service_source:contact_submissions:rate5m",
                                           "service": "fastapi", "source": "website"}], contact
    assert list(contact.values())[0] > 0, contact


def test_no_alert_fires_on_a_healthy_fleet(fleet):
    alerts = fleet["prom"].get("/api/v1/alerts")["alerts"]
    assert alerts == [], alerts


def test_every_dashboard_panel_query_returns_data(fleet):
    prom, t_start, t_q = fleet["prom"], fleet["t_start"], fleet["t_q"]
    dash = json.loads(DASHBOARD.read_text())
    tv = {v["name"]: v for v in dash["templating"]["list"]}

    def label_values(query, variables):
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", substitute(query, variables))
        assert m, query
        return prom.label_values(m.group(1), m.group(2))

    instances = label_values(tv["instance"]["query"]["query"], {})
    assert sorted(instances) == ["caddy-a", "caddy-b"], instances
    variables = {"instance": regex_of(instances)}
    endpoints = label_values(tv["endpoint"]["query"]["query"], variables)
    assert set(endpoints) >= set(helpers.ROUTES), endpoints
    variables.update(endpoint=regex_of(endpoints), datasource="routemetrics-prometheus",
                     __rate_interval=RATE_INTERVAL, __interval="%ds" % STEP,
                     __range="%ds" % math.ceil(t_q - t_start))

    # Also with one route and one instance picked, as an operator would.
    narrowed = dict(variables, instance="caddy-b", endpoint="api")
    failures, checked = [], 0
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            for vs in (variables, narrowed):
                expr = substitute(target["expr"], vs)
                try:
                    if target.get("instant"):
                        data = prom.query(expr, t_q)
                        values = [s["value"][1] for s in data["result"]]
                    else:
                        data = prom.query_range(expr, t_start, t_q, STEP)
                        values = [v for s in data["result"] for _, v in s["values"]]
                except Exception as e:  # HTTP 400 on a bad expression
                    failures.append("%s [%s]: %s: %s" % (panel["title"], target["refId"], expr, e))
                    continue
                checked += 1
                if not any(finite(v) for v in values):
                    failures.append("%s [%s]: no finite data for %s" % (panel["title"], target["refId"], expr))
    assert checked >= 2 * 15, checked
    assert not failures, "\n".join(failures)


def test_fleet_api_request_count_matches_traffic(fleet):
    """sum(increase(http_requests_total{endpoint="api"}[W])) across both
    instances against the requests sent.

    The window W starts at t0, after Prometheus held the warm-up values, and
    ends at t_q, after it held the final ones, so every series' first sample
    in the window is the baseline and its last the final count: last - first
    is exactly the requests sent (checked below). increase() then
    extrapolates each series from its first/last sample towards the window
    edges, by at most 1.1 average scrape intervals per edge (further gaps are
    extrapolated by half an interval), and never shrinks the raw difference.
    Hence the tolerance: N <= increase <= N * W / (W - 2 * 1.1 * scrape
    interval). With W about 20 s and 1 s scrapes that is up to +12%; the
    counts themselves are exact."""
    prom, t0, t_q = fleet["prom"], fleet["t0"], fleet["t_q"]
    n = sum(API_REQUESTS.values())
    w_ms = int((t_q - t0) * 1000)
    w = w_ms / 1000.0
    sel = 'http_requests_total{job="caddy",endpoint="api"}'

    exact = prom.vector("sum(max_over_time(%s[%dms]) - min_over_time(%s[%dms]))" % (sel, w_ms, sel, w_ms), t_q)
    assert list(exact.values()) == [float(n)], exact
    per_inst = prom.vector("sum by (instance) (increase(%s[%dms]))" % (sel, w_ms), t_q)
    total = prom.vector("sum(increase(%s[%dms]))" % (sel, w_ms), t_q)
    assert len(total) == 1, total
    got = list(total.values())[0]
    upper = n * w / (w - 2 * 1.1 * SCRAPE_INTERVAL)
    helpers.OUT.mkdir(parents=True, exist_ok=True)
    (helpers.OUT / ("prometheus%s-e2e-increase.json" % fleet["version"])).write_text(json.dumps(
        {"sent": API_REQUESTS, "window_s": w, "increase_sum": got, "allowed": [n, upper],
         "increase_by_instance": {dict(k)["instance"]: v for k, v in per_inst.items()}}, indent=1))
    assert n - 1e-9 <= got <= upper, "increase=%g, sent %d, allowed [%d, %.2f] for W=%.1fs; per instance %s" % (
        got, n, n, upper, w, per_inst)
    for k, v in per_inst.items():
        sent = API_REQUESTS[dict(k)["instance"]]
        assert sent - 1e-9 <= v <= sent * w / (w - 2.2 * SCRAPE_INTERVAL), (k, v, sent)
    # The instances agree with what they were sent (the scrape path loses nothing).
    assert {k: fleet["final"][k] - fleet["base"][k] for k in API_REQUESTS} == API_REQUESTS
