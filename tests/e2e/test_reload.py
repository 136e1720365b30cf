"""Twenty config reloads under a steady background load: counters survive
every reload (never go down between successive scrapes), no scrape ever
holds the same series twice, Caddy answers every request of the load, and at
the end the per-route totals equal exactly what the load sent."""

from __future__ import annotations

import time
from collections import Counter

import pytest

import helpers as h

RELOADS = 20
FORM = b"name=reload&message=hi"
LOAD_PLAN = [
    ("GET", "/", None),
    ("GET", "/api/x", None),
    ("POST", "/contact", FORM),
    ("GET", "/e2e-missing", None),
    ("HEAD", "/api/x", None),
    ("PURGE", "/contact", None),
]
ENDPOINT = {"/": "home", "/api/x": "api", "/contact": "contact", "/e2e-missing": "other"}
METHOD_LABEL = {"PURGE": "OTHER"}
MONOTONIC = ("http_requests_total", "http_response_size_bytes_total", "http_request_duration_seconds_count",
             "http_request_duration_seconds_sum", "http_request_duration_seconds_bucket",
             "contact_submissions_total", "libmetrics_series_folded_total")


def _normalise(values: dict) -> dict:
    """Makes keys comparable across formats: OpenMetrics may spell a bucket
    bound '1.0' where text says '1'."""
    out = {}
    for (name, labels), v in values.items():
        labels = tuple((k, repr(float(x)) if k == "le" else x) for k, x in labels)
        out[(name, labels)] = v
    return out


@pytest.fixture(scope="module")
def reload_run(example_caddy):
    c = example_caddy
    adapted = h.adapt(c.config_path, env=c.env())
    first = h.scrape(c.internal_metrics_url)
    before = _normalise(first.values())
    load = h.Load(c.site, LOAD_PLAN, max_requests=30000, max_seconds=150)
    load.start()
    assert h.wait_until(lambda: load.sent > 50, 10), "load did not start"
    reloads, windows, scrapes, problems = [], [], [], []
    prev = before
    try:
        for i in range(RELOADS):
            t0 = time.monotonic()
            if i % 2 == 0:
                p = c.reload_cli()
                reloads.append(("cli", p.returncode, p.stderr[-500:], time.monotonic() - t0))
                windows.append((t0, time.monotonic()))
            else:
                r = c.reload_admin(adapted)
                reloads.append(("admin", r.status, r.body[-500:].decode(errors="replace"), time.monotonic() - t0))
                windows.append((t0, time.monotonic()))
            fmt = "openmetrics" if i % 2 else "text"
            s = h.scrape(c.internal_metrics_url, fmt=fmt)
            samples = s.samples()
            dups = h.duplicate_series(samples)
            if dups:
                problems.append("reload %d (%s): duplicate series %s" % (i, fmt, dups[:5]))
            problems += ["reload %d (%s): %s" % (i, fmt, p) for p in h.histogram_problems(samples)]
            cur = _normalise({(n, l): v for n, l, v in samples})
            for key, v in prev.items():
                if key[0] in MONOTONIC and cur.get(key, -1) < v:
                    problems.append("reload %d (%s): %s went from %s to %s" % (i, fmt, key, v, cur.get(key)))
            for labels, g in h.series(cur, "http_requests_in_progress").items():
                if not 0 <= g <= 2:  # one client thread: at most its request plus one finishing
                    problems.append("reload %d: in-flight %s = %s" % (i, labels, g))
            scrapes.append(s)
            prev = cur
    finally:
        load.stop()
    answered = sum(load.answered.values())
    total_before = sum(h.series(before, "http_requests_total").values())
    final_scrape = h.settled_scrape(
        c.internal_metrics_url,
        lambda v: h.in_flight_zero(v) and sum(h.series(v, "http_requests_total").values()) - total_before >= answered)
    final = _normalise(final_scrape.values())
    for key, v in prev.items():
        if key[0] in MONOTONIC and final.get(key, -1) < v:
            problems.append("final: %s went from %s to %s" % (key, v, final.get(key)))
    (h.OUT / "reload-summary.json").write_text(h.json_dumps({
        "sent": load.sent, "answered": {"%s %s %d" % k: n for k, n in load.answered.items()},
        "failures": load.failures, "reloads": reloads, "problems": problems}))
    return dict(before=before, final=final, load=load, reloads=reloads, windows=windows, problems=problems,
                scrapes=scrapes,
                final_scrape=final_scrape, caddy=c)


