"""Exact accounting: a known set of requests per route, method and status
moves every per-request family by exactly that much, nothing else moves, and
both /metrics listeners and both formats tell the same story."""

from __future__ import annotations

import http.client
import re
import socket
import threading
from collections import Counter

import pytest

import helpers as h

FORM = b"name=e2e&email=e2e%40example.com&message=hello"

# (method, path, body, method label, endpoint label, repetitions). Statuses
# are read from the answers, then the spec's statuses are asserted apart, so
# a wrong status and a wrong count fail different tests.
PLAN = [
    ("GET", "/", None, "GET", "home", 5),
    ("GET", "/?q=1&x=%22", None, "GET", "home", 1),  # the query is not part of the path
    ("HEAD", "/", None, "HEAD", "home", 3),
    ("get", "/", None, "OTHER", "home", 1),  # methods are case-sensitive
    ("GET", "/api/x", None, "GET", "api", 4),
    ("GET", "/api/", None, "GET", "api", 1),
    ("POST", "/api/x", FORM, "POST", "api", 1),  # a POST elsewhere is no submission
    ("PURGE", "/api/x", None, "OTHER", "api", 2),
    ("GET", "/contact", None, "GET", "contact", 2),
    ("POST", "/contact", FORM, "POST", "contact", 3),
    ("DELETE", "/contact", None, "DELETE", "contact", 1),
    ("GET", "/e2e-no-such-page", None, "GET", "other", 2),
    ("GET", "/api", None, "GET", "other", 1),  # /api/* does not match /api
    ("OPTIONS", "/e2e-no-such-page", None, "OPTIONS", "other", 1),
]

SPEC_STATUS = {  # statuses the spec fixes
    ("GET", "/"): 200,
    ("HEAD", "/"): 200,
    ("GET", "/api/x"): 200,
    ("GET", "/contact"): 200,
    ("POST", "/contact"): 201,
    ("GET", "/e2e-no-such-page"): 404,
}

COUNTER_SAMPLES = ("http_requests_total", "http_response_size_bytes_total",
                   "http_request_duration_seconds_count", "http_request_duration_seconds_sum",
                   "http_request_duration_seconds_bucket", "contact_submissions_total",
                   "libmetrics_series_folded_total")


@pytest.fixture(scope="module")
def traffic(example_caddy):
    """Scrape, send PLAN, scrape: returns what was sent and both scrapes."""
    c = example_caddy
    # Warm-up so every route's first-sight slow path is behind us and the
    # in-flight gauges exist; the before-scrape happens after it.
    for method, path, body, *_ in PLAN:
        h.request(method, c.url("site", path), body=body)
    before = h.settled_scrape(c.internal_metrics_url, h.in_flight_zero).values()
    expected = Counter()  # (method label, endpoint, status) -> n
    sizes = Counter()
    observed = {}
    contact_ok = 0
    for method, path, body, mlabel, endpoint, n in PLAN:
        for _ in range(n):
            hdrs = {"Content-Type": "application/x-www-form-urlencoded"} if body else None
            r = h.request(method, c.url("site", path), body=body, headers=hdrs)
            observed.setdefault((method, path), set()).add(r.status)
            expected[(mlabel, endpoint, str(r.status))] += 1
            sizes[(mlabel, endpoint, str(r.status))] += len(r.body)
            if method == "POST" and path == "/contact" and 200 <= r.status < 300:
                contact_ok += 1
    total_before = sum(h.series(before, "http_requests_total").values())

    def done(v):
        return (sum(h.series(v, "http_requests_total").values()) - total_before >= sum(expected.values())
                and h.in_flight_zero(v))
    after_text = h.settled_scrape(c.internal_metrics_url, done)
    after_om = h.scrape(c.internal_metrics_url, fmt="openmetrics")
    return dict(before=before, after=after_text.values(), after_text=after_text, after_om=after_om,
                expected=expected, sizes=sizes, observed=observed, contact_ok=contact_ok)


def _by_labels(d: dict, name: str) -> dict:
    """{(method, endpoint, status): value} for one sample name of a delta."""
    out = {}
    for (n, labels), v in d.items():
        if n == name:
            lab = dict(labels)
            out[(lab.get("method"), lab.get("endpoint"), lab.get("status"))] = v
    return out


