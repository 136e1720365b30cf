"""Metrics never leak through a tunnel or proxy in front of Caddy.

The deployment: a tunnel connector (Cloudflare Tunnel), load balancer or
second web server on the same host forwards every public request to Caddy,
so Caddy's peer is always loopback. Here the forwarding proxy is a real
reverse proxy, a second Caddy process running plain `reverse_proxy`, listening
on the host ends of two network namespaces: a public client (198.51.100.x)
and a private one (10.x). Its routes, /<target>/<mode>/..., forward to:

  site       Caddyfile.example's public port (matcher + metrics_endpoint)
  internal   Caddyfile.example's internal listener (metrics_endpoint alone)
  trusted    a lab server whose trusted_proxies covers the proxy
  strict     the same with trusted_proxies_strict
  optout     a lab server with accept_forwarded

and treat headers in one of these ways:

  stock      reverse_proxy's defaults (X-Forwarded-For/-Proto/-Host, Via)
  append     like nginx's $proxy_add_x_forwarded_for: the client's
             X-Forwarded-For is kept and the client's address appended
  bare       none of the defaults: the client's own headers pass as sent
  add-<h>    none of the defaults, only header <h>, as a tunnel connector
             adding Cf-Connecting-Ip does

Every refused answer must be a 403 whose body is exactly a known refusal
(metrics_endpoint's line, or the example's empty `respond 403`): not one
byte of metrics or status page. Needs root; fails (never skips) without it.
"""

from __future__ import annotations

import json
import re

import pytest

import helpers as h
from conftest import run_caddy
from test_netns import METRIC_WORDS, _run
# The public (198.51.100.x) and private (10.x) client namespaces.
from test_netns import netns as pub, private_ns as priv  # noqa: F401 (fixtures)

ENDPOINT_403 = b"403 Forbidden: metrics are served to internal clients only\n"
REFUSAL_BODIES = (ENDPOINT_403, b"")
STATUS_PAGE_WORDS = (b"<html", b"<!DOCTYPE", b"Caddy status", b"<title>", b"p99")

# The headers metrics_endpoint refuses from a peer that is not a trusted
# proxy (caddymodule/access.go: addressHeaders, hopHeaders), with a value a
# proxy would add for a client at {remote_host}.
SIGN_HEADERS = {
    "Forwarded": "for={remote_host}",
    "X-Forwarded-For": "{remote_host}",
    "X-Real-IP": "{remote_host}",
    "Cf-Connecting-IP": "{remote_host}",
    "True-Client-IP": "{remote_host}",
    "Fastly-Client-IP": "{remote_host}",
    "X-Client-IP": "{remote_host}",
    "X-Cluster-Client-IP": "{remote_host}",
    "Cf-Ray": "8c1d2e3f4a5b6c7d-LHR",
    "Via": "1.1 tunnel",
    "X-Forwarded-Host": "{host}",
    "X-Forwarded-Proto": "http",
}
# Added by reverse_proxy itself: `bare` deletes them, so the client's own
# copies of these never cross the proxy and are sent directly instead.
PROXY_DEFAULTS = ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Via")
CLIENT_SENDABLE = [n for n in SIGN_HEADERS if n not in PROXY_DEFAULTS]

FORMATS = {  # name -> (query, Accept, Content-Type prefix of a 200)
    "text": ("", None, "text/plain; version=0.0.4"),
    "openmetrics": ("", h.OPENMETRICS_ACCEPT, "application/openmetrics-text"),
    "openmetrics-query": ("?format=openmetrics", None, "application/openmetrics-text"),
    "html": ("?format=html", None, "text/html"),
    "html-accept": ("", "text/html", "text/html"),
    "markdown": ("?format=markdown", None, "text/markdown"),
    "markdown-accept": ("", "text/markdown", "text/markdown"),
}
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PURGE")


def slug(name: str) -> str:
    return name.lower()


def mixed_case(name: str) -> str:
    return "".join(c.lower() if i % 2 == 0 else c.upper() for i, c in enumerate(name))


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def example(request, caddy_binary, pub, priv):
    """Caddyfile.example, its site also on the veth host addresses, with
    debug logging so each refusal's log line can be checked."""
    ports = h.suite_ports()
    bind = " ".join(("127.0.0.1", pub["host_ip"], priv["host_ip"]))
    text = h.add_global_options(h.example_text(ports, bind=bind), ["debug"])
    return run_caddy(request, text, ports=ports, name="test_netns_forwarded")