def test_every_reload_succeeded(reload_run):
    bad = [r for r in reload_run["reloads"] if r[1] not in (0, 200)]
    assert not bad, bad
    assert len(reload_run["reloads"]) == RELOADS


# A connection the old server closes during its graceful stop fails on the
# client side with one of these; stock Caddy 2.11.9 (no metrics module) shows
# the same, about one per reload (tests/stress reload_baseline measures both
# side by side). Refused or timed-out requests would mean Caddy was not
# listening or hung, and a failure away from any reload would mean something
# other than the swap dropped it: those are never allowed.
CLOSED_BY_SERVER = ("RemoteDisconnected", "ConnectionResetError", "BrokenPipeError")
# How long after a reload call returns the old server may still be closing
# the connections it had (its graceful stop runs on after the new config is
# live).
SWAP_TAIL_S = 2.0


def test_load_fully_answered(reload_run):
    load = reload_run["load"]
    assert load.sent >= RELOADS * 5, "the load was too thin to overlap the reloads: %d requests" % load.sent
    assert sum(load.answered.values()) + len(load.failures) == load.sent
    bad = [f for f in load.failures if not f[2].startswith(CLOSED_BY_SERVER)]
    assert not bad, "requests failed other than by a server-side close: %s" % bad[:10]
    windows = reload_run["windows"]
    stray = [f for f, t in zip(load.failures, load.failure_times)
             if not any(t0 <= t <= t1 + SWAP_TAIL_S for t0, t1 in windows)]
    assert not stray, "requests failed away from any reload: %s" % stray[:10]
    # One client, one request at a time: a swap can cut the request in
    # flight and the next one or two that meet the closing listener.
    assert len(load.failures) <= 3 * RELOADS, "%d of %d requests failed over %d reloads: %s" % (
        len(load.failures), load.sent, RELOADS, load.failures[:10])
    assert reload_run["caddy"].alive()
    statuses = Counter(st for (_m, _p, st) in load.answered.elements())
    # 502: the demo upstream is part of the reloaded config; a proxied
    # request that meets it mid-swap gets a Bad Gateway, which is answered
    # and counted like any other status.
    assert set(statuses) <= {200, 201, 404, 502}, statuses


def test_counters_monotonic_and_no_duplicates(reload_run):
    assert not reload_run["problems"], "\n".join(reload_run["problems"][:30])


def _route_slack(load) -> Counter:
    """Failed requests per (method label, endpoint): each may or may not
    have been recorded before its connection was closed."""
    slack = Counter()
    for method, path, _err in load.failures:
        slack[(METHOD_LABEL.get(method, method), ENDPOINT[path])] += 1
    return slack


def test_final_totals_exact(reload_run):
    """Every answered request is counted under its status; beyond that, a
    route may only hold as many extra requests as the load saw fail on it
    (zero failures: exact equality)."""
    load = reload_run["load"]
    expected = Counter()
    for (method, path, status), n in load.answered.items():
        expected[(METHOD_LABEL.get(method, method), ENDPOINT[path], str(status))] += n
    slack = _route_slack(load)
    d = h.delta(reload_run["before"], reload_run["final"], ["http_requests_total",
                                                            "http_request_duration_seconds_count"])
    for name in ("http_requests_total", "http_request_duration_seconds_count"):
        got = Counter()
        for (n, labels), v in d.items():
            if n == name:
                lab = dict(labels)
                got[(lab["method"], lab["endpoint"], lab["status"])] = int(v)
        under = {k: (got[k], n) for k, n in expected.items() if got[k] < n}
        assert not under, "%s: answered requests missing (got, answered): %s" % (name, under)
        extra = Counter()
        for k, v in got.items():
            extra[k[:2]] += v - expected[k]
        over = {k: (n, slack[k]) for k, n in extra.items() if n > slack[k]}
        assert not over, "%s: more requests than sent (extra, failed) per route: %s" % (name, over)
        if not slack:
            assert got == expected, name


