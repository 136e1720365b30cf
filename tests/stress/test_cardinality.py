"""Cardinality flood. Part 1: Caddyfile.example gets requests whose path,
method (random tokens) and Host header are all distinct; the label sets
must stay those the config allows (route names from the config, methods
folded into OTHER, statuses from the responses), resident memory must stay
flat, and every request must be counted exactly once under the series the
client can predict from its own answers.

Part 2: a config that lets the client choose the response status (any
code 200..999 on three routes, ten method labels) drives every HTTP family
past its 10,000-series cap; libmetrics_series_folded_total must account
for each label set that did not get its own series, the overflow series
for every request in them, and the exposition must stay valid."""

from __future__ import annotations

import random

import pytest

import stresslib as sl
from stresslib import h

FLOOD = sl.scaled(200_000)
WARMUP = 5_000
MARK = "zqflood"
# Resident memory may grow this much over the flood, measured after a
# warm-up of the same traffic: series are bounded, so the flood must not
# cost memory per request. The margin covers Go heap and GC pacing noise.
RSS_BOUND_MIB = 48
FLOOD_METHODS = ("GET", "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE")
PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@"


def _path_token(rng) -> str:
    return "".join(rng.choice(PATH_CHARS) for _ in range(rng.randint(4, 16)))


def flood_requests(seed: int):
    """make_request for RawLoad: (bytes, (method label, endpoint), is_head)."""
    rng = random.Random(seed)

    def make(i):
        method = sl.token(rng) if rng.random() < 0.5 else rng.choice(FLOOD_METHODS)
        k = rng.random()
        tok = _path_token(rng)
        if k < 0.70:
            path, endpoint = "/%s-%s-%d" % (MARK, tok, i), "other"
        elif k < 0.85:
            path, endpoint = "/api/%s-%s-%d" % (MARK, tok, i), "api"
        elif k < 0.90:
            path, endpoint = "/contact?%s=%s%d" % (MARK, tok, i), "contact"
        elif k < 0.95:
            path, endpoint = "/?%s=%s%d" % (MARK, tok, i), "home"
        else:
            # metrics_endpoint answers 405 to anything but GET/HEAD: cheap,
            # and a status the other routes never give.
            method = sl.token(rng)
            path, endpoint = "/metrics?%s=%d" % (MARK, i), "other"
        host = "%s-%d-%s.example" % (MARK, i, tok.replace(":", "").replace("@", ""))
        req = "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s/%d\r\n\r\n" % (method, path, host, MARK, i)
        return req.encode(), (sl.method_label(method), endpoint), method == "HEAD"
    return make


def _totals(values, name="http_requests_total"):
    out = {}
    for labels, v in h.series(values, name).items():
        d = dict(labels)
        out[(d["method"], d["endpoint"], d["status"])] = v
    return out


@pytest.fixture(scope="module")
def flood(request, caddy_binary):
    ports = sl.free_ports(*h.DEFAULT_PORTS)
    c = sl.start(request, h.example_text(ports), ports, "cardinality", probes=sl.example_probes)
    pid = c.proc.pid
    warm = sl.RawLoad("127.0.0.1", ports["site"], flood_requests(1), WARMUP, connections=8, depth=16).run()
    assert not warm.errors and warm.answered == WARMUP, warm.errors[:5]
    before = h.settled_scrape(c.internal_metrics_url, lambda v: h.in_flight_zero(v) and sum(
        _totals(v).values()) >= WARMUP)
    rss0, fds0 = sl.rss_bytes(pid), sl.fd_count(pid)
    cpu0 = sl.cpu_seconds(pid)
    load = sl.RawLoad("127.0.0.1", ports["site"], flood_requests(2), FLOOD, connections=8, depth=16,
                      max_seconds=600).run()
    cpu = sl.cpu_seconds(pid) - cpu0
    base = sum(_totals(before.values()).values())
    after = h.settled_scrape(c.internal_metrics_url, lambda v: h.in_flight_zero(v) and sum(
        _totals(v).values()) - base >= load.answered, timeout=20)
    after_om = h.scrape(c.internal_metrics_url, fmt="openmetrics")
    rss1, fds1 = sl.rss_bytes(pid), sl.fd_count(pid)
    return dict(caddy=c, load=load, before=before, after=after, after_om=after_om, rss0=rss0, rss1=rss1,
                fds0=fds0, fds1=fds1, cpu=cpu)


