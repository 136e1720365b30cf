"""Reload torture: 100 config reloads (admin /load, every tenth through
`caddy reload`) under load, cycling through five configs that add a route,
rename it, remove it while changing the latency buckets, add a route in a
second namespace, and go back to Caddyfile.example (buckets back to the
defaults). Asserted:

- every reload succeeds, and Caddy answers throughout: a health probe every
  20 ms never sees an outage longer than OUTAGE_BOUND;
- no counter ever goes down between successive scrapes (one after each
  reload plus a scraper looping throughout), histogram samples too, across
  reloads that change the buckets as well (a histogram keeps counting in
  the union of its bucket lists), and no scrape holds a series twice;
- every answered request is recorded under the route that answered it
  (respond bodies name the route), exactly when no request failed;
- requests that fail during reloads (fresh connections reset or closed by
  the server being replaced: Caddy's own behaviour) are no more frequent
  than in a baseline run of the same reloads with every route_metrics
  removed;
- open descriptors, goroutines and resident memory, once Caddy has
  settled after the last reload, stay within stated bounds of what they
  were before the first. (Right after a burst of reloads there are more:
  old configs' proxy connections to the upstream close a few seconds
  later; peaks are published too.)"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter

import pytest

import stresslib as sl
from stresslib import h

RELOADS = sl.scaled(100)
CLI_EVERY = 10
PAUSE = 0.02  # between reloads, so the load and the probe interleave with them
OUTAGE_BOUND = 1.0  # seconds without a good health probe answer
FD_BOUND = 24  # descriptors: listeners are reused, connections come and go
RSS_BOUND_MIB = 64
B1 = "0.005 0.05 0.5 5"

EXTRA = """	handle /extra/* {
		route_metrics %s
		respond "%s"
	}
"""
NS = """	handle /ns/* {
		route_metrics nsr {
			namespace ns_
		}
		respond "nsr"
	}
"""


def with_buckets(text: str, buckets: str) -> str:
    """The example with a buckets line in its site-level route_metrics
    (a bare directive or a block)."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if re.fullmatch(r"\troute_metrics( \{)?", line):
            if line.endswith("{"):
                lines.insert(i + 1, "\t\tbuckets %s" % buckets)
            else:
                lines[i] = "\troute_metrics {\n\t\tbuckets %s\n\t}" % buckets
            return "\n".join(lines)
    raise AssertionError("no site-level route_metrics in the example")


def variants(ports) -> list[tuple[str, str]]:
    """(description, Caddyfile text) of the configs the reloads cycle
    through; VARIANT_BUCKETS says which buckets each declares."""
    base = h.example_text(ports)
    anchor = "\thandle /metrics {"
    assert anchor in base, "Caddyfile.example has no site-level handle /metrics"

    def with_routes(text, routes):
        return text.replace(anchor, routes + anchor, 1)
    return [
        ("example", base),
        ("add route extra", with_routes(base, EXTRA % ("extra", "extra"))),
        ("rename extra to extra2", with_routes(base, EXTRA % ("extra2", "extra2"))),
        ("remove extra2, buckets B1", with_buckets(base, B1)),
        ("add namespace ns_ route nsr", with_buckets(with_routes(base, NS), B1)),
    ]


VARIANT_BUCKETS = [None, None, None, B1, B1]
# Past this many bucket changes the schedule cycles through the first three
# variants only (routes added, renamed, removed; buckets unchanged). Bucket
# changes among lists already seen cost nothing (test_bucket_churn.py).
BUCKET_CHANGES_MAX = 80


def schedule(i: int) -> int:
    """Variant of reload i (1-based)."""
    return i % 5 if i <= BUCKET_CHANGES_MAX // 2 * 5 else i % 3

PLAN = [("GET", "/"), ("GET", "/api/x"), ("POST", "/contact"), ("GET", "/zq-missing"), ("GET", "/extra/x"),
        ("GET", "/ns/x"), ("PURGE", "/api/y")]


def classify(method: str, path: str, status: int, body: bytes) -> tuple[str, str, str, str]:
    """(family prefix, method label, endpoint, status) the module should
    record for an answered request."""
    if status == 404:
        return ("", sl.method_label(method), "other", "404")
    if path.startswith("/extra/"):
        return ("", method, body.decode(), str(status))
    if path.startswith("/ns/"):
        return ("ns_", method, "nsr", str(status))
    ep = {"/": "home", "/contact": "contact"}.get(path, "api" if path.startswith("/api/") else "other")
    return ("", sl.method_label(method), ep, str(status))


class Client(threading.Thread):
    """Fresh connection per request (a keep-alive connection to a server
    being replaced may be closed under it; counted as a failure then)."""

    def __init__(self, base: str, offset: int):
        super().__init__(daemon=True)
        self.base, self.i = base, offset
        self.answered: Counter = Counter()
        self.failures: list[str] = []
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            method, path = PLAN[self.i % len(PLAN)]
            self.i += 1
            try:
                r = h.request(method, self.base + path, body=b"a=1" if method == "POST" else None, timeout=10,
                              headers={"Content-Type": "application/x-www-form-urlencoded"} if method == "POST" else None)
                self.answered[classify(method, path, r.status, r.body)] += 1
            except Exception as e:
                self.failures.append("%s %s: %s: %s" % (method, path, type(e).__name__, e))

    def stop(self):
        self._stop_event.set()
        self.join(15)


MONOTONIC_SUFFIXES = ("_total",)


def _histogram_sample(key) -> bool:
    """A histogram's samples, and the fold counter of a histogram family
    (the replaced family's count goes with it, and its successor shows up
    only once it has a series)."""
    name, labels = key
    if name == "libmetrics_series_folded_total":
        return dict(labels).get("family", "").endswith("_seconds")
    return name.endswith(("_count", "_sum", "_bucket"))


def _check_monotonic(prev: dict, cur: dict, histograms_too: bool, where: str) -> list[str]:
    out = []
    for key, v in prev.items():
        name = key[0]
        if _histogram_sample(key) and not histograms_too:
            continue
        if name.endswith(MONOTONIC_SUFFIXES) or _histogram_sample(key):
            if key in cur and cur[key] < v:
                out.append("%s: %s went from %s to %s" % (where, key, v, cur[key]))
            elif key not in cur and name.endswith(MONOTONIC_SUFFIXES):
                out.append("%s: %s vanished (was %s)" % (where, key, v))
    return out


def _norm(values: dict) -> dict:
    return {(n, tuple((k, repr(float(x)) if k == "le" else x) for k, x in l)): v for (n, l), v in values.items()}


def settle(c: h.Caddy, pid: int, timeout: float = 25.0) -> dict:
    """Waits at least 6 s, then until the descriptor count has not changed
    for 2 s (at most timeout); returns the readings. The replaced servers'
    connections go away late: Go's Server.Shutdown closes a connection that
    has not sent its first request only once it is 5 s old."""
    t0 = time.monotonic()
    last, since = sl.fd_count(pid), time.monotonic()
    while time.monotonic() - t0 < timeout and (time.monotonic() - t0 < 6.0 or time.monotonic() - since < 2.0):
        time.sleep(0.5)
        n = sl.fd_count(pid)
        if n != last:
            last, since = n, time.monotonic()
    v = h.scrape(c.internal_metrics_url).values()
    return dict(fds=sl.fd_count(pid), rss=sl.rss_bytes(pid), goroutines=v.get(("go_goroutines", ()), 0),
                seconds=time.monotonic() - t0)


def strip_route_metrics(text: str) -> str:
    """The config without any route_metrics (blocks included);
    metrics_endpoint stays."""
    out, skip = [], None
    for line in text.split("\n"):
        if skip is not None:
            if line == skip + "}":
                skip = None
            continue
        if line.strip().startswith("route_metrics"):
            if line.rstrip().endswith("{"):
                skip = line[: len(line) - len(line.lstrip())]
            continue
        out.append(line)
    return "\n".join(out)


def reload_loop(c: h.Caddy, texts: list[str], adapted: list[bytes], each=None) -> list[tuple]:
    reloads = []
    for i in range(1, RELOADS + 1):
        v = schedule(i)
        ts = time.monotonic()
        if i % CLI_EVERY == 0:
            c.write_config(texts[v])
            p = c.reload_cli()
            ok, detail = p.returncode == 0, p.stderr[-300:]
        else:
            r = c.reload_admin(adapted[v])
            ok, detail = r.status == 200, r.body[-300:].decode(errors="replace")
        reloads.append((i, v, ok, time.monotonic() - ts, "" if ok else detail))
        if each:
            each(i, v)
        time.sleep(PAUSE)
    return reloads


def adapt_all(c: h.Caddy, texts: list[str]) -> list[bytes]:
    out = []
    for i, text in enumerate(texts):
        path = c.workdir / ("variant%d.Caddyfile" % i)
        path.write_text(text)
        out.append(h.adapt(path, env=c.env()))
    return out


@pytest.fixture(scope="module")
def baseline(request, caddy_binary):
    """The same reloads under the same load, without route_metrics."""
    ports = sl.free_ports(*h.DEFAULT_PORTS)
    texts = [strip_route_metrics(t) for _d, t in variants(ports)]
    assert not [ln for t in texts for ln in t.split("\n") if ln.strip().startswith(("route_metrics", "namespace"))]
    c = sl.start(request, texts[0], ports, "reload-baseline", probes=sl.example_probes)
    adapted = adapt_all(c, texts)
    clients = [Client(c.site, k) for k in range(3)]
    for t in clients:
        t.start()
    try:
        assert h.wait_until(lambda: sum(sum(cl.answered.values()) for cl in clients) > 30, 10), "load did not start"
        reloads = reload_loop(c, texts, adapted)
    finally:
        for t in clients:
            t.stop()
    assert all(r[2] for r in reloads), [r for r in reloads if not r[2]][:3]
    return dict(answered=sum(sum(cl.answered.values()) for cl in clients),
                failures=[f for cl in clients for f in cl.failures])


@pytest.fixture(scope="module")
def torture(request, caddy_binary):
    ports = sl.free_ports(*h.DEFAULT_PORTS)
    vs = variants(ports)
    c = sl.start(request, vs[0][1], ports, "reload", probes=sl.example_probes)
    pid = c.proc.pid
    adapted = adapt_all(c, [t for _d, t in vs])
    before = _norm(h.scrape(c.internal_metrics_url).values())
    ref = dict(fds=sl.fd_count(pid), rss=sl.rss_bytes(pid), goroutines=before.get(("go_goroutines", ()), 0))
    probe = sl.HealthProbe(c.url("site", "/zq-health"), interval=0.02, ok=(404,))
    clients = [Client(c.site, k) for k in range(3)]
    scraper = sl.Scraper(c.internal_metrics_url, pause=0.1)
    problems, reloads = [], []
    fds, rss, goroutines = [], [], []
    prev = before
    def check(i, v):
        nonlocal prev, problems
        s = h.scrape(c.internal_metrics_url)
        samples = s.samples()
        problems += ["reload %d: duplicate series %s" % (i, d) for d in h.duplicate_series(samples)[:3]]
        problems += ["reload %d: %s" % (i, p) for p in h.histogram_problems(samples)[:3]]
        cur = _norm(s.values())
        problems += _check_monotonic(prev, cur, True, "reload %d (%s)" % (i, vs[v][0]))
        prev = cur
        if v == 0:  # each time back on the example config
            fds.append(sl.fd_count(pid))
            rss.append(sl.rss_bytes(pid))
            goroutines.append(cur.get(("go_goroutines", ()), 0))

    for t in [probe, scraper] + clients:
        t.start()
    t0 = time.monotonic()
    try:
        assert h.wait_until(lambda: sum(sum(cl.answered.values()) for cl in clients) > 30, 10), "load did not start"
        reloads = reload_loop(c, [t for _d, t in vs], adapted, check)
    finally:
        for t in clients:
            t.stop()
        scraper.stop()
        probe.stop()
    wall = time.monotonic() - t0
    settled = settle(c, pid)
    answered = Counter()
    for cl in clients:
        answered.update(cl.answered)
    answered[("", "GET", "other", "404")] += probe.probes - len(probe.failures)
    failures = [f for cl in clients for f in cl.failures] + ["probe: " + f for f in probe.failures]
    want_total = sum(answered.values())
    base_total = sum(v for (n, _l), v in before.items() if n.endswith("http_requests_total"))
    final = h.settled_scrape(c.internal_metrics_url, lambda v: h.in_flight_zero(v) and sum(
        x for (n, _l), x in v.items() if n.endswith("http_requests_total")) - base_total >= want_total)
    final_v = _norm(final.values())
    problems += _check_monotonic(prev, final_v, True, "final")
    # The looping scraper's bodies, in order, must be monotonic too (across
    # bucket changes only the counters).
    prev_s = None
    for k, body in enumerate(scraper.bodies):
        cur = _norm({(n, l): x for n, l, x in h.flat_samples(h.parse_text(body.decode()))})
        problems += ["scraper %d: %s" % (k, p) for p in sl.scrape_problems(body, "text")[:3]]
        if prev_s is not None:
            problems += _check_monotonic(prev_s, cur, True, "scraper %d" % k)
        prev_s = cur
    (sl.OUT / "reload-torture.json").write_text(json.dumps(dict(
        reloads=reloads, problems=problems[:200], failures=failures[:200], fds=fds, rss=rss,
        goroutines=goroutines, ref=ref, settled=settled, longest_outage=probe.longest_outage), indent=1,
        default=str))
    got = Counter()
    for (name, labels), x in final_v.items():
        if name.endswith("http_requests_total"):
            d = dict(labels)
            delta = x - before.get((name, labels), 0)
            if delta:
                got[(name[: -len("http_requests_total")], d["method"], d["endpoint"], d["status"])] = delta
    return dict(caddy=c, before=before, got=got, final_scrape=final, answered=answered, failures=failures,
                problems=problems, reloads=reloads, probe=probe, fds=fds, rss=rss, goroutines=goroutines,
                ref=ref, settled=settled,
                wall=wall, scrapes=len(scraper.bodies) + RELOADS)


def test_reloads_succeed_and_caddy_stays_up(torture):
    bad = [r for r in torture["reloads"] if not r[2]]
    assert not bad, bad[:5]
    assert len(torture["reloads"]) == RELOADS
    p = torture["probe"]
    assert p.probes >= 50, "health probe barely ran: %d" % p.probes
    assert p.longest_outage < OUTAGE_BOUND, "health probe outage %.3f s (failures %s)" % (
        p.longest_outage, p.failures[:5])
    sl.assert_healthy(torture["caddy"])


def test_no_reset_no_duplicates(torture):
    assert not torture["problems"], "\n".join(torture["problems"][:30])


def test_every_request_recorded_under_its_route(torture):
    """Answered requests: recorded exactly under the label set their answer
    names. A request that failed (its connection closed by a server being
    replaced) may or may not have been recorded: it is slack, never more."""
    got = torture["got"]
    want = torture["answered"]
    slack = len(torture["failures"])
    short = {k: (got.get(k, 0), n) for k, n in want.items() if got.get(k, 0) < n}
    assert not short, "answered but not recorded: %s" % short
    extra = sum(got.values()) - sum(want.values())
    assert 0 <= extra <= slack, "recorded %d more than answered, %d failed: %s" % (
        extra, slack, {k: (v, want.get(k, 0)) for k, v in got.items() if v != want.get(k, 0)})
    if slack == 0:
        assert dict(got) == dict(want)
    routes = {k[2] for k in got}
    assert {"extra", "extra2", "nsr", "home", "api", "contact", "other"} <= routes, routes


def test_no_fd_or_memory_growth(torture):
    ref, end = torture["ref"], torture["settled"]
    fd_growth = end["fds"] - ref["fds"]
    rss_growth = (end["rss"] - ref["rss"]) / sl.MIB
    p = torture["probe"]
    changes = sum(1 for i in range(1, RELOADS + 1)
                  if VARIANT_BUCKETS[schedule(i)] != VARIANT_BUCKETS[schedule(i - 1) if i > 1 else 0])
    sl.publish("reload", reloads=RELOADS, cli_reloads=RELOADS // CLI_EVERY, bucket_changes=changes,
               seconds=torture["wall"],
               reload_max_s=max(r[3] for r in torture["reloads"]),
               requests_answered=sum(torture["answered"].values()), failed_requests=len(torture["failures"]),
               lost=sum(max(0, n - torture["got"].get(k, 0)) for k, n in torture["answered"].items()),
               scrapes_checked=torture["scrapes"],
               health_probes=p.probes, health_failures=len(p.failures), longest_outage_s=p.longest_outage,
               outage_bound_s=OUTAGE_BOUND, fds_before=ref["fds"], fds_peak=max(torture["fds"]),
               fds_settled=end["fds"], fd_growth=fd_growth, fd_bound=FD_BOUND,
               rss_before_mib=ref["rss"] / sl.MIB, rss_growth_mib=rss_growth, rss_bound_mib=RSS_BOUND_MIB,
               goroutines_before=ref["goroutines"], goroutines_peak=max(torture["goroutines"]),
               goroutines_settled=end["goroutines"], settle_s=end["seconds"])
    assert fd_growth <= FD_BOUND, "open descriptors: before %d, per cycle %s, settled %d" % (
        ref["fds"], torture["fds"], end["fds"])
    assert rss_growth < RSS_BOUND_MIB, "VmRSS (MiB): before %.1f, per cycle %s, settled %.1f" % (
        ref["rss"] / sl.MIB, [round(x / sl.MIB, 1) for x in torture["rss"]], end["rss"] / sl.MIB)
    assert end["goroutines"] <= ref["goroutines"] + 2 * FD_BOUND, (ref["goroutines"], end["goroutines"])


CLOSED_BY_SERVER = ("ConnectionResetError", "RemoteDisconnected", "BrokenPipeError")


def test_failures_no_worse_than_baseline(torture, baseline):
    """Only server-side closes (never refused connections or timeouts),
    and at most twice the baseline's rate plus one point (the rate is noisy:
    it depends on where the reloads fall)."""
    fails = torture["failures"]
    kinds = [f for f in fails if not f.split(": ", 1)[-1].startswith(CLOSED_BY_SERVER)]
    assert not kinds, kinds[:10]
    n = sum(torture["answered"].values()) + len(fails)
    rate = len(fails) / n
    b = baseline
    base_rate = len(b["failures"]) / (b["answered"] + len(b["failures"]))
    sl.publish("reload_baseline", reloads=RELOADS, requests=b["answered"] + len(b["failures"]),
               failed_without_module=len(b["failures"]), rate_without_module=base_rate,
               failed_with_module=len(fails), rate_with_module=rate)
    assert rate <= 2 * base_rate + 0.01, (rate, base_rate)
