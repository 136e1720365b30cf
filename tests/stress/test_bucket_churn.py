"""Bucket churn: libmetrics never frees a replaced histogram family (its
handles stay valid for requests still running on the old config), so each
reload that changes a namespace's buckets costs a family slot of the
registry (max_families 256) and the moved series' cells (slot_capacity).
This flips Caddyfile.example between the default buckets and another list
until a reload is refused (or MAX_FLIPS pass), and asserts the refusal is
clean: a clear error naming the exhausted limit, the running config keeps
serving, metrics stay exact, reloads that do not change buckets still
succeed, no panic. The number of bucket changes it took is published."""

from __future__ import annotations

import json

import pytest

import stresslib as sl
from stresslib import h
from test_reload_torture import B1, adapt_all

MAX_FLIPS = 400
LIMIT_ERRORS = ("max_families", "slot_capacity")


def _total(c) -> float:
    return sum(h.series(h.scrape(c.internal_metrics_url).values(), "http_requests_total").values())


@pytest.fixture(scope="module")
def churn(request, caddy_binary):
    ports = sl.free_ports(*h.DEFAULT_PORTS)
    base = h.example_text(ports)
    other = base.replace("\troute_metrics\n", "\troute_metrics {\n\t\tbuckets %s\n\t}\n" % B1, 1)
    assert other != base
    c = sl.start(request, base, ports, "bucket-churn", probes=sl.example_probes)
    adapted = adapt_all(c, [base, other])
    for path in ("/", "/api/x", "/zq"):
        assert h.request("GET", c.url("site", path)).status in (200, 404)
    refused, flips, current = None, 0, 0
    for i in range(1, MAX_FLIPS + 1):
        nxt = i % 2
        r = c.reload_admin(adapted[nxt])
        if r.status != 200:
            refused = (i, r.status, r.body.decode(errors="replace"))
            break
        flips, current = i, nxt
    return dict(caddy=c, adapted=adapted, refused=refused, flips=flips, current=current,
                rss=sl.rss_bytes(c.proc.pid))


def test_refusal_is_clean(churn):
    c, refused = churn["caddy"], churn["refused"]
    if refused is not None:
        i, status, body = refused
        msg = json.loads(body).get("error", body) if body.startswith("{") else body
        assert any(k in msg for k in LIMIT_ERRORS), "reload %d refused without naming the limit: %s" % (i, msg)
    # Still serving on the config that was running, and counting exactly.
    before = _total(c)
    n = 50
    for k in range(n):
        assert h.request("GET", c.url("site", "/zq-after-%d" % k)).status == 404
    s = h.settled_scrape(c.internal_metrics_url, lambda v: sum(h.series(v, "http_requests_total").values()) >= before + n)
    assert sum(h.series(s.values(), "http_requests_total").values()) == before + n
    problems = h.exposition_problems(s, h.scrape(c.internal_metrics_url, fmt="openmetrics"), "stress-bucket-churn")
    assert not problems, "\n".join(problems)
    # A reload that keeps the buckets in force still works.
    r = c.reload_admin(churn["adapted"][churn["current"]])
    assert r.status == 200, r.body[-500:]
    sl.publish("bucket_churn", bucket_changes_accepted=churn["flips"],
               refused_at=refused[0] if refused else "none", max_tried=MAX_FLIPS,
               limit=next((k for k in LIMIT_ERRORS if refused and k in refused[2]), "none"),
               rss_after_mib=churn["rss"] / sl.MIB, still_serving=True, exact_after=True)
    sl.assert_healthy(c)
