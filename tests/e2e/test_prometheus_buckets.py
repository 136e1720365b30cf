"""Bucket changes as Prometheus sees them. build/caddy runs Caddyfile.example
on free ports, scraped every second by a real Prometheus (once per version,
see promserver.py); known traffic goes to /api/x between reloads that flip
the site's latency buckets between the defaults and another list and back,
several times (A -> B -> A -> B), then to a list with a bound the histogram
never had (its bound union grows), then back. This is the sequence that made
a revived histogram's _count jump from 10 to 67 (issue 13).

For every sample the lists share -- _count, _sum, the +Inf bucket, and the
buckets le=0.1 and le=1 -- over the whole window Prometheus stored:
resets() is 0, max - min of the raw samples is exactly what Caddy counted
over that window (for _count and +Inf: the requests sent), and increase()
lies between that and its documented extrapolation limit. A histogram that
resumed an old count or restarted from zero fails one of these."""

from __future__ import annotations

import time

import pytest

import helpers as h
import promserver
from test_prometheus import SCRAPE_INTERVAL
from test_reload import _api_histogram, _send_api, _with_buckets

B = ("0.01", "0.1", "1")  # a subset of the defaults: only the exposed buckets change
C = ("0.003", "0.1", "1")  # 0.003 is new to the union: it grows
# (buckets, requests sent to /api/x while that config is live)
PLAN = [(None, 60), (B, 10), (None, 7), (B, 5), (None, 9), (C, 6), (None, 4)]
SHARED = [("count",), ("sum",), ("bucket", float("inf")), ("bucket", 0.1), ("bucket", 1.0)]


def _selector(key) -> str:
    base = 'method="GET",endpoint="api",status="200"'
    if key[0] == "bucket":
        le = "+Inf" if key[1] == float("inf") else repr(key[1])
        return 'http_request_duration_seconds_bucket{%s,le="%s"}' % (base, le)
    return "http_request_duration_seconds_%s{%s}" % (key[0], base)


def _wait_scraped(prom, key, value, timeout=20.0):
    """Until Prometheus' latest sample of key equals value (what Caddy shows)."""
    def seen():
        got = prom.vector(_selector(key))
        return len(got) == 1 and abs(list(got.values())[0] - value) <= 1e-9 * max(1.0, abs(value))
    return h.wait_until(seen, timeout, 0.2)


@pytest.fixture(scope="module")
def flips(prom_version, tmp_path_factory):
    ports = {role: h.free_port() for role in h.DEFAULT_PORTS}
    original = h.example_text(ports)
    c = h.start_caddy(original, name="prometheus-buckets", ports=ports)
    prom = None
    try:
        workdir = tmp_path_factory.mktemp("prometheus%s-buckets" % prom_version.id)
        cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
               "scrape_configs": [{"job_name": "caddy", "scrape_interval": "1s", "scrape_timeout": "900ms",
                                   "static_configs": [{"targets": ["127.0.0.1:%d" % ports["internal"]]}]}]}
        prom = promserver.Prometheus(prom_version, workdir, cfg)
        # A first request creates the series; Prometheus must hold it before t0.
        assert h.request("GET", c.url("site", "/api/x")).status == 200
        first = _api_histogram(h.settled_scrape(c.internal_metrics_url,
                                                lambda v: _api_histogram(v).get(("count",), 0) >= 1).values())
        assert _wait_scraped(prom, ("count",), first[("count",)]), prom.log_tail()
        time.sleep(2 * SCRAPE_INTERVAL)
        t0 = time.time()
        time.sleep(1.5 * SCRAPE_INTERVAL)
        start = _api_histogram(h.scrape(c.internal_metrics_url).values())
        sent, reloads = 0, []
        for i, (bounds, n) in enumerate(PLAN):
            if i > 0:
                p = c.reload_cli(_with_buckets(original, bounds) if bounds else original)
                reloads.append((bounds, p.returncode, p.stderr[-800:]))
                assert p.returncode == 0, p.stderr[-1500:]
            _send_api(c, n)
            sent += n
            now = _api_histogram(h.settled_scrape(
                c.internal_metrics_url, lambda v: _api_histogram(v).get(("count",), 0) >= start[("count",)] + sent
            ).values())
            # Prometheus stores this config's values at least twice.
            assert _wait_scraped(prom, ("count",), now[("count",)]), (i, prom.log_tail())
            time.sleep(1.5 * SCRAPE_INTERVAL)
        final = _api_histogram(h.scrape(c.internal_metrics_url).values())
        assert _wait_scraped(prom, ("sum",), final[("sum",)])
        time.sleep(1.5 * SCRAPE_INTERVAL)
        t_end = time.time()
        yield {"prom": prom, "caddy": c, "t0": t0, "t_end": t_end, "start": start, "final": final,
               "sent": sent, "reloads": reloads}
    finally:
        if prom:
            prom.stop()
            h.OUT.mkdir(parents=True, exist_ok=True)
            (h.OUT / ("prometheus%s-buckets.log" % prom_version.id)).write_text(prom.log_text())
        alive = c.alive()
        c.stop()
        assert alive, "Caddy died:\n%s" % c.log_tail()


def _query(f, expr_fmt, key):
    w_ms = int((f["t_end"] - f["t0"]) * 1000)
    expr = expr_fmt % ("%s[%dms]" % (_selector(key), w_ms))
    got = f["prom"].vector(expr, f["t_end"])
    assert len(got) == 1, (expr, got)
    return list(got.values())[0]


def test_every_reload_succeeded(flips):
    assert [r[1] for r in flips["reloads"]] == [0] * (len(PLAN) - 1), flips["reloads"]
    assert flips["sent"] == sum(n for _, n in PLAN)


@pytest.mark.parametrize("key", SHARED, ids=lambda k: "_".join(str(x) for x in k))
def test_no_reset_across_bucket_changes(flips, key):
    assert _query(flips, "resets(%s)", key) == 0


@pytest.mark.parametrize("key", SHARED, ids=lambda k: "_".join(str(x) for x in k))
def test_stored_samples_grow_by_exactly_what_happened(flips, key):
    """max - min over the window: the raw samples, no extrapolation."""
    want = flips["final"][key] - flips["start"][key]
    if key in (("count",), ("bucket", float("inf"))):
        assert want == flips["sent"], (key, flips["start"][key], flips["final"][key])
    w_ms = int((flips["t_end"] - flips["t0"]) * 1000)
    sel = "%s[%dms]" % (_selector(key), w_ms)
    v = flips["prom"].vector("max_over_time(%s) - min_over_time(%s)" % (sel, sel), flips["t_end"])
    got = list(v.values())[0]
    assert abs(got - want) <= 1e-9 * max(1.0, abs(want)), (key, got, want)


@pytest.mark.parametrize("key", [("count",), ("bucket", float("inf"))], ids=["count", "inf"])
def test_increase_is_what_was_sent(flips, key):
    """increase() extrapolates towards the window edges by at most 1.1 scrape
    intervals each (see test_prometheus.test_fleet_api_request_count_matches_traffic):
    sent <= increase <= sent * W / (W - 2.2 * interval). A resumed count (the
    bug) overshoots by the old value; a restart from zero would be read as a
    reset and show above."""
    n = flips["sent"]
    w = flips["t_end"] - flips["t0"]
    got = _query(flips, "increase(%s)", key)
    assert n - 1e-9 <= got <= n * w / (w - 2.2 * SCRAPE_INTERVAL), (got, n, w)