def test_spec_statuses(traffic):
    wrong = {k: sorted(v) for k, v in traffic["observed"].items()
             if k in SPEC_STATUS and v != {SPEC_STATUS[k]}}
    assert not wrong, "statuses differ from the spec %s: got %s" % (SPEC_STATUS, wrong)


def test_requests_total_exact(traffic):
    d = h.delta(traffic["before"], traffic["after"], ["http_requests_total"])
    assert _by_labels(d, "http_requests_total") == dict(traffic["expected"])


def test_duration_histogram_count_exact(traffic):
    after = traffic["after"]
    d = h.delta(traffic["before"], after, ["http_request_duration_seconds_count"])
    assert _by_labels(d, "http_request_duration_seconds_count") == dict(traffic["expected"])
    # +Inf bucket == _count for every series, and _sum moved for every series we hit.
    counts = h.series(after, "http_request_duration_seconds_count")
    for labels, count in counts.items():
        inf = after.get(("http_request_duration_seconds_bucket", tuple(sorted(dict(labels, le="+Inf").items()))))
        assert inf == count, "series %s: +Inf bucket %s != _count %s" % (labels, inf, count)
    sums = h.delta(traffic["before"], after, ["http_request_duration_seconds_sum"])
    assert all(v > 0 for v in sums.values()), "a latency _sum went down: %s" % sums


def test_histogram_series_match_counter_series(traffic):
    after = traffic["after"]
    req = set(h.series(after, "http_requests_total"))
    hist = set(h.series(after, "http_request_duration_seconds_count"))
    size = set(h.series(after, "http_response_size_bytes_total"))
    assert req == hist == size, "label sets differ: only counter %s, only histogram %s, only size %s" % (
        req - hist, hist - req, size ^ req)


def test_response_bytes_exact(traffic):
    d = h.delta(traffic["before"], traffic["after"], ["http_response_size_bytes_total"])
    got = _by_labels(d, "http_response_size_bytes_total")
    want = {k: v for k, v in traffic["sizes"].items() if v}
    assert got == want, "response bytes (body bytes the client received; HEAD carries none)"


def test_contact_submissions_exact(traffic):
    key = ("contact_submissions_total", h.labels_key(**h.CONTACT_LABELS))
    assert key in traffic["after"], "contact_submissions_total%s missing; contact series: %s" % (
        h.CONTACT_LABELS, h.series(traffic["after"], "contact_submissions_total"))
    assert traffic["contact_ok"] == 3
    assert traffic["after"][key] - traffic["before"].get(key, 0) == traffic["contact_ok"]
    d = h.delta(traffic["before"], traffic["after"], ["contact_submissions_total"])
    assert list(d) == [key], "only the website/fastapi series may move: %s" % d


def test_in_progress_back_to_zero(traffic):
    gauges = {dict(labels).get("endpoint"): v
              for labels, v in h.series(traffic["after"], "http_requests_in_progress").items()}
    assert set(gauges) >= {"home", "api", "contact", "other"}, gauges
    assert all(v == 0 for v in gauges.values()), gauges


def test_label_values_bounded(traffic):
    for labels in h.series(traffic["after"], "http_requests_total"):
        lab = dict(labels)
        assert set(lab) == {"method", "endpoint", "status"}, lab
        assert lab["method"] in h.STANDARD_METHODS + ("OTHER",), lab
        assert lab["endpoint"] in h.ROUTES, lab
        assert lab["status"].isdigit() or lab["status"] == "other", lab


def test_families_present(traffic):
    s = traffic["after_text"]
    names = {n for (n, _l) in traffic["after"]}
    for sample in ("http_requests_total", "http_request_duration_seconds_bucket",
                   "http_request_duration_seconds_sum", "http_request_duration_seconds_count",
                   "http_response_size_bytes_total", "http_requests_in_progress",
                   "contact_submissions_total"):
        assert sample in names, "no %s sample in the scrape" % sample
    text = s.text
    for fam, typ in (("http_requests_total", "counter"), ("http_request_duration_seconds", "histogram"),
                     ("http_response_size_bytes_total", "counter"), ("http_requests_in_progress", "gauge"),
                     ("contact_submissions_total", "counter"), ("libmetrics_series_folded_total", "counter")):
        assert "# TYPE %s %s\n" % (fam, typ) in text, "no '# TYPE %s %s' line" % (fam, typ)
        assert "# HELP %s " % fam in text, "no HELP for %s" % fam
    assert any(n.startswith("process_") for n in names), "no process_* samples"
    assert any(n.startswith("go_") for n in names), "no go_* runtime samples"


