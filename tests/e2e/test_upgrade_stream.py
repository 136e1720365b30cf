"""Upgraded and streaming requests through reverse_proxy, with exact counts
and the latency bucket each request landed in:

- a WebSocket held open HOLD seconds (the pinned `websockets` package, from
  the tests' virtual environment, as upstream echo server and as client) is
  counted once with status 101 while it is still open, its latency the
  handshake's, and leaves http_requests_in_progress for
  http_upgraded_connections_in_progress; its lifetime lands in
  http_upgraded_connection_duration_seconds;
- a Server-Sent Events stream is recorded at its first byte by default and
  at its end under `latency complete`; a long chunked download under
  `latency first_byte` at its first byte.

Its own Caddy on free ports; stdlib upstream for the streams."""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

import helpers as h
from conftest import run_caddy

HOLD = 3.0  # seconds the WebSocket stays open
EVENTS, GAP = 4, 0.4  # the stream sends an event every GAP seconds: >= 1.2 s in all
PEER = Path(__file__).resolve().parent / "proto" / "websocket_peer.py"

CONFIG = """{
	admin localhost:%(admin)d
	auto_https off
}

http://127.0.0.1:%(site)d {
	bind 127.0.0.1
	route_metrics {
		namespace ups_
	}
	handle /ws* {
		route_metrics chat
		reverse_proxy 127.0.0.1:%(ws)d
	}
	handle /sse* {
		route_metrics events
		reverse_proxy 127.0.0.1:%(stream)d
	}
	handle /full* {
		route_metrics events_full {
			latency complete
		}
		reverse_proxy 127.0.0.1:%(stream)d
	}
	handle /download* {
		route_metrics download {
			latency first_byte
		}
		reverse_proxy 127.0.0.1:%(stream)d
	}
}

http://127.0.0.1:%(internal)d {
	bind 127.0.0.1
	metrics_endpoint
}
"""