LAB = """{{
	admin off
	auto_https off
	debug
	servers 127.0.0.1:{trusted} {{
		trusted_proxies static 127.0.0.1/32
	}}
	servers 127.0.0.1:{strict} {{
		trusted_proxies static 127.0.0.1/32
		trusted_proxies_strict
	}}
}}

# Reached directly from both namespaces: metrics_endpoint alone decides.
http://:{direct} {{
	bind 127.0.0.1 {pub_host} {priv_host}
	metrics_endpoint
}}

http://:{trusted} {{
	bind 127.0.0.1
	metrics_endpoint
}}

http://:{strict} {{
	bind 127.0.0.1
	metrics_endpoint
}}

http://:{optout} {{
	bind 127.0.0.1
	metrics_endpoint {{
		accept_forwarded
	}}
}}
"""


def _listening(port: int):
    return lambda: h.request("GET", "http://127.0.0.1:%d/" % port, timeout=2).status > 0


@pytest.fixture(scope="module")
def lab(request, caddy_binary, pub, priv):
    ports = {role: h.free_port() for role in ("direct", "trusted", "strict", "optout")}
    text = LAB.format(pub_host=pub["host_ip"], priv_host=priv["host_ip"], **ports)
    caddy = run_caddy(request, text, ports=ports, name="test_netns_forwarded_lab",
                      probes=lambda c: {r: _listening(p) for r, p in c.ports.items()})
    # Before any request: every refusal reason is already exposed, at 0.
    caddy.first_scrape = h.scrape(caddy.url("direct", "/metrics"))
    return caddy


def _route(prefix: str, upstream: str, ops: list[str]) -> str:
    body = "".join("\t\t\t%s\n" % op for op in ops)
    inner = " {\n%s\t\t}" % body if ops else ""
    return "\thandle_path %s/* {\n\t\treverse_proxy %s%s\n\t}\n" % (prefix, upstream, inner)


def _strip(keep: str | None = None) -> list[str]:
    return ["header_up -%s" % n for n in PROXY_DEFAULTS if n != keep]


@pytest.fixture(scope="module")
def proxy(request, caddy_binary, pub, priv, example, lab):
    targets = {
        "site": example.ports["site"], "internal": example.ports["internal"],
        "trusted": lab.ports["trusted"], "strict": lab.ports["strict"], "optout": lab.ports["optout"],
    }
    routes = []
    for target, port in targets.items():
        up = "127.0.0.1:%d" % port
        # The example's internal site is http://127.0.0.1:PORT, which only
        # answers Host 127.0.0.1: a proxy pointed at it must say so.
        host = ["header_up Host {upstream_hostport}"] if target == "internal" else []
        routes.append(_route("/%s/stock" % target, up, host))
        routes.append(_route("/%s/append" % target, up, host + ["trusted_proxies 0.0.0.0/0 ::/0"]))
        routes.append(_route("/%s/bare" % target, up, host + _strip()))
        for name, value in SIGN_HEADERS.items():
            routes.append(_route("/%s/add-%s" % (target, slug(name)), up,
                                 host + _strip(keep=name) + ['header_up %s "%s"' % (name, value)]))
    port = h.free_port()
    text = ("{\n\tadmin off\n\tauto_https off\n}\n\nhttp://:%d {\n\tbind 127.0.0.1 %s %s\n%s"
            "\thandle {\n\t\trespond \"proxy: no such route\" 404\n\t}\n}\n") % (
        port, pub["host_ip"], priv["host_ip"], "".join(routes))
    caddy = run_caddy(request, text, ports={"proxy": port}, name="test_netns_forwarded_proxy",
                      probes=lambda c: {"proxy": _listening(port)})
    caddy.targets = targets
    return caddy


# ------------------------------------------------------------------ helpers


