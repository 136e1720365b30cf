"""/metrics on the public site is for private/loopback clients only. A client
in a network namespace with a public-looking address (198.51.100.0/24,
TEST-NET-2, not in private_ranges) must get 403 and no metrics, whatever
headers or path spellings it tries, while the app itself still serves it
and loopback still gets metrics. Needs root for `ip netns`; fails (does not
skip) without it."""

from __future__ import annotations

import os
import subprocess

import pytest

import helpers as h
from conftest import run_caddy

METRIC_WORDS = (b"http_requests", b"# TYPE", b"# HELP", b"process_", b"go_goroutines",
                b"libmetrics_", b"contact_submissions")


def _run(*cmd: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
    p = subprocess.run(list(cmd), capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (rc=%d): %s" % (" ".join(cmd), p.returncode,
                                                        p.stderr.decode(errors="replace")))
    return p


def _pick_subnet(prefix: str) -> int:
    """A free /30 inside prefix.0/24, chosen from the pid so concurrent runs
    on one machine use different addresses as well as names."""
    used = _run("ip", "-o", "-4", "addr", "show").stdout.decode()
    for i in range(64):
        base = ((os.getpid() + i) % 63) * 4
        if " %s.%d/" % (prefix, base + 1) not in used:
            return base
    raise AssertionError("no free /30 in %s.0/24: %s" % (prefix, used))


def _make_ns(request, tag: str, prefix: str) -> dict:
    """A namespace joined to the host by a veth pair on a /30 of prefix.0/24;
    torn down by a finalizer registered before anything is created."""
    pid = os.getpid()
    ns, host_if, ns_if = "e2e%s%d" % (tag, pid), "e2%sh%d" % (tag, pid), "e2%sn%d" % (tag, pid)
    base = _pick_subnet(prefix)
    host_ip, ns_ip = "%s.%d" % (prefix, base + 1), "%s.%d" % (prefix, base + 2)

    def teardown():
        # Deleting the namespace destroys its veth end and so the pair; the
        # explicit link delete covers a failure before the move.
        _run("ip", "netns", "del", ns, check=False)
        if _run("ip", "link", "show", host_if, check=False).returncode == 0:
            _run("ip", "link", "del", host_if, check=False)

    request.addfinalizer(teardown)
    _run("ip", "netns", "add", ns)
    _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
    _run("ip", "link", "set", ns_if, "netns", ns)
    _run("ip", "addr", "add", host_ip + "/30", "dev", host_if)
    _run("ip", "link", "set", host_if, "up")
    _run("ip", "-n", ns, "addr", "add", ns_ip + "/30", "dev", ns_if)
    _run("ip", "-n", ns, "link", "set", ns_if, "up")
    _run("ip", "-n", ns, "link", "set", "lo", "up")
    return {"ns": ns, "host_ip": host_ip, "ns_ip": ns_ip}


def _need_root():
    if os.geteuid() != 0:
        pytest.fail("test_netns.py needs root (ip netns add, veth pairs); run tests/e2e.sh as root",
                    pytrace=False)


@pytest.fixture(scope="module")
def netns(request):
    """A client with a public-looking address (TEST-NET-2)."""
    _need_root()
    return _make_ns(request, "p", "198.51.100")


@pytest.fixture(scope="module")
def private_ns(request):
    """A client in 10.0.0.0/8, one of the private ranges /metrics admits."""
    _need_root()
    return _make_ns(request, "q", "10.254.77")


@pytest.fixture(scope="module")
def ns_caddy(request, caddy_binary, netns, private_ns):
    # Sites without their own `bind` listen on loopback and the veth
    # addresses only; a listener the example binds explicitly keeps its own.
    ports = h.suite_ports()
    bind = " ".join(("127.0.0.1", netns["host_ip"], private_ns["host_ip"]))
    return run_caddy(request, h.example_text(ports, bind=bind), ports=ports, name="test_netns")


def curl_from_ns(netns, url: str, *args: str) -> tuple[int, bytes, int]:
    """(curl exit code, body, HTTP status or 0) for a request made inside the
    namespace."""
    p = _run("ip", "netns", "exec", netns["ns"], "curl", "-sS", "--path-as-is", "--max-time", "5",
             "-o", "-", "-w", "\n%{http_code}", *args, url, check=False)
    body, _, code = p.stdout.rpartition(b"\n")
    return p.returncode, body, int(code or 0)


def _metric_words(body: bytes) -> list[bytes]:
    return [w for w in METRIC_WORDS if w in body]


def test_namespace_reaches_host(netns, ns_caddy):
    # Guards the 403 tests: a refused connection must not pass for a refusal.
    rc, body, status = curl_from_ns(netns, "http://%s:%d/" % (netns["host_ip"], ns_caddy.ports["site"]))
    assert (rc, status) == (0, 200), "namespace %s cannot reach the site on %s: curl rc=%d HTTP %d" % (
        netns["ns"], netns["host_ip"], rc, status)


def test_metrics_forbidden_from_outside(netns, ns_caddy):
    rc, body, status = curl_from_ns(netns, "http://%s:%d/metrics" % (netns["host_ip"], ns_caddy.ports["site"]))
    assert rc == 0, "curl rc=%d" % rc
    assert status == 403, "GET /metrics from %s -> %d: %r" % (netns["ns_ip"], status, body[:300])
    assert not _metric_words(body), body[:300]
    home = h.request("GET", ns_caddy.url("site", "/")).body
    assert not home.strip() or home not in body, "403 body is the app's home page"


