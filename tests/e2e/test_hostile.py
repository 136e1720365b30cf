"""Hostile requests over raw sockets, then the live exposition must still be
valid for every consumer (promtool, the strict OpenMetrics parser,
check_exposition.py) and no request-controlled bytes may have become a label
value: endpoint names come from the config, methods from a fixed set."""

from __future__ import annotations

import pytest

import helpers as h

# Every hostile input carries this marker so its absence from the exposition
# proves the request text was never copied into a label or help string.
MARK = b"zq7mark"

ODD_METHODS = [b"PURGE", b"M-SEARCH", b"get", b"Get", b"PROPFIND", b"X" * 200,
               b"!#$%&'*+-.^_`|~", b"BREW" + MARK.upper(), b"OPTIONS2"]

PATHS = [
    b"/api/" + MARK + b'"quoted"',
    b"/api/" + MARK + b"\\back\\slash\\",
    b"/" + MARK + b'\\"}\\n',
    b"/api/" + MARK + b"%0A%0D%22%5C",
    b"/contact%0A" + MARK,
    b"/" + MARK + b"%00%FF%C3%28",
    b"/api/" + MARK + b"\xff\xfe\xc3\x28",  # raw non-UTF-8 bytes
    b"/" + MARK + b"\xe2\x80\xae\xed\xa0\x80",  # RTL override, UTF-16 surrogate
    b"/api/" + MARK + b"A" * 8192,  # 8 KB path
    b"/" + MARK + b"B" * 8192,
    b"/contact?" + MARK + b'="',
    b"/api/x?" + MARK + b"=%0A# EOF",
    b"//api//" + MARK,
    b"/./api/../" + MARK,
    b"http://" + MARK + b".example/api/x",  # absolute-form target
    b"*",
]

HOSTS = [
    MARK + b".example",
    b"",
    b"[::1]:8080",
    b"127.0.0.1:99999",
    MARK + b'"quote',
    MARK + b"\\back",
    MARK + b"\xff\xfe",
    MARK + b"%0A",
    MARK + b"." + b"a" * 4000,
    b"evil." + MARK + b"}{",
]


def _send(caddy, method: bytes, path: bytes, host: bytes | None, extra: bytes = b"",
          version: bytes = b"HTTP/1.1") -> int | None:
    req = method + b" " + path + b" " + version + b"\r\n"
    if host is not None:
        req += b"Host: " + host + b"\r\n"
    req += b"User-Agent: " + MARK + b"\r\nX-Forwarded-For: " + MARK + b"\r\n"
    req += extra + b"Connection: close\r\n\r\n"
    try:
        return h.raw_status(h.raw_request("127.0.0.1", caddy.ports["site"], req, timeout=10))
    except OSError:
        return None


@pytest.fixture(scope="module")
def hostile(example_caddy):
    c = example_caddy
    statuses = {}
    for m in ODD_METHODS:
        for p in (b"/", b"/api/x", b"/contact", b"/" + MARK):
            statuses[(m, p)] = _send(c, m, p, b"localhost")
    for p in PATHS:
        for m in (b"GET", b"POST", b"PURGE"):
            extra = b"Content-Length: 0\r\n" if m == b"POST" else b""
            statuses[(m, p[:60])] = _send(c, m, p, b"localhost", extra)
    for host in HOSTS:
        statuses[(b"GET host", host[:60])] = _send(c, b"GET", b"/api/x", host)
    statuses[(b"GET", b"http/1.0 no host")] = _send(c, b"GET", b"/" + MARK, None, version=b"HTTP/1.0")
    # Two Host headers, header injection attempts, huge header.
    statuses[(b"GET", b"two hosts")] = _send(c, b"GET", b"/", b"a", b"Host: " + MARK + b"\r\n")
    statuses[(b"POST", b"contact odd body")] = _send(
        c, b"POST", b"/contact", b"localhost",
        b"Content-Type: text/plain\r\nContent-Length: 12\r\n\r\n" + MARK + b"\xff\n\"\\ ")
    statuses[(b"GET", b"metrics hostile query")] = _send(c, b"GET", b"/metrics?" + MARK + b"\xff", b"localhost")
    return statuses


@pytest.fixture(scope="module")
def scrapes(example_caddy, hostile):
    c = example_caddy
    return {
        "internal": (h.scrape(c.internal_metrics_url), h.scrape(c.internal_metrics_url, fmt="openmetrics")),
        "site": (h.scrape(c.metrics_url), h.scrape(c.metrics_url, fmt="openmetrics")),
    }


def test_server_survives(example_caddy, hostile):
    c = example_caddy
    assert c.alive(), c.log_tail()
    assert h.request("GET", c.url("site", "/api/x")).status == 200
    answered = sum(1 for s in hostile.values() if s is not None)
    # Go's server answers even malformed requests with a 400, so silence
    # means a dropped connection.
    silent = [k for k, s in hostile.items() if s is None]
    assert not silent, "no HTTP answer for %d of %d hostile requests: %s" % (
        len(silent), len(hostile), silent[:10])
    assert answered == len(hostile)


