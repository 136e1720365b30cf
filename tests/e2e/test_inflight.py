"""In-flight gauge and latency against an upstream the test controls: held
requests show up in http_requests_in_progress exactly once (under the
innermost route), their latency lands in the right buckets, and the gauge
returns to 0 when requests finish, when clients hang up mid-request and
when the upstream is gone. Uses its own Caddy on free ports with a small
config, so it can run next to the example instance."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest

import helpers as h
from conftest import run_caddy

HOLD = 0.4  # seconds every held request waits at least; above the 0.25 s bucket

CONFIG = """{
	admin localhost:%(admin)d
	auto_https off
}

http://127.0.0.1:%(site)d {
	bind 127.0.0.1
	route_metrics
	handle /slow* {
		route_metrics slow
		reverse_proxy 127.0.0.1:%(upstream)d
	}
	handle {
		respond 404
	}
}

# Scrapes go to a listener without route_metrics so they never see themselves in flight.
http://127.0.0.1:%(internal)d {
	bind 127.0.0.1
	metrics_endpoint
}
"""


class SlowUpstream:
    """Answers GET /slow only when released; counts arrivals."""

    def __init__(self):
        self.release = threading.Event()
        self.arrived = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.startswith("/slow/status/"):
                    # Any status the test asks for, including ones outside 100..599.
                    code = int(self.path.rsplit("/", 1)[1])
                    self.send_response_only(code, "X")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with outer.lock:
                    outer.arrived += 1
                outer.release.wait(20)  # bounded even if a test forgets to release
                body = b"slow answer\n"
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the proxy gave up on us (client went away)

            def log_message(self, *args):
                pass

        self.server = h.serve_http(Handler)
        self.port = self.server.server_address[1]

    def wait_arrived(self, n: int, timeout: float = 10) -> bool:
        return h.wait_until(lambda: self.arrived >= n, timeout, 0.01)

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def upstream():
    u = SlowUpstream()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def slow_caddy(request, caddy_binary, upstream):
    ports = {"site": h.free_port(), "internal": h.free_port(), "admin": h.free_port()}

    def probes(c):
        return {"internal": lambda: h.request("GET", c.internal_metrics_url, timeout=2).status == 200,
                "admin": lambda: c.admin("GET", "/config/", timeout=2).status == 200}
    # The upstream's port is ours and busy by design: not in the ports Caddy must find free.
    return run_caddy(request, CONFIG % dict(ports, upstream=upstream.port), ports=ports, name="test_inflight",
                     probes=probes)


def _values(c):
    return h.scrape(c.internal_metrics_url).values()


def _gauges(v) -> dict[str, float]:
    return {dict(l)["endpoint"]: g for l, g in h.series(v, "http_requests_in_progress").items()}


def _slow_requests(v) -> dict[str, float]:
    return {dict(l)["status"]: n for l, n in h.series(v, "http_requests_total", endpoint="slow").items()}


def test_held_requests_counted_once_then_recorded(slow_caddy, upstream):
    c = slow_caddy
    upstream.release.clear()
    before = _values(c)
    base = upstream.arrived
    results = []

    def one():
        try:
            results.append(h.request("GET", c.url("site", "/slow"), timeout=15).status)
        except Exception as e:
            results.append(repr(e))
    threads = [threading.Thread(target=one) for _ in range(5)]
    for t in threads:
        t.start()
    assert upstream.wait_arrived(base + 5), "only %d of 5 requests reached the upstream" % (upstream.arrived - base)
    held_at = time.monotonic()
    during = _values(c)
    time.sleep(max(0.0, HOLD - (time.monotonic() - held_at)))
    upstream.release.set()
    for t in threads:
        t.join(20)
    assert results == [200] * 5, results
    g = _gauges(during)
    assert g.get("slow") == 5, "in-flight while 5 requests are held: %s" % g
    assert sum(g.values()) == 5, "a held request is counted under more than one route: %s" % g

    after = h.settled_scrape(c.internal_metrics_url, h.in_flight_zero).values()
    assert all(v == 0 for v in _gauges(after).values()), _gauges(after)
    d = h.delta(before, after, ["http_requests_total", "http_request_duration_seconds_count",
                                "http_request_duration_seconds_bucket", "http_request_duration_seconds_sum"])
    key = h.labels_key(method="GET", endpoint="slow", status="200")
    assert d.get(("http_requests_total", key)) == 5, d
    assert d.get(("http_request_duration_seconds_count", key)) == 5, d
    # Every one of them waited at least HOLD seconds in the upstream.
    for le, want in (("0.25", 0), ("+Inf", 5)):
        got = d.get(("http_request_duration_seconds_bucket", h.labels_key(method="GET", endpoint="slow",
                                                                          status="200", le=le)), 0)
        assert got == want, "bucket le=%s moved by %s, expected %s: %s" % (le, got, want, d)
    total = d.get(("http_request_duration_seconds_sum", key), 0)
    assert 5 * HOLD <= total <= 5 * 20, "latency sum %.3f s for 5 requests held >= %.1f s" % (total, HOLD)


def test_client_hangup_leaves_no_in_flight(slow_caddy, upstream):
    c = slow_caddy
    upstream.release.clear()
    before = _values(c)
    base = upstream.arrived
    socks = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", c.ports["site"]), timeout=5)
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        socks.append(s)
    try:
        assert upstream.wait_arrived(base + 3), "requests did not reach the upstream"
        assert _gauges(_values(c)).get("slow") == 3
    finally:
        for s in socks:
            s.close()
    # The upstream still holds them: only the hang-up can end these requests.
    # The handler leaves the in-flight gauge just before its record call, so
    # a scrape may fall between the two: wait for both.
    before_total = sum(_slow_requests(before).values())
    after = h.settled_scrape(
        c.internal_metrics_url,
        lambda v: h.in_flight_zero(v) and sum(_slow_requests(v).values()) - before_total >= 3,
        timeout=10).values()
    upstream.release.set()
    assert all(v == 0 for v in _gauges(after).values()), "in-flight after client hang-up: %s" % _gauges(after)
    got = {st: n - _slow_requests(before).get(st, 0) for st, n in _slow_requests(after).items()
           if n != _slow_requests(before).get(st, 0)}
    assert sum(got.values()) == 3, "3 abandoned requests recorded as %s" % got
    assert set(got) <= {"499", "502"}, "abandoned requests recorded with status %s" % got


def test_upstream_down_recorded_as_502(request, caddy_binary):
    # A fresh Caddy whose upstream port has nothing listening.
    ports = {"site": h.free_port(), "internal": h.free_port(), "admin": h.free_port(), "upstream": h.free_port()}

    def probes(c):
        return {"internal": lambda: h.request("GET", c.internal_metrics_url, timeout=2).status == 200}
    c = run_caddy(request, CONFIG % ports, ports=ports, name="test_inflight_down", probes=probes)
    before = _values(c)
    statuses = [h.request("GET", c.url("site", "/slow")).status for _ in range(4)]
    assert statuses == [502] * 4, statuses
    after = h.settled_scrape(c.internal_metrics_url, lambda v: _slow_requests(v).get("502", 0) >= 4).values()
    assert _slow_requests(after).get("502", 0) - _slow_requests(before).get("502", 0) == 4, _slow_requests(after)
    assert all(v == 0 for v in _gauges(after).values()), _gauges(after)


@pytest.mark.parametrize("code,label", [(418, "418"), (599, "599"), (600, "other"), (777, "other"), (999, "other")])
def test_status_label_bounded(slow_caddy, code, label):
    """Statuses outside 100..599 (an upstream can send up to 999) are
    recorded as status="other", so the label set stays bounded."""
    c = slow_caddy
    before = _values(c)
    r = h.request("GET", c.url("site", "/slow/status/%d" % code))
    assert r.status == code
    after = h.settled_scrape(c.internal_metrics_url, lambda v: sum(_slow_requests(v).values()) > sum(
        _slow_requests(before).values())).values()
    d = {st: n - _slow_requests(before).get(st, 0) for st, n in _slow_requests(after).items()
         if n != _slow_requests(before).get(st, 0)}
    assert d == {label: 1}, d


def test_requests_spanning_a_reload(slow_caddy, upstream):
    """Requests held while the config is reloaded finish on the old handlers:
    each is recorded once and the in-flight gauge returns to 0, although the
    old handlers are cleaned up around them."""
    c = slow_caddy
    upstream.release.clear()
    before = _values(c)
    base = upstream.arrived
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        h.request("GET", c.url("site", "/slow"), timeout=30).status)) for _ in range(4)]
    for t in threads:
        t.start()
    assert upstream.wait_arrived(base + 4)
    reload = {}
    # Caddy may wait for the old server's requests before it answers the
    # reload, so the reload runs beside us while we release the upstream.
    rt = threading.Thread(target=lambda: reload.setdefault("p", c.reload_cli()))
    rt.start()
    time.sleep(1.0)
    mid = _gauges(_values(c))
    upstream.release.set()
    for t in threads:
        t.join(30)
    rt.join(60)
    assert reload["p"].returncode == 0, reload["p"].stderr[-1500:]
    assert results == [200] * 4, results
    assert mid.get("slow") == 4, "in-flight during the reload: %s" % mid
    after = h.settled_scrape(c.internal_metrics_url, h.in_flight_zero).values()
    assert all(v == 0 for v in _gauges(after).values()), _gauges(after)
    assert _slow_requests(after).get("200", 0) - _slow_requests(before).get("200", 0) == 4
    # And the reloaded handlers count as before.
    before = after
    assert h.request("GET", c.url("site", "/slow/status/204")).status == 204
    after = h.settled_scrape(c.internal_metrics_url, lambda v: _slow_requests(v).get("204", 0) > _slow_requests(
        before).get("204", 0)).values()
    assert _slow_requests(after).get("204", 0) - _slow_requests(before).get("204", 0) == 1
