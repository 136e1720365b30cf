"""Faults around the metrics path.

1. Scrapers that hang up mid-body (plain and gzip, FIN and RST) while the
   exposition is large (10,000+ series from a status flood): Caddy keeps
   serving, descriptors and goroutines come back, the next scrape is whole
   and valid.
2. A scraper that reads 1 byte per 10 ms holds a cursor open for
   SLOW_SECONDS: meanwhile other scrapes, plain requests, requests that
   create new series (the registry's slow path takes its lock) and a
   reload that adds a route all proceed with normal latency. The streaming
   endpoint holds no lock while it waits on a client.
3. An upstream that times out, resets, closes without answering, or cuts
   its body short, and an upstream that is not there at all: Caddy answers
   504/502 and records exactly what each client was answered."""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import stresslib as sl
from stresslib import h
from test_cardinality import CAP_METHODS, CAP_ROUTES, cap_config

HANGUPS = 40
SLOW_SECONDS = 8.0
# Latency bounds while the slow reader holds its cursor. Plain requests are
# tiny; a whole scrape of the large exposition is several MB.
REQUEST_P99_BOUND = 0.25
SCRAPE_MAX_FACTOR = 3.0  # x the slowest scrape measured before, plus SCRAPE_SLACK
SCRAPE_SLACK = 0.5


def _get_partial(port: int, path: str, nbytes: int, gzip_ok: bool, rst: bool) -> int:
    """Requests path, reads about nbytes of the answer, then hangs up
    (RST if rst). Returns the bytes read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n" % (
            path, "Accept-Encoding: gzip\r\n" if gzip_ok else "")).encode())
        got = 0
        while got < nbytes:
            d = s.recv(min(65536, nbytes - got))
            if not d:
                break
            got += len(d)
        if rst:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return got
    finally:
        s.close()


def _settle_fds(pid: int, target: int, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    n = sl.fd_count(pid)
    while n > target and time.monotonic() < deadline:
        time.sleep(0.2)
        n = sl.fd_count(pid)
    return n


@pytest.fixture(scope="module")
def big(request, caddy_binary):
    """The over-the-cap config of test_cardinality, flooded so the
    exposition is large."""
    ports = sl.free_ports("site", "internal", "admin")
    c = sl.start(request, cap_config(ports), ports, "faults-big")
    plan = [(r, m, s) for r in CAP_ROUTES for m in CAP_METHODS for s in range(200, 600)]
    random.Random(5).shuffle(plan)

    def make(i):
        r, m, s = plan[i]
        return ("%s /%s/x?s=%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % (m, r, s)).encode(), None, m == "HEAD"
    load = sl.RawLoad("127.0.0.1", ports["site"], make, len(plan), connections=8, depth=16).run()
    assert load.answered == len(plan), load.errors[:5]
    return c


def test_hangups_mid_body(big):
    c = big
    pid = c.proc.pid
    full = h.scrape(c.internal_metrics_url)
    size = len(full.body)
    assert size > 2 << 20, "exposition too small to hang up mid-body: %d bytes" % size
    fds0 = sl.fd_count(pid)
    g0 = full.values()[("go_goroutines", ())]
    rng = random.Random(7)
    read = 0
    for k in range(HANGUPS):
        gz = k % 2 == 1
        read += _get_partial(c.ports["internal"], "/metrics", rng.randint(1, size // 2), gz, rst=k % 4 >= 2)
    # The server notices on its next write; then the handler returns.
    fds1 = _settle_fds(pid, fds0 + 2)
    after = h.scrape(c.internal_metrics_url)
    om = h.scrape(c.internal_metrics_url, fmt="openmetrics", gzip_ok=True)
    assert om.content_encoding == "gzip"
    g1 = after.values()[("go_goroutines", ())]
    problems = h.exposition_problems(after, om, "stress-faults-hangup")
    assert not problems, "\n".join(problems[:10])
    assert abs(len(after.body) - size) < size // 10, (len(after.body), size)
    sl.publish("fault_hangup", hangups=HANGUPS, exposition_bytes=size, bytes_read_before_hangup=read,
               fds_before=fds0, fds_after=fds1, goroutines_before=g0, goroutines_after=g1)
    assert fds1 <= fds0 + 2, (fds0, fds1)
    assert g1 <= g0 + 5, (g0, g1)
    sl.assert_healthy(c)


class SlowReader(threading.Thread):
    """Reads the big exposition 1 byte every 10 ms through a small receive
    buffer, so the server's writes block almost at once."""

    def __init__(self, port: int, seconds: float):
        super().__init__(daemon=True)
        self.port, self.seconds = port, seconds
        self.bytes = 0
        self.error = None
        self.started = threading.Event()

    def run(self):
        try:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(5)
            s.connect(("127.0.0.1", self.port))
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            t_end = time.monotonic() + self.seconds
            while time.monotonic() < t_end:
                d = s.recv(1)
                if not d:
                    self.error = "server closed the slow connection after %d bytes" % self.bytes
                    break
                self.bytes += 1
                self.started.set()
                time.sleep(0.01)
            s.close()
        except OSError as e:
            self.error = "%s: %s" % (type(e).__name__, e)
        finally:
            self.started.set()