def test_hostile_requests_were_recorded(example_caddy, scrapes):
    """Guards the rest of the module: if the hostile requests had all been
    refused before reaching the module, the checks below would prove
    nothing."""
    v = scrapes["internal"][0].values()
    other = h.series(v, "http_requests_total", method="OTHER")
    assert sum(other.values()) >= len(ODD_METHODS), other
    assert h.series(v, "http_requests_total", endpoint="other"), "no endpoint=other series"


@pytest.mark.parametrize("where", ["internal", "site"])
def test_exposition_valid(scrapes, where):
    text, om = scrapes[where]
    problems = h.exposition_problems(text, om, "hostile-" + where)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("where", ["internal", "site"])
@pytest.mark.parametrize("fmt", [0, 1])
def test_no_request_bytes_in_exposition(scrapes, where, fmt):
    s = scrapes[where][fmt]
    low = s.body.lower()
    assert MARK not in low, "request-controlled text reached the exposition: %r" % (
        s.body[max(0, low.find(MARK) - 200): low.find(MARK) + 200])


@pytest.mark.parametrize("fmt", [0, 1])
def test_label_values_from_config_only(scrapes, fmt):
    s = scrapes["internal"][fmt]
    fams = {f.name: f for f in s.families()}
    fam = fams.get("http_requests") or fams.get("http_requests_total")
    assert fam is not None, sorted(fams)
    for name, labels, _ in h.flat_samples(fams[n] for n in fams if n.startswith("http_")):
        lab = dict(labels)
        if "endpoint" in lab:
            assert lab["endpoint"] in h.ROUTES, (name, lab)
        if "method" in lab:
            assert lab["method"] in h.STANDARD_METHODS + ("OTHER",), (name, lab)
        if "status" in lab:
            assert (len(lab["status"]) == 3 and lab["status"].isdigit()) or lab["status"] == "other", (name, lab)
    # Text and OpenMetrics agree on the per-request series after hostile traffic.
    text_v = {k: v for k, v in scrapes["internal"][0].values().items() if k[0] == "http_requests_total"}
    om_v = {k: v for k, v in scrapes["internal"][1].values().items() if k[0] == "http_requests_total"}
    assert set(text_v) == set(om_v)


# ------------------------------------------------ strings from the config
# Config text is trusted, but it still reaches both formats verbatim: help
# texts and constant label values with quotes, backslashes, line breaks,
# non-ASCII and bytes that are not UTF-8 must be escaped so each format's
# parser gives back exactly what the Caddyfile said.

ODD_HELP = 'Line one\nline two "quoted" back\\slash # not a comment'
ODD_VALUES = {
    "quote": 'we"b',
    "backslash": "C:\\path\\n",
    "newline": "two\nlines",
    "unicode": "fästapi ✓ 日本",
    "badutf8": "x\ufffdy",  # raw 0xff in the file; the Caddyfile lexer reads it as U+FFFD
    "empty_looking": " ",
}
STRINGS_CONFIG = """{
	admin localhost:%(admin)d
	auto_https off
}

http://127.0.0.1:%(site)d {
	bind 127.0.0.1
	route_metrics odd {
		counter odd_strings_total {
			help "Line one
line two \\"quoted\\" back\\slash # not a comment"
			label quote `we"b`
			label backslash `C:\\path\\n`
			label newline "two
lines"
			label unicode "fästapi ✓ 日本"
			label badutf8 "x\xffy"
			label empty_looking " "
		}
	}
	respond "ok"
}

http://127.0.0.1:%(internal)d {
	bind 127.0.0.1
	metrics_endpoint
}
"""


@pytest.fixture(scope="module")
def strings_caddy(request, caddy_binary):
    from conftest import run_caddy
    ports = {"site": h.free_port(), "internal": h.free_port(), "admin": h.free_port()}

    def probes(c):
        return {"internal": lambda: h.request("GET", c.internal_metrics_url, timeout=2).status == 200}
    text = (STRINGS_CONFIG % ports).encode("utf-8").replace("\xff".encode("utf-8"), b"\xff").decode(
        "utf-8", "surrogateescape")
    c = run_caddy(request, text, ports=ports, name="test_hostile_strings", probes=probes)
    for _ in range(3):
        assert h.request("GET", c.url("site", "/")).status == 200
    return c


@pytest.mark.parametrize("fmt", ["text", "openmetrics"])
def test_config_strings_round_trip(strings_caddy, fmt):
    s = h.scrape(strings_caddy.internal_metrics_url, fmt=fmt)
    fams = {f.name: f for f in s.families()}
    fam = fams.get("odd_strings") or fams.get("odd_strings_total")
    assert fam is not None, sorted(fams)
    assert fam.documentation == ODD_HELP, (fam.documentation, ODD_HELP)
    samples = [x for x in fam.samples if x.name == "odd_strings_total"]
    assert len(samples) == 1, samples
    assert samples[0].labels == ODD_VALUES, samples[0].labels
    assert samples[0].value == 3


def test_config_strings_exposition_valid(strings_caddy):
    c = strings_caddy
    problems = h.exposition_problems(h.scrape(c.internal_metrics_url),
                                     h.scrape(c.internal_metrics_url, fmt="openmetrics"), "config-strings")
    assert not problems, "\n".join(problems)
