"""Hostile input, byte by byte. Every byte 0x00-0xff goes into the method,
the path, a header value and the Host header of a request to
Caddyfile.example; then 64 KiB paths and header values, a header block past
the configured 1 MiB limit, invalid UTF-8, bare CR, bare LF, obs-fold and NUL. Go's
HTTP server rejects some before any handler runs (400/414/431/...); the
rest reach route_metrics. Afterwards:

- the count of recorded requests equals the count accepted, series by
  series (rejected requests leave no trace, accepted ones are counted once
  under a label set the config allows);
- both formats on both /metrics listeners pass promtool, the strict
  OpenMetrics parser and check_exposition.py, and no request text appears.

Then the same treatment for config strings: a counter help text holding
every byte, label values and a route name holding quotes, backslashes,
newlines, NUL, C0 controls, DEL and bytes that are not UTF-8, read back
from both formats exactly as the adapted config says after libmetrics'
documented sanitising."""

from __future__ import annotations

import json
import socket

import pytest

import stresslib as sl
from stresslib import h

MARK = b"zqhost"
# Answers Go's server gives before any handler runs; the example's handlers
# never produce them (its statuses are 200, 201, 404, 405 and 502).
SERVER_REJECTS = {400, 414, 431, 501, 505}
TCHAR = set(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _request(method: bytes, target: bytes, host: bytes = b"localhost", headers: bytes = b"") -> bytes:
    return (method + b" " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nUser-Agent: " + MARK +
            b"\r\n" + headers + b"Connection: close\r\n\r\n")


def _send(port: int, data: bytes) -> int | None:
    """Status of the answer, None if the connection closed without one."""
    got = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            try:
                s.sendall(data)
            except OSError:
                pass  # the server may answer and close before reading it all
            while b"\r\n" not in got:
                d = s.recv(4096)
                if not d:
                    break
                got += d
            while s.recv(65536):  # drain to the server's close
                pass
    except OSError:
        pass
    return h.raw_status(got)


def _cases():
    """(kind, byte or label, request bytes, method label, endpoint if a
    handler answers it, None if the server answers it itself: net/http or
    Caddy's server before routing)."""
    out = []
    for b in range(256):
        x = bytes([b])
        out.append(("method", b, _request(b"M" + x + b"X", b"/hb-" + MARK + b"/m"), "OTHER", "other"))
        out.append(("path", b, _request(b"GET", b"/hb-" + MARK + b"/p" + x + b"q"), "GET", "other"))
        out.append(("path_api", b, _request(b"GET", b"/api/" + MARK + b"p" + x + b"q"), "GET", "api"))
        out.append(("header", b, _request(b"GET", b"/hb-" + MARK + b"/h", headers=b"X-Hostile: a" + x +
                                          b"b" + MARK + b"\r\n"), "GET", "other"))
        out.append(("host", b, _request(b"GET", b"/hb-" + MARK + b"/o", host=b"h" + x + b"x.example"),
                    "GET", "other"))
    big = b"A" * 65536
    odd = [
        ("64k_path", _request(b"GET", b"/hb-" + MARK + b"/" + big), "GET", "other"),
        ("64k_path_api", _request(b"GET", b"/api/" + MARK + big), "GET", "api"),
        ("64k_path_post", _request(b"POST", b"/contact?" + MARK + big, headers=b"Content-Length: 0\r\n"),
         "POST", "contact"),
        ("64k_header", _request(b"GET", b"/", headers=b"X-Big: " + big + b"\r\n"), "GET", "home"),
        ("64k_host", _request(b"GET", b"/hb-" + MARK, host=b"a" * 65536), "GET", "other"),
        # Caddy answers methods longer than 32 bytes with 405 before any route.
        ("64k_method", _request(b"M" * 65536, b"/hb-" + MARK), "OTHER", None),
        ("1100k_headers", _request(b"GET", b"/", headers=b"".join(
            b"X-%d: %s\r\n" % (i, b"b" * 8000) for i in range(140))), "GET", "home"),
        ("bad_utf8_path", _request(b"GET", b"/api/" + MARK + b"\xff\xfe\xc3\x28\xed\xa0\x80\xf4\x90\x80\x80"),
         "GET", "api"),
        ("bad_utf8_header", _request(b"GET", b"/api/x", headers=b"X-U: \xc3\x28\xff" + MARK + b"\r\n"), "GET", "api"),
        ("bad_utf8_host", _request(b"GET", b"/api/x", host=b"\xff\xfe" + MARK), "GET", "api"),
        ("bare_cr_value", _request(b"GET", b"/", headers=b"X-A: a\rInjected: " + MARK + b"\r\n"), "GET", "home"),
        ("bare_lf_line_ends", b"GET /api/x HTTP/1.1\nHost: localhost\nX-M: " + MARK + b"\nConnection: close\n\n",
         "GET", "api"),
        ("crlf_injection", _request(b"GET", b"/api/x", headers=b"X-A: a\r\nInjected: " + MARK + b"\r\n"),
         "GET", "api"),
        ("obs_fold", _request(b"GET", b"/api/x", headers=b"X-A: a\r\n folded " + MARK + b"\r\n"), "GET", "api"),
        ("nul_in_header_name", _request(b"GET", b"/api/x", headers=b"X-\x00A: " + MARK + b"\r\n"), "GET", "api"),
        ("space_before_colon", _request(b"GET", b"/api/x", headers=b"X-A : " + MARK + b"\r\n"), "GET", "api"),
        ("lowercase_method", _request(b"get", b"/api/" + MARK), "OTHER", "api"),
        ("http_0_9", b"GET /api/" + MARK + b"\r\n\r\n", "GET", "api"),
        ("http_2_0_line", b"GET /api/" + MARK + b" HTTP/2.0\r\nHost: x\r\n\r\n", "GET", "api"),
        ("absolute_form", _request(b"GET", b"http://" + MARK + b".example/api/x"), "GET", "api"),
        # net/http answers OPTIONS * itself (globalOptionsHandler): no handler runs.
        ("asterisk_form", _request(b"OPTIONS", b"*"), "OPTIONS", None),
        ("connect_authority", _request(b"CONNECT", MARK + b".example:443"), "CONNECT", "other"),
        ("two_content_lengths", _request(b"POST", b"/contact", headers=b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
         "POST", "contact"),
        ("te_and_cl", _request(b"POST", b"/contact", headers=b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n")
         + b"0\r\n\r\n", "POST", "contact"),
        ("te_unknown", _request(b"POST", b"/contact", headers=b"Transfer-Encoding: " + MARK + b"\r\n"), "POST",
         "contact"),
    ]
    out += [("odd", name, data, m, ep) for name, data, m, ep in odd]
    return out


def _totals(values):
    return {tuple(dict(l)[k] for k in ("method", "endpoint", "status")): v
            for l, v in h.series(values, "http_requests_total").items()}


# Caddy's default header limit is 16 KiB (431 beyond it); raised so 64 KiB
# paths, header values and methods reach route_metrics. A header block past
# it is still rejected.
MAX_HEADER_SIZE = "1MB"


@pytest.fixture(scope="module")
def hostile(request, caddy_binary):
    ports = sl.free_ports(*h.DEFAULT_PORTS)
    text = h.add_global_options(h.example_text(ports), ["servers {", "\tmax_header_size " + MAX_HEADER_SIZE, "}"])
    c = sl.start(request, text, ports, "hostile", probes=sl.example_probes)
    port = c.ports["site"]
    before = h.scrape(c.internal_metrics_url).values()
    results = []
    for kind, what, data, method, endpoint in _cases():
        results.append((kind, what, method, endpoint, _send(port, data), len(data)))
    # Accepted: answered by a handler (endpoint None marks what the server
    # answers itself).
    accepted = [r for r in results if r[4] is not None and r[4] not in SERVER_REJECTS and r[3] is not None]
    n = len(accepted)
    base = sum(_totals(before).values())
    text = h.settled_scrape(c.internal_metrics_url, lambda v: h.in_flight_zero(v) and sum(
        _totals(v).values()) - base >= n)
    scrapes = {
        "internal": (text, h.scrape(c.internal_metrics_url, fmt="openmetrics")),
        "site": (h.scrape(c.metrics_url), h.scrape(c.metrics_url, fmt="openmetrics")),
    }
    return dict(caddy=c, before=before, results=results, accepted=accepted, scrapes=scrapes)


def test_every_request_answered(hostile):
    silent = [(r[0], r[1]) for r in hostile["results"] if r[4] is None]
    assert not silent, "no HTTP answer (a dropped connection) for %s" % silent[:20]


def test_recorded_exactly_what_was_accepted(hostile):
    expected = {}
    unexpected_status = []
    for kind, what, method, endpoint, status, _n in hostile["accepted"]:
        if (endpoint, status) not in {("api", 200), ("home", 200), ("contact", 200), ("contact", 201),
                                      ("other", 404), ("api", 502), ("contact", 502), ("other", 200)}:
            unexpected_status.append((kind, what, endpoint, status))
        key = (method, endpoint, str(status))
        expected[key] = expected.get(key, 0) + 1
    assert not unexpected_status, unexpected_status[:20]
    b = _totals(hostile["before"])
    a = _totals(hostile["scrapes"]["internal"][0].values())
    got = {k: v - b.get(k, 0) for k, v in a.items() if v - b.get(k, 0)}
    assert got == expected


def _byte_ranges(bs) -> str:
    """Compact list of byte values: 0x21-0x7e,0x80."""
    bs = sorted(bs)
    out, i = [], 0
    while i < len(bs):
        j = i
        while j + 1 < len(bs) and bs[j + 1] == bs[j] + 1:
            j += 1
        out.append("%#04x" % bs[i] if i == j else "%#04x-%#04x" % (bs[i], bs[j]))
        i = j + 1
    return ",".join(out) or "none"


def test_what_go_accepts_per_position(hostile):
    """The figures, and a sanity check that the module saw the hostile
    bytes at all: Go lets exactly the token characters through in a method,
    and at least the bytes >= 0x80 in a path and a header value."""
    acc = {}
    for kind, what, _m, _e, status, _n in hostile["results"]:
        if kind != "odd":
            acc.setdefault(kind, set())
            if status is not None and status not in SERVER_REJECTS:
                acc[kind].add(what)
    assert acc["method"] == TCHAR, _byte_ranges(acc["method"] ^ TCHAR)
    for kind in ("path", "header"):
        assert set(range(0x80, 0x100)) <= acc[kind], kind
    odd = {r[1]: r[4] for r in hostile["results"] if r[0] == "odd"}
    figures = {"%s_accepted" % k: "%d/256" % len(v) for k, v in acc.items()}
    sl.publish("hostile_bytes", max_header_size=MAX_HEADER_SIZE, requests=len(hostile["results"]),
               bytes_tried=sum(r[5] for r in hostile["results"]),
               accepted=len(hostile["accepted"]),
               rejected_by_go=sum(1 for r in hostile["results"] if r[4] in SERVER_REJECTS),
               answered_before_routing=sum(1 for r in hostile["results"] if r[3] is None),
               **figures, odd_cases=len(odd),
               odd_rejected="+".join(sorted(k for k, s in odd.items() if s in SERVER_REJECTS)))
    (sl.OUT / "hostile-bytes-accepted.json").write_text(json.dumps(
        {"per_position": {k: _byte_ranges(v) for k, v in acc.items()}, "odd_cases": odd}, indent=1))


@pytest.mark.parametrize("where", ["internal", "site"])
def test_exposition_valid(hostile, where):
    text, om = hostile["scrapes"][where]
    problems = h.exposition_problems(text, om, "stress-hostile-" + where)
    assert not problems, "\n".join(problems)
    for s in (text, om):
        assert MARK not in s.body.lower(), "request text reached the exposition"
    for (name, labels), _v in text.values().items():
        d = dict(labels)
        if name.startswith("http_"):
            assert d.get("endpoint", "home") in h.ROUTES, (name, d)
            assert d.get("method", "GET") in h.STANDARD_METHODS + ("OTHER",), (name, d)
    sl.assert_healthy(hostile["caddy"])


# ------------------------------------------------------------ config strings

ALL_BYTES = bytes(b for b in range(256) if b != 0x60)  # a backtick ends a backtick token
ROUTE_NAME = b'r"o\\u\nte \x00\x01\x1b\x7f\xff\xc3\x28 \xe2\x9c\x93'
LABELS = {
    "c0": bytes(range(0x00, 0x20)),
    "ascii": bytes(range(0x20, 0x60)) + bytes(range(0x61, 0x80)),
    "high1": bytes(range(0x80, 0xc0)),
    "high2": bytes(range(0xc0, 0x100)),
    "escapes": b'"\\n\\"\\\\ \\x41 \r\n \t',
    "utf8": "fästapi ✓ 日本 \U0001f600".encode(),
}

STRINGS_CONFIG = b"""{
	admin localhost:%(admin)d
	auto_https off
}

http://127.0.0.1:%(site)d {
	bind 127.0.0.1
	route_metrics `%(route)s` {
		counter odd_bytes_total {
			help `%(help)s`
%(labels)s
		}
	}
	respond "ok"
}

http://127.0.0.1:%(internal)d {
	bind 127.0.0.1
	metrics_endpoint
}
"""


def libmetrics_sanitised(s: str) -> str:
    """libmetrics.h: C0 controls other than \\n and \\t become U+FFFD (the
    JSON config is already valid UTF-8)."""
    return "".join("\ufffd" if ord(ch) < 0x20 and ch not in "\n\t" else ch for ch in s)


@pytest.fixture(scope="module")
def strings_caddy(request, caddy_binary):
    ports = sl.free_ports("site", "internal", "admin")
    labels = b"".join(b"\t\t\tlabel %s `%s`\n" % (k.encode(), v) for k, v in LABELS.items())
    text = STRINGS_CONFIG % {b"admin": ports["admin"], b"site": ports["site"], b"internal": ports["internal"],
                             b"route": ROUTE_NAME, b"help": ALL_BYTES, b"labels": labels}
    c = sl.start(request, text.decode("utf-8", "surrogateescape"), ports, "hostile-strings")
    for _ in range(3):
        assert h.request("GET", c.url("site", "/")).status == 200
    adapted = json.loads(h.adapt(c.config_path, env=c.env()))
    return c, adapted


def _find(obj, key):
    if isinstance(obj, dict):
        if key in obj:
            yield obj
        for v in obj.values():
            yield from _find(v, key)
    elif isinstance(obj, list):
        for v in obj:
            yield from _find(v, key)


@pytest.mark.parametrize("fmt", ["text", "openmetrics"])
def test_config_strings_round_trip(strings_caddy, fmt):
    c, adapted = strings_caddy
    handler = next(x for x in _find(adapted, "counters") if x.get("handler") == "route_metrics")
    counter = handler["counters"][0]
    s = h.scrape(c.internal_metrics_url, fmt=fmt)
    fams = {f.name: f for f in s.families()}
    fam = fams.get("odd_bytes") or fams.get("odd_bytes_total")
    assert fam is not None, sorted(fams)
    assert fam.documentation == libmetrics_sanitised(counter["help"])
    sample = [x for x in fam.samples if x.name == "odd_bytes_total"]
    assert len(sample) == 1 and sample[0].value == 3, sample
    assert sample[0].labels == {k: libmetrics_sanitised(v) for k, v in counter["labels"].items()}
    routes = {dict(l)["endpoint"] for (n, l) in s.values() if n == "http_requests_total"}
    assert routes == {libmetrics_sanitised(handler["name"])}, (routes, handler["name"])


def test_config_strings_exposition_valid(strings_caddy):
    c, _ = strings_caddy
    problems = h.exposition_problems(h.scrape(c.internal_metrics_url),
                                     h.scrape(c.internal_metrics_url, fmt="openmetrics"), "stress-config-strings")
    assert not problems, "\n".join(problems)
    sl.publish("config_strings", help_bytes=len(ALL_BYTES), label_value_bytes=sum(len(v) for v in LABELS.values()),
               route_name_bytes=len(ROUTE_NAME), formats=2, checkers="promtool+openmetrics-parser+check_exposition")
    sl.assert_healthy(c)