def test_exposition_valid_after_traffic(traffic):
    problems = h.exposition_problems(traffic["after_text"], traffic["after_om"], "counts")
    assert not problems, "\n".join(problems)


def _counters(values: dict) -> dict:
    return {k: v for k, v in values.items() if k[0] in COUNTER_SAMPLES}


def test_both_endpoints_same_registry(example_caddy, traffic):
    c = example_caddy
    # A scrape of :8080/metrics may itself be a recorded request; bracket it
    # with :9091 scrapes and require it to equal one of them exactly.
    x1 = _counters(h.scrape(c.internal_metrics_url).values())
    site = h.scrape(c.metrics_url)
    assert site.status == 200, "loopback GET :8080/metrics -> %d" % site.status
    b = _counters(site.values())
    x2 = _counters(h.scrape(c.internal_metrics_url).values())
    assert x1, "no counters in the :9091 scrape"
    assert b in (x1, x2), "counters differ between :8080/metrics and :9091/metrics: %s" % (
        h.json_dumps({"site_minus_internal": {str(k): b.get(k, 0) - x1.get(k, 0)
                                              for k in set(b) | set(x1) if b.get(k) != x1.get(k)}}))


def test_scrapes_of_internal_listener_not_recorded(example_caddy):
    c = example_caddy
    before = h.scrape(c.internal_metrics_url).values()
    for _ in range(5):
        h.scrape(c.internal_metrics_url)
        h.scrape(c.internal_metrics_url, fmt="openmetrics")
    after = h.scrape(c.internal_metrics_url).values()
    assert h.delta(before, after, ["http_requests_total"]) == {}


@pytest.mark.parametrize("where", ["site", "internal"])
@pytest.mark.parametrize("fmt", ["text", "openmetrics"])
def test_gzip(example_caddy, where, fmt):
    c = example_caddy
    url = c.metrics_url if where == "site" else c.internal_metrics_url
    plain = h.scrape(url, fmt=fmt)
    assert plain.status == 200 and plain.content_encoding in (None, "identity"), (
        "no Accept-Encoding: got %d %r" % (plain.status, plain.content_encoding))
    z = h.scrape(url, fmt=fmt, gzip_ok=True)
    assert z.status == 200
    assert z.content_encoding == "gzip", "Accept-Encoding: gzip ignored on %s (%s)" % (url, fmt)
    assert z.raw[:2] == b"\x1f\x8b" and len(z.raw) < len(z.body)
    assert z.content_type == plain.content_type
    fams = {f.name for f in z.families()}
    assert "http_requests" in fams or "http_requests_total" in fams, sorted(fams)[:20]


def test_openmetrics_negotiation(example_caddy):
    c = example_caddy
    for url in (c.metrics_url, c.internal_metrics_url):
        om = h.scrape(url, fmt="openmetrics")
        assert om.status == 200
        assert om.content_type.startswith("application/openmetrics-text"), om.content_type
        assert "version=1.0.0" in om.content_type, om.content_type
        assert om.body.endswith(b"# EOF\n"), om.body[-60:]
        assert om.body.count(b"# EOF") == 1
        h.parse_openmetrics(om.text)  # strict: raises on any violation
        text = h.scrape(url)
        assert text.content_type.startswith("text/plain") and "version=0.0.4" in text.content_type, (
            text.content_type)
        assert b"# EOF" not in text.body
        # Scrapers that do not ask for OpenMetrics get text. (A browser's
        # text/html Accept gets the status page: test_status_page.py.)
        for accept in ("text/plain", "text/plain;version=0.0.4;q=1,*/*;q=0.1", "*/*"):
            r = h.scrape(url, headers={"Accept": accept})
            assert r.content_type.startswith("text/plain"), (accept, r.content_type)


def _settle_total(c, before: dict, n: int) -> dict:
    base = sum(h.series(before, "http_requests_total").values())
    return h.settled_scrape(c.internal_metrics_url, lambda v: h.in_flight_zero(v) and sum(
        h.series(v, "http_requests_total").values()) - base >= n).values()


