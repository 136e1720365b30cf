"""Bucket churn. A histogram counts into the union of every bucket list
configured for it, so a reload that goes back to buckets used before only
changes which buckets are exposed: flipping between two bucket lists costs
no family slot and no cells however often it happens, and the histogram
keeps counting. This flips Caddyfile.example between the default buckets
and another list MAX_FLIPS times, sending a request and checking the exposed
buckets after every reload.

- test_buckets_follow_config_while_capacity_lasts: every flip's exposed
  buckets are exactly the configured ones, and afterwards Caddy still
  serves and counts exactly, no panic.
- test_every_reload_keeps_its_word: every reload either exposes the
  configured buckets or is refused with an error naming the exhausted
  limit (none is refused here). Before families were revived, the registry
  filled after ~120 flips and a reload back to the default buckets
  succeeded but silently kept the old ones."""

from __future__ import annotations

import re

import pytest

import stresslib as sl
from stresslib import h
from test_reload_torture import B1, adapt_all, with_buckets

MAX_FLIPS = 400
SAFE_FLIPS = MAX_FLIPS  # revival: every flip must take effect
LIMIT_ERRORS = ("max_families", "slot_capacity")
DEFAULT_LE = {"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "0.75", "1", "2.5",
              "5", "10", "+Inf"}
B1_LE = set(B1.split()) | {"+Inf"}
_LE = re.compile(r'^http_request_duration_seconds_bucket\{[^}]*le="([^"]+)"', re.M)


def _le(text: str) -> set[str]:
    return {x[:-2] if x.endswith(".0") else x for x in _LE.findall(text)}


def _total(c) -> float:
    return sum(h.series(h.scrape(c.internal_metrics_url).values(), "http_requests_total").values())


@pytest.fixture(scope="module")
def churn(request, caddy_binary):
    ports = sl.free_ports(*h.DEFAULT_PORTS)
    base = h.example_text(ports)
    c = sl.start(request, base, ports, "bucket-churn", probes=sl.example_probes)
    adapted = adapt_all(c, [base, with_buckets(base, B1)])
    want = [DEFAULT_LE, B1_LE]
    flips = []  # (flip, reload status, error text, buckets as configured?)
    for i in range(1, MAX_FLIPS + 1):
        nxt = i % 2
        r = c.reload_admin(adapted[nxt])
        assert h.request("GET", c.url("site", "/zq-churn")).status == 404
        le = _le(h.scrape(c.internal_metrics_url).text)
        flips.append((i, r.status, r.body.decode(errors="replace")[-400:], le == want[nxt]))
    cleanup_errors = [ln for ln in c.log_text().splitlines() if "cleanup:" in ln and "libmetrics" in ln]
    return dict(caddy=c, flips=flips, cleanup_errors=cleanup_errors, adapted=adapted)


def _first(flips, pred):
    return next((f[0] for f in flips if pred(f)), None)


def test_buckets_follow_config_while_capacity_lasts(churn):
    c, flips = churn["caddy"], churn["flips"]
    early = flips[:SAFE_FLIPS]
    assert all(f[1] == 200 and f[3] for f in early), [f for f in early if not (f[1] == 200 and f[3])][:3]
    first_wrong = _first(flips, lambda f: f[1] == 200 and not f[3])
    first_refused = _first(flips, lambda f: f[1] != 200)
    # Whatever happened past the limit: still serving, still exact.
    before = _total(c)
    n = 50
    for k in range(n):
        assert h.request("GET", c.url("site", "/zq-after-%d" % k)).status == 404
    s = h.settled_scrape(c.internal_metrics_url,
                         lambda v: sum(h.series(v, "http_requests_total").values()) >= before + n)
    assert sum(h.series(s.values(), "http_requests_total").values()) == before + n
    problems = h.exposition_problems(s, h.scrape(c.internal_metrics_url, fmt="openmetrics"), "stress-bucket-churn")
    assert not problems, "\n".join(problems)
    sl.publish("bucket_churn", flips=len(flips), buckets_right_first=SAFE_FLIPS,
               first_flip_with_wrong_buckets=first_wrong or "none", first_refused=first_refused or "none",
               cleanup_errors_logged=len(churn["cleanup_errors"]),
               flips_with_wrong_buckets=sum(1 for f in flips if f[1] == 200 and not f[3]),
               still_serving=True, exact_after=True)
    sl.assert_healthy(c)


def test_every_reload_keeps_its_word(churn):
    bad = []
    for i, status, body, right in churn["flips"]:
        if status == 200 and not right:
            bad.append((i, "reload succeeded, buckets not the configured ones"))
        elif status != 200 and not any(k in body for k in LIMIT_ERRORS):
            bad.append((i, "refused without naming the limit: " + body))
    assert not bad, bad[:5]
    assert not churn["cleanup_errors"], churn["cleanup_errors"][:3]