def test_flood(flood):
    c, load = flood["caddy"], flood["load"]
    b, a = flood["before"].values(), flood["after"].values()

    # Every request answered, none lost on the way.
    assert not load.errors and not load.unanswered, (load.errors[:5], len(load.unanswered))
    assert load.answered == load.sent == FLOOD

    # Exactly what the client saw, series by series.
    expected = {}
    for ((method, endpoint), status), n in load.answers.items():
        key = (method, endpoint, str(status))
        expected[key] = expected.get(key, 0) + n
    t0, t1 = _totals(b), _totals(a)
    got = {k: t1[k] - t0.get(k, 0) for k in t1 if t1[k] - t0.get(k, 0)}
    assert got == expected, "per-series deltas differ from the answers:\n got %s\n want %s" % (
        sorted(set(got.items()) ^ set(expected.items()))[:10], "")
    assert sum(got.values()) == FLOOD
    hist = {k: v for k, v in _totals(a, "http_request_duration_seconds_count").items()}
    hist0 = _totals(b, "http_request_duration_seconds_count")
    assert {k: hist[k] - hist0.get(k, 0) for k in hist if hist[k] - hist0.get(k, 0)} == expected

    # Body bytes: what the handlers wrote is what the client read (HEAD
    # answers carry none on the wire, so they are left out).
    by0, by1 = _totals(b, "http_response_size_bytes_total"), _totals(a, "http_response_size_bytes_total")
    want_bytes = {}
    for ((method, endpoint), status), n in load.body_bytes.items():
        if method != "HEAD":
            key = (method, endpoint, str(status))
            want_bytes[key] = want_bytes.get(key, 0) + n
    got_bytes = {k: by1[k] - by0.get(k, 0) for k in want_bytes}
    assert got_bytes == want_bytes

    # Label values only from the config and the fixed sets.
    series = _totals(a)
    statuses = {s for (_, _, s) in series}
    for method, endpoint, status in series:
        assert endpoint in h.ROUTES and method in h.STANDARD_METHODS + ("OTHER",), (method, endpoint)
        assert status.isdigit() and len(status) == 3, status
    bound = len(h.ROUTES) * (len(h.STANDARD_METHODS) + 1) * len(statuses)
    assert len(series) <= bound
    folded = sum(h.series(a, "libmetrics_series_folded_total").values())
    assert folded == 0, "nothing may fold with config-bounded labels: %s" % h.series(a, "libmetrics_series_folded_total")
    for body in (flood["after"].body, flood["after_om"].body):
        assert MARK.encode() not in body, "request text reached the exposition"

    problems = h.exposition_problems(flood["after"], flood["after_om"], "stress-cardinality")
    assert not problems, "\n".join(problems)

    growth = (flood["rss1"] - flood["rss0"]) / sl.MIB
    sl.publish("cardinality", sent=load.sent, answered=load.answered, lost=load.sent - sum(got.values()),
               distinct_paths=load.sent, distinct_hosts=load.sent,
               other_method_requests=sum(v for k, v in got.items() if k[0] == "OTHER"),
               series=len(series), series_bound=bound, folded=folded,
               rss_before_mib=flood["rss0"] / sl.MIB, rss_growth_mib=growth, rss_bound_mib=RSS_BOUND_MIB,
               fd_growth=flood["fds1"] - flood["fds0"], seconds=load.elapsed,
               req_per_s=load.answered / load.elapsed, caddy_cpu_per_req_us=flood["cpu"] / load.answered * 1e6,
               exposition_bytes=len(flood["after"].body))
    assert growth < RSS_BOUND_MIB, "VmRSS grew %.1f MiB over %d requests (bound %d MiB)" % (
        growth, load.sent, RSS_BOUND_MIB)
    assert flood["fds1"] - flood["fds0"] <= 16, (flood["fds0"], flood["fds1"])
    sl.assert_healthy(c)


# ------------------------------------------------------------ over the cap

CAP = 10_000  # lm_http_options.max_series default, per family
CAP_ROUTES = ("r0", "r1", "r2")
CAP_STATUSES = list(range(200, 600)) + list(range(600, 1000, 20))  # 600..999 fold into status="other"
CAP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "FLOODX")