def test_concurrent_keepalive_exact(example_caddy):
    """Many client threads on keep-alive connections, so requests run on
    several OS threads at once (several libmetrics shards): no increment may
    be lost or doubled."""
    c = example_caddy
    threads_n, per_thread = 8, 150
    plan = [("GET", "/", None), ("GET", "/api/k", None), ("POST", "/contact", FORM), ("GET", "/nope-k", None)]
    before = h.scrape(c.internal_metrics_url).values()
    got = Counter()
    errors = []
    lock = threading.Lock()

    def worker(i):
        conn = http.client.HTTPConnection("127.0.0.1", c.ports["site"], timeout=10)
        local = Counter()
        try:
            for j in range(per_thread):
                method, path, body = plan[(i + j) % len(plan)]
                conn.request(method, path, body=body,
                             headers={"Content-Type": "application/x-www-form-urlencoded"} if body else {})
                r = conn.getresponse()
                r.read()
                local[(method, path, r.status)] += 1
        except Exception as e:
            errors.append(repr(e))
        finally:
            conn.close()
            with lock:
                got.update(local)
    scrape_problems = []
    stop = threading.Event()

    def scraper():
        # Scrapes racing the writers: each must be internally consistent and
        # no counter may go backwards between two of them.
        prev = {}
        n = 0
        while not stop.is_set() and n < 200:
            n += 1
            s = h.scrape(c.internal_metrics_url, fmt="openmetrics" if n % 2 else "text")
            try:
                samples = s.samples()
            except Exception as e:
                scrape_problems.append("%s scrape %d unparsable: %s" % (s.fmt, n, e))
                continue
            scrape_problems.extend(h.histogram_problems(samples)[:5])
            cur = {(name, labels): v for name, labels, v in samples
                   if name in ("http_requests_total", "http_request_duration_seconds_count")}
            scrape_problems.extend("%s went %s -> %s" % (k, v, cur.get(k)) for k, v in prev.items()
                                   if cur.get(k, -1) < v)
            prev = cur
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
    sc = threading.Thread(target=scraper)
    sc.start()
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    stop.set()
    sc.join(60)
    assert not scrape_problems, scrape_problems[:10]
    assert not errors, errors[:5]
    assert sum(got.values()) == threads_n * per_thread
    after = _settle_total(c, before, threads_n * per_thread)
    endpoint = {"/": "home", "/api/k": "api", "/contact": "contact", "/nope-k": "other"}
    want = Counter()
    for (method, path, status), n in got.items():
        want[(method, endpoint[path], str(status))] += n
    d = h.delta(before, after, ["http_requests_total", "http_request_duration_seconds_count"])
    assert _by_labels(d, "http_requests_total") == dict(want)
    assert _by_labels(d, "http_request_duration_seconds_count") == dict(want)
    key = ("contact_submissions_total", h.labels_key(**h.CONTACT_LABELS))
    assert after[key] - before[key] == sum(n for (m, p, s), n in got.items() if p == "/contact" and s == 201)


def test_pipelined_requests_each_counted(example_caddy):
    c = example_caddy
    before = h.scrape(c.internal_metrics_url).values()
    reqs = (b"GET /api/p1 HTTP/1.1\r\nHost: localhost\r\n\r\n"
            b"HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n"
            b"POST /contact HTTP/1.1\r\nHost: localhost\r\nContent-Length: 6\r\n\r\nname=p"
            b"GET /api/p2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    resp = h.raw_request("127.0.0.1", c.ports["site"], reqs)
    assert [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3})", resp)] == [200, 200, 201, 200], resp[:500]
    after = _settle_total(c, before, 4)
    d = _by_labels(h.delta(before, after, ["http_requests_total"]), "http_requests_total")
    assert d == {("GET", "api", "200"): 2, ("HEAD", "home", "200"): 1, ("POST", "contact", "201"): 1}