def _timed(fn):
    t = time.monotonic()
    fn()
    return time.monotonic() - t


def test_slow_reader_blocks_nobody(big):
    c = big
    site, internal = c.url("site", ""), c.internal_metrics_url
    # Baseline: scrape and request latencies with nobody slow.
    base_scrapes = [_timed(lambda: h.scrape(internal)) for _ in range(3)]
    # The slow scrape goes to the site's /metrics, which route_metrics
    # counts: its in-flight gauge shows the handler (and so the cursor)
    # still open while everything else runs.
    slow = SlowReader(c.ports["site"], SLOW_SECONDS)
    slow.start()
    assert slow.started.wait(5) and slow.error is None, slow.error
    t0 = time.monotonic()
    scrapes, requests, new_series = [], [], []
    reload_s = None
    i = 0
    while time.monotonic() - t0 < SLOW_SECONDS - 1.5:
        scrapes.append(_timed(lambda: h.scrape(internal)))
        for _ in range(10):
            requests.append(_timed(lambda: h.request("GET", site + "/r0/x?s=200")))
        # A (method, status) never seen on this route (the flood left
        # CONNECT out): lm_route_record takes the registry's slow path (its
        # lock) to resolve the series.
        code = 200 + i % 400
        new_series.append(_timed(lambda: h.request("CONNECT", site + "/r1/x?s=%d" % code)))
        i += 1
        if reload_s is None and time.monotonic() - t0 > 2:
            # A reload that adds a route: registers under the registry lock.
            text = c.config_path.read_text().replace(
                "\thandle {\n\t\trespond 404", "\thandle /added/* {\n\t\troute_metrics added\n\t\trespond \"a\"\n"
                "\t}\n\thandle {\n\t\trespond 404", 1)
            t = time.monotonic()
            p = c.reload_cli(text)
            reload_s = time.monotonic() - t
            assert p.returncode == 0, p.stderr[-500:]
            assert h.request("GET", site + "/added/x").status == 200
    still_reading = slow.is_alive()
    held = h.series(h.scrape(internal).values(), "http_requests_in_progress", endpoint="other")
    slow.join(SLOW_SECONDS + 10)
    assert slow.error is None, slow.error
    assert still_reading, "the slow reader finished early: the test measured nothing"
    assert sum(held.values()) == 1, "the slow scrape's handler is not in flight: %s" % held
    v = h.scrape(internal).values()
    # The requests family is at its cap, so the added route's requests fold
    # into _overflow; its in-flight gauge proves the route was registered.
    assert h.series(v, "http_requests_in_progress", endpoint="added"), "the added route was not registered"
    scrape_bound = SCRAPE_MAX_FACTOR * max(base_scrapes) + SCRAPE_SLACK
    p99 = sl.percentile(requests, 99)
    sl.publish("fault_slow_reader", slow_seconds=SLOW_SECONDS, slow_bytes_read=slow.bytes,
               scrapes_meanwhile=len(scrapes), scrape_max_s=max(scrapes), scrape_baseline_max_s=max(base_scrapes),
               scrape_bound_s=scrape_bound, requests_meanwhile=len(requests), request_p99_ms=p99 * 1e3,
               request_max_ms=max(requests) * 1e3, request_p99_bound_ms=REQUEST_P99_BOUND * 1e3,
               new_series_requests=len(new_series), new_series_max_ms=max(new_series) * 1e3,
               reload_meanwhile_s=reload_s)
    assert reload_s is not None and reload_s < 10, reload_s
    assert max(scrapes) < scrape_bound, (scrapes, base_scrapes)
    assert p99 < REQUEST_P99_BOUND and max(new_series) < REQUEST_P99_BOUND * 4, (p99, max(new_series))
    sl.assert_healthy(c)


# ------------------------------------------------------------ upstream faults

