"""Request size and namespaces through a real Caddy: http_request_size_bytes_total
counts exactly the request body bytes the handlers read (a Content-Length
upload and a chunked one proxied to an upstream that reads them to the end,
a body nobody reads), and a nested route_metrics with its own namespace owns
the request in every family, the upstream latency included. Its own Caddy on
free ports and a stdlib upstream that reports how many body bytes it read."""

from __future__ import annotations

import http.client
import json
from http.server import BaseHTTPRequestHandler

import pytest

import helpers as h
from conftest import run_caddy

CONFIG = """{
	admin localhost:%(admin)d
	auto_https off
}

http://127.0.0.1:%(site)d {
	bind 127.0.0.1
	route_metrics {
		namespace rqs_
	}
	handle /upload* {
		route_metrics upload
		reverse_proxy 127.0.0.1:%(upstream)d
	}
	handle /ignore* {
		route_metrics ignored
		respond "not read" 200
	}
	handle /inner* {
		route_metrics inner {
			namespace rqsin_
		}
		handle /inner/leaf* {
			route_metrics leaf
			reverse_proxy 127.0.0.1:%(upstream)d
		}
		reverse_proxy 127.0.0.1:%(upstream)d
	}
}

http://127.0.0.1:%(internal)d {
	bind 127.0.0.1
	metrics_endpoint
}
"""


def _read_chunked(rfile) -> int:
    """Reads a chunked body to its end (trailers included); returns its size."""
    total = 0
    while True:
        size = int(rfile.readline().split(b";")[0].strip(), 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return total
        total += len(rfile.read(size))
        rfile.readline()


class CountingUpstream:
    """Reads every request body to the end and answers {"read": n}."""

    def __init__(self):
        self.reads: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self):
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    n = _read_chunked(self.rfile)
                else:
                    n = len(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                outer.reads.append(n)
                body = json.dumps({"read": n}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = _any

            def log_message(self, *args):
                pass

        self.server = h.start_http_server(Handler)
        self.port = self.server.server_address[1]

    def stop(self):
        h.stop_http_server(self.server)


@pytest.fixture(scope="module")
def upstream():
    u = CountingUpstream()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def caddy(request, caddy_binary, upstream):
    ports = {"site": h.free_port(), "internal": h.free_port(), "admin": h.free_port()}

    def probes(c):
        return {"internal": lambda: h.request("GET", c.internal_metrics_url, timeout=2).status == 200}
    return run_caddy(request, CONFIG % dict(ports, upstream=upstream.port), ports=ports,
                     name="test_request_size", probes=probes)


def _values(c):
    return h.scrape(c.internal_metrics_url).values()


def _settled(c, before, name, **match):
    """The scrape once the request counter matching labels moved."""
    def moved(v):
        return sum(h.series(v, name, **match).values()) > sum(h.series(before, name, **match).values())
    return h.settled_scrape(c.internal_metrics_url, moved).values()


def _chunked_put(c, path: str, chunks: list[bytes]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", c.ports["site"], timeout=15)
    try:
        conn.request("PUT", path, body=iter(chunks), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked", "Connection": "close"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_content_length_upload_read_by_the_upstream(caddy):
    before = _values(caddy)
    body = b"a" * 100_000
    r = h.request("POST", caddy.url("site", "/upload"), body=body)
    assert r.status == 200 and json.loads(r.body) == {"read": 100_000}, r
    after = _settled(caddy, before, "rqs_http_requests_total", endpoint="upload")
    d = h.delta(before, after, ["rqs_http_request_size_bytes_total", "rqs_http_requests_total"])
    k = h.labels_key(method="POST", endpoint="upload", status="200")
    assert d == {("rqs_http_request_size_bytes_total", k): 100_000, ("rqs_http_requests_total", k): 1}, d


def test_chunked_upload_read_by_the_upstream(caddy):
    before = _values(caddy)
    chunks = [b"x" * 30_000, b"y" * 25_000, b"z" * 15_001]
    status, body = _chunked_put(caddy, "/upload", chunks)
    assert status == 200 and json.loads(body) == {"read": 70_001}, (status, body)
    after = _settled(caddy, before, "rqs_http_requests_total", endpoint="upload")
    d = h.delta(before, after, ["rqs_http_request_size_bytes_total"])
    k = h.labels_key(method="PUT", endpoint="upload", status="200")
    assert d == {("rqs_http_request_size_bytes_total", k): 70_001}, d


def test_body_nobody_reads_counts_nothing(caddy):
    before = _values(caddy)
    r = h.request("POST", caddy.url("site", "/ignore"), body=b"q" * 5000)
    assert r.status == 200 and r.body == b"not read"
    after = _settled(caddy, before, "rqs_http_requests_total", endpoint="ignored")
    k = ("rqs_http_request_size_bytes_total", h.labels_key(method="POST", endpoint="ignored", status="200"))
    assert k in after, "no request size series for the route: %s" % h.series(after, k[0])
    assert after[k] - before.get(k, 0) == 0, "bytes nobody read were counted: %s" % (after[k] - before.get(k, 0))


@pytest.mark.parametrize("path,endpoint", [("/inner/x", "inner"), ("/inner/leaf", "leaf")])
def test_inner_namespace_owns_the_request(caddy, upstream, path, endpoint):
    """route_metrics inner { namespace rqsin_ } inside a site whose namespace
    is rqs_: the request, its bytes, its upstream latency are rqsin_'s, and
    so are those of a route_metrics nested in it without a namespace."""
    before = _values(caddy)
    r = h.request("POST", caddy.url("site", path), body=b"n" * 321)
    assert r.status == 200 and json.loads(r.body) == {"read": 321}, r
    after = _settled(caddy, before, "rqsin_http_requests_total", endpoint=endpoint)
    d = h.delta(before, after, [n for n in {k[0] for k in after} if n.startswith(("rqs_", "rqsin_"))])
    k = h.labels_key(method="POST", endpoint=endpoint, status="200")
    up = h.labels_key(endpoint=endpoint, upstream="127.0.0.1:%d" % upstream.port)
    for name, want in (("rqsin_http_requests_total", 1), ("rqsin_http_request_duration_seconds_count", 1),
                       ("rqsin_http_request_size_bytes_total", 321),
                       ("rqsin_http_upstream_duration_seconds_count", 1)):
        key = (name, up if "upstream" in name else k)
        assert d.get(key) == want, "%s moved by %s, want %s: %s" % (name, d.get(key), want, d)
    outer = {key: v for key, v in d.items() if key[0].startswith("rqs_")}
    assert not outer, "the outer namespace recorded part of the request: %s" % outer