CAP_CONFIG = """{
	admin localhost:%(admin)d
	auto_https off
}

http://127.0.0.1:%(site)d {
	bind 127.0.0.1
	# One small histogram per series keeps a 10,000-series exposition light.
	route_metrics {
		buckets 0.5
	}
%(routes)s
	# Scrapes here are traffic (endpoint "other"): test_faults watches a
	# slow scrape's in-flight count through it.
	handle /metrics {
		metrics_endpoint
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
CAP_ROUTE = """	handle /%(r)s/* {
		route_metrics %(r)s
		respond "" {query.s}
	}
"""


def cap_config(ports) -> str:
    routes = "".join(CAP_ROUTE % {"r": r} for r in CAP_ROUTES)
    return CAP_CONFIG % dict(ports, routes=routes)


def status_label(code: int) -> str:
    return str(code) if 100 <= code <= 599 else "other"


@pytest.fixture(scope="module")
def capped(request, caddy_binary):
    ports = sl.free_ports("site", "internal", "admin")
    c = sl.start(request, cap_config(ports), ports, "cardinality-cap")
    plan = [(r, m, s) for r in CAP_ROUTES for m in CAP_METHODS for s in CAP_STATUSES]
    random.Random(3).shuffle(plan)

    def make(i):
        r, m, s = plan[i]
        req = "%s /%s/x?s=%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % (m, r, s)
        return req.encode(), (sl.method_label(m), r, status_label(s)), m == "HEAD"
    load = sl.RawLoad("127.0.0.1", ports["site"], make, len(plan), connections=8, depth=16).run()
    text = h.settled_scrape(c.internal_metrics_url, lambda v: h.in_flight_zero(v) and sum(
        h.series(v, "http_requests_total").values()) >= load.answered, timeout=20)
    om = h.scrape(c.internal_metrics_url, fmt="openmetrics")
    return dict(caddy=c, load=load, plan=plan, text=text, om=om)


def test_over_the_cap(capped):
    c, load, plan = capped["caddy"], capped["load"], capped["plan"]
    assert not load.errors and load.answered == len(plan), load.errors[:5]
    # Every response carries the status asked for (so the client knows the
    # label set of each request).
    wrong = [(tag, st) for (tag, st) in load.answers if status_label(st) != tag[2]]
    assert not wrong, wrong[:5]
    per_set = {}
    for (tag, _st), n in load.answers.items():
        per_set[tag] = per_set.get(tag, 0) + n
    v = capped["text"].values()
    overflow = ("_overflow", "_overflow", "_overflow")
    folded = {dict(l)["family"]: x for l, x in h.series(v, "libmetrics_series_folded_total").items()}
    figures = {}
    for fam, sample in (("http_requests_total", "http_requests_total"),
                        ("http_response_size_bytes_total", "http_response_size_bytes_total"),
                        ("http_request_duration_seconds", "http_request_duration_seconds_count")):
        got = _totals(v, sample)
        real = {k: x for k, x in got.items() if k != overflow}
        assert len(real) <= CAP, "%s holds %d series, cap %d" % (fam, len(real), CAP)
        assert len(real) == CAP, "%s: the flood must fill the cap (%d series)" % (fam, len(real))
        # Every label set either has its own series or was folded once.
        assert len(real) + folded.get(fam, 0) == len(per_set), (fam, len(real), folded.get(fam), len(per_set))
        if sample != "http_response_size_bytes_total":
            # Series that exist hold exactly their requests; the overflow
            # series holds all the rest.
            assert all(real[k] == per_set[k] for k in real), fam
            assert got.get(overflow, 0) == len(plan) - sum(real.values()), fam
            assert sum(got.values()) == len(plan), fam
        figures[fam] = (len(real), folded.get(fam, 0))
    assert {k[2] for k in per_set} - {str(s) for s in range(200, 600)} == {"other"}
    problems = h.exposition_problems(capped["text"], capped["om"], "stress-cardinality-cap")
    assert not problems, "\n".join(problems[:20])
    sl.publish("cardinality_cap", requests=len(plan), label_sets=len(per_set), cap=CAP,
               series=figures["http_requests_total"][0], folded=figures["http_requests_total"][1],
               overflow_requests=_totals(v).get(overflow, 0), lost=len(plan) - sum(_totals(v).values()),
               exposition_bytes=len(capped["text"].body), seconds=load.elapsed)
    sl.assert_healthy(c)