UPSTREAM_CONFIG = """{
	admin localhost:%(admin)d
	auto_https off
}

http://127.0.0.1:%(site)d {
	bind 127.0.0.1
	route_metrics
	handle /up/* {
		route_metrics up
		reverse_proxy 127.0.0.1:%(upstream)d {
			transport http {
				dial_timeout 1s
				response_header_timeout %(timeout)s
			}
		}
	}
	handle /gone/* {
		route_metrics gone
		reverse_proxy 127.0.0.1:%(closed)d
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
KINDS = ("ok", "sleep", "rst", "close", "partial", "gone")
PER_KIND = sl.scaled(40)
EXPECTED = {"ok": 200, "sleep": 504, "rst": 502, "close": 502, "partial": 200, "gone": 502}
# What the module records: what the client saw. "partial": the 200 status
# line went out, then reverse_proxy aborted the stream with
# panic(http.ErrAbortHandler) ("aborting with incomplete response"); the
# request is recorded with its 200 and counted in
# http_responses_aborted_total (README: Status).
RECORDED = EXPECTED


def _closed_port() -> int:
    """A port nobody listens on (bound, never listened, kept until exit so
    nobody else takes it)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _closed_port.keep = s
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def upstream_run(request, caddy_binary):
    up = sl.FaultyUpstream(sleep=1.5)
    up.start()
    request.addfinalizer(up.stop)
    ports = sl.free_ports("site", "internal", "admin")
    text = UPSTREAM_CONFIG % dict(ports, upstream=up.port, closed=_closed_port(), timeout="300ms")
    c = sl.start(request, text, ports, "faults-upstream")
    before = h.scrape(c.internal_metrics_url).values()
    jobs = [k for k in KINDS for _ in range(PER_KIND)]
    random.Random(11).shuffle(jobs)

    def one(kind):
        path = "/gone/x" if kind == "gone" else "/up/" + kind
        t = time.monotonic()
        try:
            r = h.request("GET", c.url("site", path), timeout=10)
            return kind, r.status, len(r.body), None, time.monotonic() - t
        except Exception as e:  # partial: the status line came, the body did not
            return kind, None, 0, "%s: %s" % (type(e).__name__, e), time.monotonic() - t
    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, jobs))
    wall = time.monotonic() - t0
    n = len(jobs)
    base = sum(h.series(before, "http_requests_total").values())
    after = h.settled_scrape(c.internal_metrics_url, lambda v: h.in_flight_zero(v) and sum(
        h.series(v, "http_requests_total").values()) - base >= n, timeout=15)
    return dict(caddy=c, up=up, before=before, after=after, results=results, wall=wall)


def test_upstream_faults_recorded_exactly(upstream_run):
    res = upstream_run["results"]
    by_kind = {}
    for kind, status, _n, err, _t in res:
        by_kind.setdefault(kind, []).append(status if err is None else "error")
    for kind, got in by_kind.items():
        if kind == "partial":
            # 200 and its headers went out before the upstream died: the
            # client sees a short body (an error) or a 200.
            assert set(got) <= {200, "error"}, (kind, set(got))
        else:
            assert set(got) == {EXPECTED[kind]}, (kind, set(got), [r[3] for r in res if r[0] == kind][:3])
    b, a = upstream_run["before"], upstream_run["after"].values()
    delta = {}
    for labels, v in h.series(a, "http_requests_total").items():
        d = dict(labels)
        x = v - h.series(b, "http_requests_total").get(labels, 0)
        if x:
            delta[(d["endpoint"], d["status"])] = x
    want = {}
    for kind in KINDS:
        key = ("gone" if kind == "gone" else "up", str(RECORDED[kind]))
        want[key] = want.get(key, 0) + PER_KIND
    assert delta == want, (delta, want)
    # Only the cut responses, each once, under the route they were counted in.
    aborted = {dict(labels)["endpoint"]: v - h.series(b, "http_responses_aborted_total").get(labels, 0)
               for labels, v in h.series(a, "http_responses_aborted_total").items()}
    assert {k: v for k, v in aborted.items() if v} == {"up": PER_KIND}, aborted
    # Timeouts waited for the proxy's response_header_timeout, not the
    # upstream's sleep.
    sleeps = [t for kind, _s, _n, _e, t in res if kind == "sleep"]
    assert max(sleeps) < 1.4, max(sleeps)
    problems = h.exposition_problems(upstream_run["after"], h.scrape(
        upstream_run["caddy"].internal_metrics_url, fmt="openmetrics"), "stress-faults-upstream")
    assert not problems, "\n".join(problems)
    sl.publish("fault_upstream", requests=len(res), per_kind=PER_KIND,
               **{"%s_status" % k: "/".join(str(x) for x in sorted(set(v), key=str)) for k, v in by_kind.items()},
               aborted=sum(aborted.values()), recorded_504=delta.get(("up", "504"), 0), recorded_502=delta.get(("up", "502"), 0) + delta.get(
                   ("gone", "502"), 0), recorded_200=delta.get(("up", "200"), 0), lost=sum(want.values()) - sum(
                   delta.values()), upstream_connections=sum(upstream_run["up"].seen.values()),
               seconds=upstream_run["wall"])
    # Caddy still serves the healthy path afterwards.
    assert h.request("GET", upstream_run["caddy"].url("site", "/up/ok")).status == 200
    sl.assert_healthy(upstream_run["caddy"])