def test_contact_total_exact(reload_run):
    load = reload_run["load"]
    ok = sum(n for (m, p, st), n in load.answered.items() if m == "POST" and p == "/contact" and 200 <= st < 300)
    failed = _route_slack(load)[("POST", "contact")]
    key = ("contact_submissions_total", h.labels_key(**h.CONTACT_LABELS))
    moved = reload_run["final"].get(key, 0) - reload_run["before"].get(key, 0)
    assert ok <= moved <= ok + failed, (moved, ok, failed)


def test_in_flight_settles_to_zero(reload_run):
    g = h.series(reload_run["final"], "http_requests_in_progress")
    assert g and all(v == 0 for v in g.values()), g


def test_exposition_valid_after_reloads(reload_run):
    c = reload_run["caddy"]
    problems = h.exposition_problems(h.scrape(c.internal_metrics_url),
                                     h.scrape(c.internal_metrics_url, fmt="openmetrics"), "reload")
    assert not problems, "\n".join(problems)


NEW_BUCKETS = ("0.05", "0.5", "5")


def _with_buckets(text: str, bounds=NEW_BUCKETS) -> str:
    """The example with an explicit bucket list on its outermost
    route_metrics (the site-level one, indented by one tab; bare or with a
    block)."""
    buckets = "\t\tbuckets %s\n" % " ".join(bounds)
    if text.count("\n\troute_metrics\n") == 1:
        return text.replace("\n\troute_metrics\n", "\n\troute_metrics {\n" + buckets + "\t}\n")
    assert text.count("\n\troute_metrics {\n") == 1, "the example's site-level route_metrics moved"
    return text.replace("\n\troute_metrics {\n", "\n\troute_metrics {\n" + buckets)


def _le_sets(values: dict) -> set:
    out = set()
    by_series: dict = {}
    for (name, labels), _v in values.items():
        if name == "http_request_duration_seconds_bucket":
            d = dict(labels)
            le = d.pop("le")
            by_series.setdefault(tuple(sorted(d.items())), set()).add(float(le))
    for les in by_series.values():
        out.add(frozenset(les))
    return out


def _send_api(c, n: int) -> None:
    """Sends GET /api/x until n were answered 200. Caddyfile.example's demo
    upstream is a server of the reloaded config itself: right after a
    reload, reverse_proxy may reuse a kept-alive connection that the old
    demo server's graceful stop is closing, and answers 502 (EOF; stock
    Caddy does the same, no retries are configured). That is recorded under
    status="502", outside the GET 200 series this test follows). Those are
    retried, but only before the first 200 after the reload and at most a
    few: a 502 later on, or any other status, fails the test."""
    ok, swap = 0, 0
    while ok < n:
        status = h.request("GET", c.url("site", "/api/x")).status
        if status == 200:
            ok += 1
            continue
        assert status == 502 and ok == 0 and swap < 40, (
            "GET /api/x answered %d after %d answers of 200 (%d 502s at the swap)" % (status, ok, swap))
        swap += 1
        time.sleep(0.05)


def _api_counts(values: dict) -> tuple[float, float, float]:
    key = h.labels_key(method="GET", endpoint="api", status="200")
    inf = values.get(("http_request_duration_seconds_bucket", tuple(sorted(dict(key, le="+Inf").items()))))
    return (values.get(("http_requests_total", key), 0), values.get(("http_request_duration_seconds_count", key), 0),
            inf)


