"""metrics_endpoint behind a layer-4 forwarder that speaks the PROXY protocol.

A TCP forwarder (HAProxy in `mode tcp`, a load balancer, a port forward)
adds no forwarding header: without more, every public client it forwards
is its own local address, which metrics_endpoint serves. With Caddy's
`proxy_protocol` listener wrapper (the README's advice), the forwarder
names the real client in a PROXY header and Caddy makes it the peer: a
public client is refused (reason "address", counted exactly), for the
exposition and the status page alike, and a private one served.

The forwarder is simulated on loopback: raw TCP connections that start
with a PROXY protocol v1 line, as HAProxy's `send-proxy` writes it."""

from __future__ import annotations

import pytest

import helpers as h
from conftest import run_caddy

CONFIG = """{
	admin localhost:%(admin)d
	auto_https off
	servers {
		listener_wrappers {
			proxy_protocol {
				allow 127.0.0.1/32
			}
		}
	}
}

http://127.0.0.1:%(internal)d {
	bind 127.0.0.1
	metrics_endpoint
}
"""


@pytest.fixture(scope="module")
def caddy(request, caddy_binary):
    ports = {"internal": h.free_port(), "admin": h.free_port()}

    def probes(c):
        return {"internal": lambda: h.request("GET", c.internal_metrics_url, timeout=2).status == 200}
    return run_caddy(request, CONFIG % ports, ports=ports, name="test_proxy_protocol", probes=probes)


def via_forwarder(caddy, client: str, path: str = "/metrics") -> bytes:
    """A request as a PROXY-protocol forwarder on loopback passes it on for client."""
    port = caddy.ports["internal"]
    family = "TCP6" if ":" in client else "TCP4"
    local = "::1" if family == "TCP6" else "127.0.0.1"
    line = "PROXY %s %s %s 40000 %d\r\n" % (family, client, local, port)
    req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % (path, port)
    return h.raw_request("127.0.0.1", port, (line + req).encode())


def refused_address(caddy) -> float:
    v = h.scrape(caddy.internal_metrics_url).values()
    got = [val for (name, labels), val in v.items()
           if name == "metrics_endpoint_refused_total" and dict(labels).get("reason") == "address"]
    assert len(got) == 1, "no metrics_endpoint_refused_total{reason=\"address\"} in the exposition"
    return got[0]


@pytest.mark.parametrize("client", ["203.0.113.7", "198.51.100.20", "2001:db8::7", "::ffff:203.0.113.9"])
def test_public_client_named_by_proxy_header_refused(caddy, client):
    resp = via_forwarder(caddy, client)
    assert h.raw_status(resp) == 403, resp[:300]
    assert b"http_requests_total" not in resp and b"# TYPE" not in resp


@pytest.mark.parametrize("client", ["10.1.2.3", "192.168.7.8", "fd00::5"])
def test_private_client_named_by_proxy_header_served(caddy, client):
    resp = via_forwarder(caddy, client)
    assert h.raw_status(resp) == 200, resp[:300]
    assert b"# TYPE metrics_endpoint_refused_total counter" in resp


def test_refusals_counted_exactly_as_address(caddy):
    before = refused_address(caddy)
    for client in ("203.0.113.7", "203.0.113.8", "2001:db8::9"):
        assert h.raw_status(via_forwarder(caddy, client)) == 403
    assert h.raw_status(via_forwarder(caddy, "10.9.8.7")) == 200
    assert refused_address(caddy) - before == 3


def test_status_page_refused_too(caddy):
    resp = via_forwarder(caddy, "203.0.113.7", "/metrics?format=html")
    assert h.raw_status(resp) == 403, resp[:300]
    assert b"<html" not in resp.lower()