@pytest.mark.parametrize("header", [
    "X-Forwarded-For: 127.0.0.1",
    "X-Real-IP: 127.0.0.1",
    "Forwarded: for=127.0.0.1",
    "X-Forwarded-For: 10.0.0.1, 127.0.0.1",
    "Client-IP: 127.0.0.1",
])
def test_spoofed_client_address_headers_ignored(netns, ns_caddy, header):
    rc, body, status = curl_from_ns(netns, "http://%s:%d/metrics" % (netns["host_ip"], ns_caddy.ports["site"]),
                                    "-H", header)
    assert status == 403 and not _metric_words(body), (header, status, body[:300])


@pytest.mark.parametrize("path", ["/metrics/", "/metrics?x=1", "//metrics", "/./metrics", "/x/../metrics",
                                  "/%6detrics", "/metrics%2F", "/METRICS", "/metrics;x", "/metrics.txt",
                                  "/metrics/../metrics"])
def test_metrics_path_variants_leak_nothing(netns, ns_caddy, path):
    rc, body, status = curl_from_ns(netns, "http://%s:%d%s" % (netns["host_ip"], ns_caddy.ports["site"], path))
    assert rc == 0, "curl rc=%d" % rc
    assert not _metric_words(body), "%s from outside -> %d with metrics: %r" % (path, status, body[:300])


@pytest.mark.parametrize("args", [["-X", "POST", "-d", "x=1"], ["-I"], ["-X", "OPTIONS"], ["-X", "PURGE"],
                                  ["--request-target", "http://127.0.0.1/metrics"],
                                  ["-H", "Host: 127.0.0.1:9091"], ["-H", "Accept: application/openmetrics-text"],
                                  ["-H", "Accept: text/html"], ["--http1.0"]],
                         ids=["post", "head", "options", "purge", "absolute-form", "internal-host", "openmetrics",
                              "browser", "http1.0"])
def test_metrics_request_variants_forbidden(netns, ns_caddy, args):
    rc, body, status = curl_from_ns(netns, "http://%s:%d/metrics" % (netns["host_ip"], ns_caddy.ports["site"]), *args)
    assert rc == 0, "curl rc=%d" % rc
    assert status == 403, "%s /metrics from outside -> %d: %r" % (args, status, body[:300])
    assert not _metric_words(body), body[:300]


def test_app_served_to_outside(netns, ns_caddy):
    rc, body, status = curl_from_ns(netns, "http://%s:%d/api/x" % (netns["host_ip"], ns_caddy.ports["site"]))
    assert (rc, status) == (0, 200), (rc, status, body[:300])
    assert body == h.request("GET", ns_caddy.url("site", "/api/x")).body
    rc, _, status = curl_from_ns(netns, "http://%s:%d/contact" % (netns["host_ip"], ns_caddy.ports["site"]),
                                 "-d", "name=ns")
    assert status == 201


def test_loopback_gets_metrics(ns_caddy):
    s = h.scrape(ns_caddy.metrics_url)
    assert s.status == 200
    assert b"http_requests_total" in s.body
    # The outside requests above were recorded like any other.
    v = s.values()
    assert h.series(v, "http_requests_total", endpoint="api", method="GET", status="200")


def test_internal_listener_not_reachable_from_outside(netns, ns_caddy):
    for hdr in ([], ["-H", "Host: 127.0.0.1:%d" % ns_caddy.ports["internal"]]):
        rc, body, status = curl_from_ns(
            netns, "http://%s:%d/metrics" % (netns["host_ip"], ns_caddy.ports["internal"]), *hdr)
        assert not _metric_words(body), ("internal listener serves metrics to %s (curl rc=%d, HTTP %d, %s)"
                                         % (netns["ns_ip"], rc, status, hdr))


def test_admin_not_reachable_from_outside(netns, ns_caddy):
    rc, body, status = curl_from_ns(netns, "http://%s:%d/config/" % (netns["host_ip"], ns_caddy.ports["admin"]),
                                    "-H", "Host: localhost:%d" % ns_caddy.ports["admin"])
    assert rc != 0 or status in (0, 403, 404), (rc, status, body[:300])
    assert b'"apps"' not in body


def test_private_client_gets_metrics(private_ns, ns_caddy):
    rc, body, status = curl_from_ns(private_ns, "http://%s:%d/metrics" % (private_ns["host_ip"],
                                                                        ns_caddy.ports["site"]))
    assert (rc, status) == (0, 200), "private client %s: curl rc=%d HTTP %d %r" % (
        private_ns["ns_ip"], rc, status, body[:300])
    h.parse_text(body.decode())
    assert b"http_requests_total{" in body
    rc, body, status = curl_from_ns(private_ns, "http://%s:%d/metrics" % (private_ns["host_ip"],
                                                                        ns_caddy.ports["site"]),
                                    "-H", "Accept: application/openmetrics-text; version=1.0.0")
    assert status == 200 and body.endswith(b"# EOF\n"), (status, body[-100:])
    h.parse_openmetrics(body.decode())