def _api_histogram(values: dict) -> dict:
    """Every sample of the api route's GET 200 latency histogram: ('bucket',
    le as float), ('sum',), ('count',) -> value."""
    out = {}
    for (name, labels), v in values.items():
        d = dict(labels)
        if d.get("method") != "GET" or d.get("endpoint") != "api" or d.get("status") != "200":
            continue
        if name == "http_request_duration_seconds_bucket":
            out[("bucket", float(d["le"]))] = v
        elif name == "http_request_duration_seconds_sum":
            out[("sum",)] = v
        elif name == "http_request_duration_seconds_count":
            out[("count",)] = v
    return out


def test_bucket_change_reload(reload_run):
    """A reload that changes the latency buckets changes which buckets are
    exposed, and nothing else: the histogram keeps counting. Right after
    each reload (explicit buckets, then back to the defaults) every sample
    present before and after it -- _count, _sum, +Inf and the buckets both
    lists have -- holds exactly its value from before the reload (no reset,
    no resumption of an old count: Prometheus' increase() sees only what
    happened), and the 10 requests sent after it add exactly 10 to _count
    and +Inf. The counters are untouched."""
    c = reload_run["caddy"]
    original = h.example_text(c.ports)
    start = h.scrape(c.internal_metrics_url).values()
    default_les = _le_sets(start)
    assert len(default_les) == 1, "series disagree on bucket bounds before the reload: %s" % default_les
    for step, text, les in (("explicit buckets", _with_buckets(original), {float(b) for b in NEW_BUCKETS}),
                            ("back to defaults", original, None),
                            ("explicit buckets again", _with_buckets(original), {float(b) for b in NEW_BUCKETS})):
        before = h.scrape(c.internal_metrics_url).values()
        p = c.reload_cli(text)
        assert p.returncode == 0, "%s: reload failed: %s" % (step, p.stderr[-1500:])
        mid = h.scrape(c.internal_metrics_url).values()
        for name in ("http_requests_total", "http_response_size_bytes_total", "contact_submissions_total"):
            kept = {k: v for k, v in before.items() if k[0] == name}
            assert {k: mid.get(k) for k in kept} == kept, "%s: %s changed across the reload" % (step, name)
        hb, hm = _api_histogram(before), _api_histogram(mid)
        shared = sorted(set(hb) & set(hm))
        assert ("count",) in shared and ("sum",) in shared and ("bucket", float("inf")) in shared, (step, shared)
        assert len([k for k in shared if k[0] == "bucket"]) >= 2, (step, shared)
        moved = {k: (hb[k], hm[k]) for k in shared if hb[k] != hm[k]}
        assert not moved, "%s: histogram samples changed across the reload (before, after): %s" % (step, moved)
        _send_api(c, 10)
        after = h.settled_scrape(c.internal_metrics_url, lambda v: _api_counts(v)[0] >= _api_counts(before)[0] + 10)
        v = after.values()
        want = {frozenset(les | {float("inf")})} if les else default_les
        assert _le_sets(v) == want, "%s: bucket bounds %s, expected %s" % (step, _le_sets(v), want)
        total, count, inf = _api_counts(v)
        assert total - _api_counts(before)[0] == 10, step
        assert (count, inf) == (hm[("count",)] + 10, hm[("bucket", float("inf"))] + 10), (
            "%s: histogram _count=%s +Inf=%s after 10 requests, want %s" % (
                step, count, inf, hm[("count",)] + 10))
        ha = _api_histogram(v)
        for k in shared:
            if k[0] == "bucket":
                assert hm[k] <= ha[k] <= hm[k] + 10, (step, k, hm[k], ha[k])
        assert after.text.count("# TYPE http_request_duration_seconds ") == 1, step
        problems = h.exposition_problems(after, h.scrape(c.internal_metrics_url, fmt="openmetrics"),
                                         "reload-buckets-%d" % len(want.pop()))
        assert not problems, "%s:\n%s" % (step, "\n".join(problems))
    # leave the example as the module found it
    assert c.reload_cli(original).returncode == 0
