"""Exact counts over HTTP/2 and HTTP/3. Caddy serves TLS with its local CA
(`tls internal`, root never installed in the system's trust store) on a port
free in TCP and UDP, and answers {http.request.proto}, so each response
says which protocol carried it:

- HTTP/2: N concurrent requests as N streams of ONE TLS connection (pinned
  httpx[http2] from the tests' virtual environment);
- HTTP/3: N concurrent requests as N streams of one QUIC connection (pinned
  aioquic).

Each is counted exactly once under its route, the histogram counts match,
the in-flight gauge is back to 0, and nothing else moved. The clients
verify Caddy's certificate against the local CA's root."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

import helpers as h
from conftest import run_caddy

N = 60
CLIENT = Path(__file__).resolve().parent / "proto" / "http_client.py"

CONFIG = """{
	admin localhost:%(admin)d
	skip_install_trust
	auto_https disable_redirects
}

https://127.0.0.1:%(site)d {
	bind 127.0.0.1
	tls internal
	route_metrics {
		namespace prt_
	}
	handle /proto* {
		route_metrics proto
		respond "{http.request.proto}" 200
	}
}

http://127.0.0.1:%(internal)d {
	bind 127.0.0.1
	metrics_endpoint
}
"""


def free_tcp_udp_port() -> int:
    """A port free on 127.0.0.1 for TCP (HTTPS) and UDP (QUIC) alike."""
    for _ in range(50):
        port = h.free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError("no port free for both TCP and UDP after 50 tries")


def root_ca(c) -> Path:
    return c.workdir / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"


def _https_ok(c) -> bool:
    ctx = ssl.create_default_context(cafile=str(root_ca(c)))
    conn = http.client.HTTPSConnection("127.0.0.1", c.ports["site"], context=ctx, timeout=2)
    try:
        conn.request("GET", "/proto/ready")
        return conn.getresponse().status == 200
    finally:
        conn.close()


@pytest.fixture(scope="module")
def caddy(request, caddy_binary):
    ports = {"site": free_tcp_udp_port(), "internal": h.free_port(), "admin": h.free_port()}

    def probes(c):
        return {"internal": lambda: h.request("GET", c.internal_metrics_url, timeout=2).status == 200,
                "https": lambda: root_ca(c).exists() and _https_ok(c)}
    return run_caddy(request, CONFIG % ports, ports=ports, name="test_protocols", probes=probes)


def _run_client(venv_python, mode: str, c) -> dict:
    url = "https://127.0.0.1:%d/proto/%s" % (c.ports["site"], mode)
    p = subprocess.run([str(venv_python), str(CLIENT), mode, url, str(root_ca(c)), str(N)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, "%s client failed:\n%s" % (mode, p.stderr[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode,proto,version", [("h2", "HTTP/2.0", "HTTP/2"), ("h3", "HTTP/3.0", "h3")])
def test_exact_counts(caddy, venv_python, mode, proto, version):
    before = h.scrape(caddy.internal_metrics_url).values()
    seen = _run_client(venv_python, mode, caddy)
    # The protocol actually used: Caddy's own view ({http.request.proto}) and the client's.
    assert seen["statuses"] == {"200": N}, seen
    assert seen["bodies"] == {proto: N}, seen
    assert seen["versions"] == {version: N}, seen
    assert seen["connections"] == 1, "the %d requests did not share one connection: %s" % (N, seen)

    key = h.labels_key(method="GET", endpoint="proto", status="200")
    after = h.settled_scrape(caddy.internal_metrics_url, lambda v: v.get(
        ("prt_http_requests_total", key), 0) - before.get(("prt_http_requests_total", key), 0) >= N).values()
    d = h.delta(before, after, ["prt_http_requests_total", "prt_http_request_duration_seconds_count",
                                "prt_http_response_size_bytes_total"])
    assert d == {("prt_http_requests_total", key): N,
                 ("prt_http_request_duration_seconds_count", key): N,
                 ("prt_http_response_size_bytes_total", key): N * len(proto)}, d
    inf = ("prt_http_request_duration_seconds_bucket", h.labels_key(method="GET", endpoint="proto", status="200",
                                                                    le="+Inf"))
    assert after[inf] - before.get(inf, 0) == N
    gauges = h.series(after, "prt_http_requests_in_progress")
    assert gauges and all(v == 0 for v in gauges.values()), gauges