def curl(ns: dict, url: str, *args: str, method: str = "GET") -> tuple[int, bytes, dict]:
    """(HTTP status, body, lower-cased response headers) of one request made
    inside the namespace; fails on a transport error, so a refused connection
    never passes for a refusal."""
    cmd = ["ip", "netns", "exec", ns["ns"], "curl", "-sS", "--path-as-is", "--max-time", "10", "-D", "/dev/stderr",
           "-o", "-"]
    if method == "HEAD":
        cmd.append("-I")
    elif method != "GET":
        cmd += ["-X", method]
    p = _run(*cmd, *args, url, check=False, timeout=30)
    assert p.returncode == 0, "curl %s %s %s: rc=%d %s" % (method, url, args, p.returncode, p.stderr[-500:])
    head = p.stderr.decode("latin-1")
    if method == "HEAD":
        head = p.stdout.decode("latin-1")
    blocks = [b for b in re.split(r"\r?\n\r?\n", head) if b.startswith("HTTP/")]
    assert blocks, "no response head from %s: %r" % (url, head[-500:])
    lines = blocks[-1].splitlines()
    status = int(lines[0].split()[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, (b"" if method == "HEAD" else p.stdout), headers


def via_proxy(proxy, ns: dict, target: str, mode: str, path: str = "/metrics") -> str:
    return "http://%s:%d/%s/%s%s" % (ns["host_ip"], proxy.ports["proxy"], target, mode, path)


def assert_refused(status: int, body: bytes, what: str):
    assert status == 403, "%s -> %d, want 403: %r" % (what, status, body[:300])
    leaked = [w for w in METRIC_WORDS + STATUS_PAGE_WORDS if w in body]
    assert not leaked, "%s: 403 body carries %s: %r" % (what, leaked, body[:300])
    assert body in REFUSAL_BODIES, "%s: 403 body is not a known refusal: %r" % (what, body[:300])


def assert_served(status: int, body: bytes, headers: dict, fmt: str, what: str):
    _query, _accept, ctype = FORMATS[fmt]
    assert status == 200, "%s -> %d: %r" % (what, status, body[:300])
    assert headers.get("content-type", "").startswith(ctype), (what, headers.get("content-type"))
    if fmt.startswith("text"):
        h.parse_text(body.decode())
        assert b"\n# TYPE go_goroutines gauge\n" in body, what
    elif fmt.startswith("openmetrics"):
        assert body.endswith(b"# EOF\n") and b"# TYPE go_goroutines gauge\n" in body, what
        h.parse_openmetrics(body.decode())
    elif fmt.startswith("html"):
        assert b"<html" in body and b"<title>" in body, what
    else:
        assert body.startswith(b"# Caddy status"), (what, body[:100])


def fmt_args(fmt: str) -> tuple[str, list[str]]:
    query, accept, _ = FORMATS[fmt]
    return query, (["-H", "Accept: " + accept] if accept else [])


def refused_counts(url: str) -> dict[str, float]:
    v = h.scrape(url).values()
    return {dict(labels)["reason"]: val for (name, labels), val in v.items()
            if name == "metrics_endpoint_refused_total"}


def refusal_log(caddy) -> list[dict]:
    out = []
    for line in caddy.log_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("logger") == "http.handlers.metrics_endpoint" and rec.get("msg") == "refused":
            out.append(rec)
    return out


# ------------------------------------------------------------------ the tunnel case


@pytest.mark.parametrize("target", ["site", "internal"])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_stock_proxy_public_client_refused_every_format(pub, proxy, target, fmt):
    """The issue's reproduction: a stock reverse proxy on the host, a public
    client asking it for /metrics. Before the fix: 200 with everything."""
    query, args = fmt_args(fmt)
    status, body, _ = curl(pub, via_proxy(proxy, pub, target, "stock", "/metrics" + query), *args)
    assert_refused(status, body, "public client via stock proxy to %s, %s" % (target, fmt))


@pytest.mark.parametrize("target", ["site", "internal"])
@pytest.mark.parametrize("method", METHODS)
def test_stock_proxy_public_client_refused_every_method(pub, proxy, target, method):
    args = ["-d", "x=1"] if method in ("POST", "PUT", "PATCH") else []
    status, body, _ = curl(pub, via_proxy(proxy, pub, target, "stock"), *args, method=method)
    assert_refused(status, body, "%s via stock proxy to %s" % (method, target))


@pytest.mark.parametrize("target", ["site", "internal"])
@pytest.mark.parametrize("header", list(SIGN_HEADERS))
def test_proxy_adding_one_header_refused(pub, priv, proxy, example, target, header):
    """A proxy that adds just this one header, for a public client and for
    a private one alike: Caddy cannot tell who is behind it."""
    for ns in (pub, priv):
        status, body, _ = curl(ns, via_proxy(proxy, ns, target, "add-" + slug(header)))
        assert_refused(status, body, "%s via proxy adding only %s to %s" % (ns["ns_ip"], header, target))
    if target == "internal":
        # metrics_endpoint decided it, and because of this very header.
        last = refusal_log(example)[-2:]
        assert [(r.get("reason"), r.get("header"), r.get("peer")) for r in last] == \
            [("forwarded", h_canon(header), "127.0.0.1")] * 2, last


def h_canon(name: str) -> str:
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


@pytest.mark.parametrize("target", ["site", "internal"])
@pytest.mark.parametrize("variant", ["mixed-case", "empty", "repeated"])
@pytest.mark.parametrize("header", CLIENT_SENDABLE)
def test_client_sent_header_variants_refused(pub, proxy, target, variant, header):
    """The client adds the header itself (in odd case, empty, twice) and a
    proxy that adds nothing passes it on."""
    args = {"mixed-case": ["-H", "%s: 10.0.0.1" % mixed_case(header)],
            "empty": ["-H", "%s;" % header],
            "repeated": ["-H", "%s: 10.0.0.1" % header, "-H", "%s: 127.0.0.1" % header]}[variant]
    if header == "Forwarded" and variant != "empty":
        args = [a.replace(": 1", ": for=1") for a in args]
    status, body, _ = curl(pub, via_proxy(proxy, pub, target, "bare"), *args)
    assert_refused(status, body, "public client %s %s via bare proxy to %s" % (variant, header, target))


@pytest.mark.parametrize("target", ["site", "internal"])
def test_site_still_answers_through_proxy(pub, proxy, example, target):
    if target == "internal":
        # The internal listener has no app: 404 through the proxy as direct.
        status, body, _ = curl(pub, via_proxy(proxy, pub, target, "stock", "/"))
        assert status == 404 and not [w for w in METRIC_WORDS if w in body], (status, body[:200])
        return
    status, body, _ = curl(pub, via_proxy(proxy, pub, "site", "stock", "/api/x"))
    assert status == 200 and body == h.request("GET", example.url("site", "/api/x")).body, (status, body[:200])
    status, body, _ = curl(pub, via_proxy(proxy, pub, "site", "stock", "/contact"), "-d", "name=tunnel")
    assert status == 201, (status, body[:200])
    status, body, _ = curl(pub, via_proxy(proxy, pub, "site", "add-cf-connecting-ip", "/"))
    assert status == 200, (status, body[:200])


# ------------------------------------------------------------------ direct clients


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_loopback_and_direct_private_client_get_every_format(priv, example, lab, fmt):
    query, args = fmt_args(fmt)
    for url in (example.url("site", "/metrics" + query), example.url("internal", "/metrics" + query),
                lab.url("direct", "/metrics" + query)):
        hdrs = {"Accept": args[1].split(": ", 1)[1]} if args else {}
        r = h.request("GET", url, headers=hdrs)
        assert_served(r.status, r.body, r.headers, fmt, "loopback " + url)
    for port in (example.ports["site"], lab.ports["direct"]):
        url = "http://%s:%d/metrics%s" % (priv["host_ip"], port, query)
        status, body, headers = curl(priv, url, *args)
        assert_served(status, body, headers, fmt, "private client %s %s" % (priv["ns_ip"], url))


@pytest.mark.parametrize("variant", ["plain", "mixed-case", "empty", "repeated"])
@pytest.mark.parametrize("header", list(SIGN_HEADERS))
def test_direct_private_client_with_forwarding_header_refused(priv, example, lab, header, variant):
    """A private client that connects directly but carries a forwarding
    header (a forged X-Forwarded-For: 10.0.0.1, say) is refused: the rule
    cannot tell it from a proxy. Sent as raw bytes by curl, so the case,
    the empty value and the repetition reach Caddy exactly as written."""
    value = "for=10.0.0.1" if header == "Forwarded" else "10.0.0.1"
    args = {"plain": ["-H", "%s: %s" % (header, value)],
            "mixed-case": ["-H", "%s: %s" % (mixed_case(header), value)],
            "empty": ["-H", "%s;" % header],
            "repeated": ["-H", "%s: %s" % (header, value), "-H", "%s: %s" % (header, value)]}[variant]
    for port in (example.ports["site"], lab.ports["direct"]):
        status, body, _ = curl(priv, "http://%s:%d/metrics" % (priv["host_ip"], port), *args)
        assert_refused(status, body, "direct private client, %s %s, port %d" % (variant, header, port))


def test_direct_public_client_refused(pub, lab):
    status, body, _ = curl(pub, "http://%s:%d/metrics" % (pub["host_ip"], lab.ports["direct"]))
    assert_refused(status, body, "direct public client")


# ------------------------------------------------------------------ trusted proxies


@pytest.mark.parametrize("mode", ["stock", "append"])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_trusted_proxy_private_client_served(priv, proxy, mode, fmt):
    query, args = fmt_args(fmt)
    for target in ("trusted", "strict"):
        status, body, headers = curl(priv, via_proxy(proxy, priv, target, mode, "/metrics" + query), *args)
        assert_served(status, body, headers, fmt, "private client via trusted %s proxy (%s)" % (mode, target))


@pytest.mark.parametrize("mode", ["stock", "append"])
def test_trusted_proxy_public_client_refused(pub, proxy, mode):
    for target in ("trusted", "strict"):
        for method in ("GET", "HEAD", "POST"):
            status, body, _ = curl(pub, via_proxy(proxy, pub, target, mode), method=method)
            assert_refused(status, body, "public client via trusted %s proxy (%s), %s" % (mode, target, method))


@pytest.mark.parametrize("forged", [
    ["-H", "X-Forwarded-For: 10.0.0.1"],
    ["-H", "X-Forwarded-For: 127.0.0.1, 10.0.0.1"],
    ["-H", "x-fORWARDED-for: 10.0.0.1"],
    ["-H", "X-Forwarded-For: 10.0.0.1", "-H", "X-Forwarded-For: 192.168.0.1"],
    ["-H", "X-Forwarded-For: 10.0.0.1", "-H", "X-Real-IP: 10.0.0.1", "-H", "Forwarded: for=10.0.0.1"],
    ["-H", "X-Forwarded-For: unknown, 10.0.0.1"],
], ids=["one", "chain", "mixed-case", "two-lines", "with-others", "junk-first"])
def test_public_client_forging_chain_through_trusted_proxy_refused(pub, proxy, lab, forged):
    """The proxy appends the real address to the client's X-Forwarded-For,
    Caddy's default takes the leftmost, which the client wrote: 10.0.0.1.
    metrics_endpoint still sees the public address in the chain."""
    for target in ("trusted", "strict"):
        for fmt in ("text", "html"):
            query, args = fmt_args(fmt)
            status, body, _ = curl(pub, via_proxy(proxy, pub, target, "append", "/metrics" + query), *forged, *args)
            assert_refused(status, body, "forged %s via trusted appending proxy (%s, %s)" % (forged, target, fmt))


def test_private_client_behind_trusted_proxy_with_private_chain_served(priv, proxy):
    status, body, headers = curl(priv, via_proxy(proxy, priv, "trusted", "append"),
                                 "-H", "X-Forwarded-For: 192.168.1.7")
    assert_served(status, body, headers, "text", "private chain via trusted appending proxy")


def test_accept_forwarded_lets_the_peer_decide(pub, priv, proxy, lab):
    """The opt-out does what README warns about: behind an untrusted proxy
    on loopback even the public client is served, and Caddy said so when it
    loaded the config."""
    warnings = [ln for ln in lab.log_text().splitlines()
                if '"level":"warn"' in ln and '"logger":"http.handlers.metrics_endpoint"' in ln
                and "accept_forwarded is on" in ln]
    assert warnings, "no warning about accept_forwarded in %s" % lab.log_path
    status, body, headers = curl(pub, via_proxy(proxy, pub, "optout", "stock"))
    assert_served(status, body, headers, "text", "public client via proxy to the accept_forwarded server")
    status, body, headers = curl(priv, via_proxy(proxy, priv, "optout", "add-cf-connecting-ip"))
    assert_served(status, body, headers, "text", "private client via proxy to the accept_forwarded server")


# ------------------------------------------------------------------ counter and log


def test_refusal_reasons_exposed_at_zero_before_any_request(lab):
    v = lab.first_scrape.values()
    got = {dict(labels)["reason"]: val for (name, labels), val in v.items()
           if name == "metrics_endpoint_refused_total"}
    assert got == {"address": 0, "forwarded": 0, "forwarded_chain": 0}, got
    assert b"# TYPE metrics_endpoint_refused_total counter" in lab.first_scrape.body


def test_refusal_counter_exact_deltas(pub, priv, proxy, example, lab):
    lab_url, ex_url = lab.url("direct", "/metrics"), example.url("internal", "/metrics")
    lab_before, ex_before = refused_counts(lab_url), refused_counts(ex_url)
    sent = {"address": 0, "forwarded": 0, "forwarded_chain": 0}

    def refused(ns, url, *args, reason=None, method="GET"):
        status, body, _ = curl(ns, url, *args, method=method)
        assert_refused(status, body, url)
        if reason:
            sent[reason] += 1

    # Lab: one process, every reason.
    refused(pub, "http://%s:%d/metrics" % (pub["host_ip"], lab.ports["direct"]), reason="address")
    refused(pub, "http://%s:%d/metrics" % (pub["host_ip"], lab.ports["direct"]), method="HEAD", reason="address")
    refused(priv, "http://%s:%d/metrics" % (priv["host_ip"], lab.ports["direct"]),
            "-H", "X-Forwarded-For: 10.0.0.1", reason="forwarded")
    refused(priv, "http://%s:%d/metrics?format=html" % (priv["host_ip"], lab.ports["direct"]),
            "-H", "Via;", reason="forwarded")
    refused(pub, via_proxy(proxy, pub, "trusted", "stock"), reason="address")
    refused(pub, via_proxy(proxy, pub, "trusted", "append"), "-H", "X-Forwarded-For: 10.0.0.1",
            reason="forwarded_chain")
    refused(pub, via_proxy(proxy, pub, "trusted", "append", "/metrics?format=markdown"),
            "-H", "X-Forwarded-For: 10.0.0.1", method="POST", reason="forwarded_chain")
    # trusted_proxies_strict: Caddy itself picks the public address.
    refused(pub, via_proxy(proxy, pub, "strict", "append"), "-H", "X-Forwarded-For: 10.0.0.1", reason="address")
    lab_after = refused_counts(lab_url)
    assert {k: lab_after[k] - lab_before[k] for k in sent} == sent, (lab_before, lab_after)

    # Example: the internal listener's endpoint counts; the public port's
    # matcher answers its own plain 403 before metrics_endpoint runs.
    refused(pub, via_proxy(proxy, pub, "internal", "stock"))
    refused(pub, via_proxy(proxy, pub, "internal", "add-cf-ray"))
    refused(pub, via_proxy(proxy, pub, "site", "stock"))
    refused(priv, "http://%s:%d/metrics" % (priv["host_ip"], example.ports["site"]), "-H", "X-Real-IP: 10.0.0.1")
    ex_after = refused_counts(ex_url)
    assert {k: ex_after[k] - ex_before[k] for k in sent} == {"address": 0, "forwarded": 2, "forwarded_chain": 0}, (
        ex_before, ex_after)


def test_refusal_log_names_reason_and_peer_never_values(pub, priv, proxy, lab):
    canary = "10.%d.%d.77" % (abs(hash(pub["ns"])) % 250, abs(hash(priv["ns"])) % 250)
    marker = "canary-%s" % pub["ns"]
    before = len(refusal_log(lab))
    curl(priv, "http://%s:%d/metrics" % (priv["host_ip"], lab.ports["direct"]),
         "-H", "X-Forwarded-For: " + canary, "-H", "Cf-Ray: " + marker)
    curl(pub, via_proxy(proxy, pub, "trusted", "append"), "-H", "X-Forwarded-For: " + canary,
         "-H", "Via: " + marker)
    assert h.wait_until(lambda: len(refusal_log(lab)) >= before + 2, 5), lab.log_tail()
    new = refusal_log(lab)[before:]
    assert [(r["level"], r["reason"], r.get("header"), r["peer"]) for r in new] == [
        ("debug", "forwarded", "X-Forwarded-For", priv["ns_ip"]),
        ("debug", "forwarded_chain", "X-Forwarded-For", "127.0.0.1"),
    ], new
    for r in new:
        assert set(r) <= {"level", "ts", "logger", "msg", "reason", "peer", "header"}, r
    ours = "\n".join(json.dumps(r) for r in refusal_log(lab))
    assert canary not in ours and marker not in ours, "refusal log carries a header value"