def test_expect_100_continue_records_final_status(example_caddy):
    """An interim 100 Continue must not be taken for the final status."""
    c = example_caddy
    before = h.scrape(c.internal_metrics_url).values()
    body = b"name=expect&message=hi"
    with socket.create_connection(("127.0.0.1", c.ports["site"]), timeout=10) as s:
        s.sendall(b"POST /contact HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
                  b"Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        s.settimeout(2)
        first = b""
        try:
            first = s.recv(4096)  # 100 Continue, or the final answer if the server skips it
        except OSError:
            pass
        s.settimeout(10)
        s.sendall(body)
        rest = first
        while True:
            b = s.recv(65536)
            if not b:
                break
            rest += b
    finals = [int(x) for x in re.findall(rb"HTTP/1\.1 (\d{3})", rest) if not x.startswith(b"1")]
    assert finals == [201], rest[:500]
    after = _settle_total(c, before, 1)
    d = _by_labels(h.delta(before, after, ["http_requests_total"]), "http_requests_total")
    assert d == {("POST", "contact", "201"): 1}, d


@pytest.mark.parametrize("gz", [False, True])
def test_site_scrape_recorded_with_exact_bytes(example_caddy, gz):
    """The :8080/metrics scrape is itself a request of route "other"; its
    response bytes are the bytes on the wire (compressed when gzip)."""
    c = example_caddy
    before = h.settled_scrape(c.internal_metrics_url, h.in_flight_zero).values()
    s = h.scrape(c.metrics_url, gzip_ok=gz)
    assert s.status == 200 and (s.content_encoding == "gzip") == gz
    after = _settle_total(c, before, 1)
    key = ("GET", "other", "200")
    assert _by_labels(h.delta(before, after, ["http_requests_total"]), "http_requests_total") == {key: 1}
    d = _by_labels(h.delta(before, after, ["http_response_size_bytes_total"]), "http_response_size_bytes_total")
    assert d == {key: len(s.raw)}, "bytes counted %s, bytes received %d" % (d, len(s.raw))


@pytest.mark.parametrize("ae,gz", [("gzip;q=0", False), ("identity", False), ("br, gzip;q=0.5", True),
                                   ("*", True), ("*;q=0", False), ("deflate", False)])
def test_gzip_negotiation(example_caddy, ae, gz):
    s = h.scrape(example_caddy.internal_metrics_url, headers={"Accept-Encoding": ae})
    assert s.status == 200
    assert (s.content_encoding == "gzip") == gz, (ae, s.content_encoding)
    h.parse_text(s.text)


@pytest.mark.parametrize("accept,om", [
    # Prometheus 2.x's scrape Accept header.
    ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1", True),
    ("application/openmetrics-text;q=0, text/plain", False),
    ("text/plain;q=0.9, application/openmetrics-text;q=0.5", False),
    ("", False),
])
def test_accept_negotiation(example_caddy, accept, om):
    s = h.scrape(example_caddy.internal_metrics_url, headers={"Accept": accept})
    assert s.status == 200
    assert s.content_type.startswith("application/openmetrics-text" if om else "text/plain"), (accept, s.content_type)


def test_process_metrics_match_proc(example_caddy):
    """process_* describe the Caddy process itself, as /proc sees it."""
    import os
    c = example_caddy
    pid = c.proc.pid
    v = {n: val for (n, labels), val in h.scrape(c.internal_metrics_url).values().items() if not labels}
    page = os.sysconf("SC_PAGE_SIZE")
    size, resident = (int(x) for x in open("/proc/%d/statm" % pid).read().split()[:2])
    fds = len(os.listdir("/proc/%d/fd" % pid))
    soft = next(line.split()[3] for line in open("/proc/%d/limits" % pid) if line.startswith("Max open files"))
    assert abs(v["process_start_time_seconds"] - c.started_at) < 3, (v["process_start_time_seconds"], c.started_at)
    assert abs(v["process_open_fds"] - fds) <= 5, (v["process_open_fds"], fds)
    assert v["process_max_fds"] == float(soft), (v["process_max_fds"], soft)
    assert 0.5 < v["process_resident_memory_bytes"] / (resident * page) < 2, (v["process_resident_memory_bytes"], resident * page)
    assert 0.5 < v["process_virtual_memory_bytes"] / (size * page) < 2, (v["process_virtual_memory_bytes"], size * page)
    assert 0 <= v["process_cpu_seconds_total"] < 600
    assert v["process_threads"] >= 1 and v["go_goroutines"] >= 1 and v["go_threads"] >= 1