class StreamUpstream:
    """GET /sse*, /full*: text/event-stream, EVENTS events GAP seconds apart.
    GET /download*: application/octet-stream of unknown length, the same
    pace. The body ends when the connection closes (HTTP/1.0)."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                sse = not self.path.startswith("/download")
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream" if sse else "application/octet-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                self.wfile.flush()
                for i in range(EVENTS):
                    time.sleep(GAP)
                    self.wfile.write(b"data: event %d\n\n" % i if sse else b"x" * 1000)
                    self.wfile.flush()

            def log_message(self, *args):
                pass

        self.server = h.start_http_server(Handler)
        self.port = self.server.server_address[1]

    def stop(self):
        h.stop_http_server(self.server)


@pytest.fixture(scope="module")
def ws_upstream(venv_python):
    p = subprocess.Popen([str(venv_python), str(PEER), "serve"], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("port "), "WebSocket upstream did not start: %r" % line
        yield int(line.split()[1])
    finally:
        p.kill()
        p.wait(10)


@pytest.fixture(scope="module")
def stream_upstream():
    u = StreamUpstream()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def caddy(request, caddy_binary, ws_upstream, stream_upstream):
    ports = {"site": h.free_port(), "internal": h.free_port(), "admin": h.free_port()}

    def probes(c):
        return {"internal": lambda: h.request("GET", c.internal_metrics_url, timeout=2).status == 200}
    return run_caddy(request, CONFIG % dict(ports, ws=ws_upstream, stream=stream_upstream.port), ports=ports,
                     name="test_upgrade_stream", probes=probes)


def _values(c):
    return h.scrape(c.internal_metrics_url).values()


def _moved(before, after, name, **match) -> float:
    return sum(h.series(after, name, **match).values()) - sum(h.series(before, name, **match).values())


def _bucket(before, after, endpoint, status, le) -> float:
    return _moved(before, after, "ups_http_request_duration_seconds_bucket", endpoint=endpoint, status=status, le=le)


def test_websocket_counted_at_the_upgrade_lifetime_apart(caddy, venv_python):
    before = _values(caddy)
    client = subprocess.Popen([str(venv_python), str(PEER), "client", "ws://127.0.0.1:%d/ws/chat" %
                               caddy.ports["site"], str(HOLD)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        assert client.stdout.readline().strip() == "open", client.stderr.read()
        # The connection is open: the handshake is a finished request.
        during = h.settled_scrape(caddy.internal_metrics_url, lambda v: _moved(
            before, v, "ups_http_requests_total", endpoint="chat") >= 1).values()
        out, err = client.communicate(timeout=HOLD + 30)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(10)
    assert client.returncode == 0, err
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["echoed"] >= 2 and seen["held_s"] >= HOLD, seen

    assert _moved(before, during, "ups_http_requests_total", method="GET", endpoint="chat", status="101") == 1
    assert h.series(during, "ups_http_requests_in_progress", endpoint="chat") == {
        h.labels_key(endpoint="chat"): 0}, "the open WebSocket is still a request in progress"
    assert h.series(during, "ups_http_upgraded_connections_in_progress", endpoint="chat") == {
        h.labels_key(endpoint="chat"): 1}, "the open WebSocket is not an upgraded connection in progress"

    after = h.settled_scrape(caddy.internal_metrics_url, lambda v: _moved(
        before, v, "ups_http_upgraded_connection_duration_seconds_count", endpoint="chat") >= 1).values()
    d = h.delta(before, after, ["ups_http_requests_total"])
    assert d == {("ups_http_requests_total", h.labels_key(method="GET", endpoint="chat", status="101")): 1}, d
    # Latency: the handshake, not the 3 s the connection was open.
    assert _moved(before, after, "ups_http_request_duration_seconds_count", endpoint="chat") == 1
    assert _bucket(before, after, "chat", "101", "0.25") == 1
    assert _moved(before, after, "ups_http_request_duration_seconds_sum", endpoint="chat") < 0.25
    # Lifetime: in its own family.
    life = "ups_http_upgraded_connection_duration_seconds"
    assert _moved(before, after, life + "_count", endpoint="chat") == 1
    assert _moved(before, after, life + "_bucket", endpoint="chat", le="1.0") == 0
    assert _moved(before, after, life + "_bucket", endpoint="chat", le="30.0") == 1
    lifetime = _moved(before, after, life + "_sum", endpoint="chat")
    assert HOLD <= lifetime <= seen["closed_s"] + 1, (lifetime, seen)
    assert h.series(after, "ups_http_upgraded_connections_in_progress", endpoint="chat") == {
        h.labels_key(endpoint="chat"): 0}
    assert all(v == 0 for v in h.series(after, "ups_http_requests_in_progress").values()), \
        h.series(after, "ups_http_requests_in_progress")


def _stream(c, path: str) -> tuple[int, bytes, float, float]:
    """GET path; returns status, body, time to the first body byte and to
    the end, as the client saw them."""
    conn = http.client.HTTPConnection("127.0.0.1", c.ports["site"], timeout=30)
    try:
        t0 = time.monotonic()
        conn.request("GET", path, headers={"Connection": "close"})
        r = conn.getresponse()
        first = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        t_first = time.monotonic() - t0
        body = first + r.read()
        return r.status, body, t_first, time.monotonic() - t0
    finally:
        conn.close()


@pytest.mark.parametrize("path,endpoint,first_byte", [
    ("/sse/feed", "events", True),             # default: an event stream is recorded at its first byte
    ("/full/feed", "events_full", False),      # latency complete: at its end
    ("/download/file", "download", True),      # latency first_byte: any long body at its first byte
])
def test_stream_latency(caddy, path, endpoint, first_byte):
    before = _values(caddy)
    status, body, _t_first, t_all = _stream(caddy, path)
    assert status == 200
    expect = b"".join(b"data: event %d\n\n" % i for i in range(EVENTS)) if "download" not in path \
        else b"x" * 1000 * EVENTS
    assert body == expect
    assert t_all >= EVENTS * GAP, "the stream took %.2f s, expected >= %.2f" % (t_all, EVENTS * GAP)
    after = h.settled_scrape(caddy.internal_metrics_url, lambda v: _moved(
        before, v, "ups_http_requests_total", endpoint=endpoint) >= 1).values()
    d = h.delta(before, after, ["ups_http_requests_total", "ups_http_response_size_bytes_total"])
    k = h.labels_key(method="GET", endpoint=endpoint, status="200")
    assert d == {("ups_http_requests_total", k): 1, ("ups_http_response_size_bytes_total", k): len(expect)}, d
    # The stream lasts >= 1.6 s; its first byte comes at once (well under
    # 1 s even on a loaded machine): le="1.0" tells the two apart.
    early = _bucket(before, after, endpoint, "200", "1.0")
    slow = _bucket(before, after, endpoint, "200", "+Inf")
    total = _moved(before, after, "ups_http_request_duration_seconds_sum", endpoint=endpoint)
    assert slow == 1
    if first_byte:
        assert early == 1 and total < 1.0, "recorded %.3f s, not the time to the first byte" % total
    else:
        assert early == 0 and EVENTS * GAP <= total <= t_all, "recorded %.3f s, not the whole stream" % total
    assert h.series(after, "ups_http_requests_in_progress", endpoint=endpoint) == {h.labels_key(endpoint=endpoint): 0}
