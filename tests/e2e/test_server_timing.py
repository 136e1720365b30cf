"""Seeing into the app from Caddy: Server-Timing entries, upstream latency
and request-ID exemplars, end to end through build/caddy.

Two Caddy instances:
  - Caddyfile.example (its own instance, suite ports): the demo upstream
    sends `db;desc="select";dur=3.2` (and `db;desc="insert";dur=7.5` for
    POST /contact). Known traffic must move db_queries_total and
    db_query_duration_seconds by exactly the expected counts and sums
    (sums compared as decimals, exact to the rendered digits), the public
    site must strip the header, the upstream histogram must count proxied
    requests only, and OpenMetrics exemplars must carry the X-Request-ID
    the client saw (sent, or generated and returned).
  - a lab config on free ports in front of a Python upstream the test
    drives: it returns whatever Server-Timing lines the request asks for
    and reports the request ID it received. Malformed and hostile headers
    (bad syntax, huge, repeated, odd bytes, negative/NaN/Inf dur, too many
    entries) and hostile request IDs must leave the exposition valid for
    promtool, the strict OpenMetrics parser and check_exposition.py, be
    counted in server_timing_malformed_total, and never break the good
    entries next to them.
"""

from __future__ import annotations

import re
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import helpers as h
from conftest import run_caddy

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


# ------------------------------------------------------------------ helpers


def raw_value(body: str, line_prefix: str) -> Decimal:
    """The value of the sample line starting with line_prefix (name and
    labels exactly as rendered, then a space), as an exact decimal; 0 if the
    series does not exist yet."""
    for line in body.splitlines():
        if line.startswith(line_prefix):
            return Decimal(line[len(line_prefix):].split(" ", 1)[0])
    return Decimal(0)


def series_line(name: str, **labels) -> str:
    """name{k="v",...} in the given order, plus the space before the value."""
    if not labels:
        return name + " "
    return "%s{%s} " % (name, ",".join('%s="%s"' % kv for kv in labels.items()))


def om_exemplars(scrape: h.Scrape):
    """[(sample name, labels dict, exemplar)] of every sample with one,
    through the strict OpenMetrics parser."""
    return [(s.name, dict(s.labels), s.exemplar) for f in scrape.families() for s in f.samples
            if s.exemplar is not None]


def wait_for_exemplar(url: str, pred, timeout: float = 5.0):
    """Scrapes OpenMetrics until some exemplar satisfies pred (the request
    is recorded just after its answer leaves); returns (scrape, matches)."""
    deadline = time.monotonic() + timeout
    while True:
        s = h.scrape(url, fmt="openmetrics")
        found = [e for e in om_exemplars(s) if pred(*e)]
        if found or time.monotonic() > deadline:
            return s, found
        time.sleep(0.05)


def settled_text(url: str, line_prefix: str, at_least: Decimal, timeout: float = 5.0) -> str:
    """Text scrape once line_prefix's value reached at_least."""
    deadline = time.monotonic() + timeout
    while True:
        body = h.scrape(url).text
        if raw_value(body, line_prefix) >= at_least or time.monotonic() > deadline:
            return body
        time.sleep(0.02)


# ------------------------------------------------- Caddyfile.example instance


@pytest.fixture(scope="module")
def traffic(example_caddy):
    """Known traffic on the example: N GET /api/hello, M POST /contact,
    K GET /, and 404s; text scrapes before and after."""
    c = example_caddy
    n_api, n_contact, n_home, n_404 = 7, 4, 3, 2
    url = c.internal_metrics_url
    before = h.scrape(url).text
    for _ in range(n_api):
        assert h.request("GET", c.url("site", "/api/hello")).status == 200
    for _ in range(n_contact):
        r = h.request("POST", c.url("site", "/contact"), body=b"name=Ada",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 201
    for _ in range(n_home):
        assert h.request("GET", c.url("site", "/")).status == 200
    for _ in range(n_404):
        assert h.request("GET", c.url("site", "/nope")).status == 404
    want_contact = raw_value(before, series_line("db_queries_total", endpoint="contact", operation="insert")) + n_contact
    after = settled_text(url, series_line("db_queries_total", endpoint="contact", operation="insert"), want_contact)
    # The 404s are recorded too; wait until the last of everything is in.
    other_404 = series_line("http_requests_total", method="GET", endpoint="other", status="404")
    after = settled_text(url, other_404, raw_value(before, other_404) + n_404)
    return dict(before=before, after=after, api=n_api, contact=n_contact, home=n_home, n404=n_404)


def delta(t, prefix: str) -> Decimal:
    return raw_value(t["after"], prefix) - raw_value(t["before"], prefix)


def test_db_queries_exact(traffic):
    t = traffic
    want = {
        ("api", "select"): t["api"],
        ("contact", "select"): t["contact"],
        ("contact", "insert"): t["contact"],
        ("home", "select"): t["home"],
    }
    for (endpoint, op), n in want.items():
        got = delta(t, series_line("db_queries_total", endpoint=endpoint, operation=op))
        assert got == n, "db_queries_total{endpoint=%s,operation=%s} moved by %s, want %d" % (endpoint, op, got, n)
        got = delta(t, series_line("db_query_duration_seconds_count", endpoint=endpoint, operation=op))
        assert got == n, "db_query_duration_seconds_count{%s,%s} moved by %s, want %d" % (endpoint, op, got, n)
    # No entry fell outside the listed operations, and 404s (no upstream)
    # added no database metrics.
    for endpoint in h.ROUTES:
        for op in ("_other", "update", "delete"):
            assert delta(t, series_line("db_queries_total", endpoint=endpoint, operation=op)) == 0
    assert delta(t, series_line("db_queries_total", endpoint="other", operation="select")) == 0
    assert delta(t, series_line("server_timing_malformed_total", endpoint="api")) == 0


def test_db_duration_sums_exact(traffic):
    """dur is milliseconds with one decimal; the sum is exposed in seconds
    as an exact decimal, so the delta is exactly n * dur / 1000."""
    t = traffic
    for endpoint, op, n, dur in (("api", "select", t["api"], "0.0032"), ("contact", "select", t["contact"], "0.0032"),
                                 ("contact", "insert", t["contact"], "0.0075"), ("home", "select", t["home"], "0.0032")):
        got = delta(t, series_line("db_query_duration_seconds_sum", endpoint=endpoint, operation=op))
        assert got == Decimal(dur) * n, "sum{%s,%s} moved by %s, want %s" % (endpoint, op, got, Decimal(dur) * n)
    # Bucket placement with the example's buckets: 3.2 ms <= 0.005, 7.5 ms <= 0.01.
    sel = delta(t, series_line("db_query_duration_seconds_bucket", endpoint="api", operation="select", le="0.005"))
    below = delta(t, series_line("db_query_duration_seconds_bucket", endpoint="api", operation="select", le="0.0025"))
    ins = delta(t, series_line("db_query_duration_seconds_bucket", endpoint="contact", operation="insert", le="0.01"))
    ins_below = delta(t, series_line("db_query_duration_seconds_bucket", endpoint="contact", operation="insert", le="0.005"))
    assert (sel, below, ins, ins_below) == (t["api"], 0, t["contact"], 0)


def test_upstream_histogram_counts_proxied_requests(traffic, example_caddy):
    t = traffic
    up = "127.0.0.1:%d" % example_caddy.ports["upstream"]
    for endpoint, n in (("api", t["api"]), ("contact", t["contact"]), ("home", t["home"])):
        c = delta(t, series_line("http_upstream_duration_seconds_count", endpoint=endpoint, upstream=up))
        assert c == n, "upstream count {%s} moved by %s, want %d" % (endpoint, c, n)
        s = delta(t, series_line("http_upstream_duration_seconds_sum", endpoint=endpoint, upstream=up))
        total = sum(delta(t, series_line("http_request_duration_seconds_sum", method=m, endpoint=endpoint, status=st))
                    for m, st in (("GET", "200"), ("POST", "201")))
        assert 0 < s <= total, "upstream time %s must be positive and within the request time %s" % (s, total)
    # 404s are answered by Caddy itself: no upstream series for "other".
    assert "http_upstream_duration_seconds_count{endpoint=\"other\"" not in t["after"]


def test_strip_removes_server_timing(example_caddy):
    c = example_caddy
    direct = h.request("GET", c.url("upstream", "/api/hello"))
    assert direct.header("server-timing") == 'db;desc="select";dur=3.2', direct.headers
    proxied = h.request("GET", c.url("site", "/api/hello"))
    assert proxied.status == 200 and proxied.body == direct.body
    assert "server-timing" not in proxied.headers, proxied.headers
    submit = h.request("POST", c.url("upstream", "/contact"), body=b"x")
    assert submit.header("server-timing") == 'db;desc="select";dur=3.2, db;desc="insert";dur=7.5'
    assert "server-timing" not in h.request("POST", c.url("site", "/contact"), body=b"x").headers


def _is_request_counter(endpoint, method="GET", status="200"):
    def pred(name, labels, ex):
        return name == "http_requests_total" and labels == {"method": method, "endpoint": endpoint, "status": status}
    return pred


def test_exemplar_carries_the_client_id(example_caddy):
    c = example_caddy
    known = "e2e-known-%d" % time.monotonic_ns()
    t0 = time.time()
    r = h.request("GET", c.url("site", "/api/hello"), headers={"X-Request-ID": known})
    t1 = time.time()
    assert r.status == 200 and r.header("x-request-id") == known
    s, found = wait_for_exemplar(c.internal_metrics_url,
                                 lambda n, l, e: e.labels.get("request_id") == known)
    by_name = {n: (l, e) for n, l, e in found}
    assert "http_requests_total" in by_name, "no request counter exemplar with %s: %s" % (known, om_exemplars(s))
    labels, ex = by_name["http_requests_total"]
    assert labels == {"method": "GET", "endpoint": "api", "status": "200"} and ex.value == 1
    assert t0 - 1 <= float(ex.timestamp) <= t1 + 1, (t0, float(ex.timestamp), t1)
    assert "http_request_duration_seconds_bucket" in by_name, found
    labels, ex = by_name["http_request_duration_seconds_bucket"]
    assert labels["endpoint"] == "api" and labels["method"] == "GET" and labels["status"] == "200"
    # It sits in the bucket the request fell in: above the next lower bound,
    # not above its own.
    les = sorted(float(l["le"]) for n, l, _ in ((s_.name, dict(s_.labels), None) for f in s.families()
                                               for s_ in f.samples)
                 if n == "http_request_duration_seconds_bucket" and
                 {k: v for k, v in l.items() if k != "le"} == {k: v for k, v in labels.items() if k != "le"})
    i = les.index(float(labels["le"]))
    assert (les[i - 1] if i else 0) < ex.value <= les[i], (ex.value, labels["le"], les)
    assert "http_upstream_duration_seconds_bucket" in by_name, found
    up_labels, up_ex = by_name["http_upstream_duration_seconds_bucket"]
    assert up_labels["endpoint"] == "api" and 0 < up_ex.value <= ex.value
    # Every exemplar in the body has exactly the one request_id label.
    assert all(list(e.labels) == ["request_id"] for _, _, e in om_exemplars(s))


def test_generated_id_returned_and_in_exemplar(example_caddy):
    c = example_caddy
    r = h.request("POST", c.url("site", "/contact"), body=b"name=Ada")
    gen = r.header("x-request-id")
    assert r.status == 201 and gen and UUID_RE.match(gen), r.headers
    s, found = wait_for_exemplar(c.internal_metrics_url,
                                 lambda n, l, e: e.labels.get("request_id") == gen)
    names = {n for n, _, _ in found}
    assert {"http_requests_total", "http_request_duration_seconds_bucket"} <= names, found
    # Two requests never share an ID.
    assert h.request("GET", c.url("site", "/nope")).header("x-request-id") != gen


def test_no_exemplars_in_text(example_caddy):
    c = example_caddy
    h.request("GET", c.url("site", "/api/hello"), headers={"X-Request-ID": "text-must-not-show"})
    time.sleep(0.2)
    body = h.scrape(c.internal_metrics_url).text
    assert "text-must-not-show" not in body and " # {" not in body


def test_example_exposition_valid(example_caddy, traffic):
    c = example_caddy
    problems = h.exposition_problems(h.scrape(c.internal_metrics_url),
                                     h.scrape(c.internal_metrics_url, fmt="openmetrics"), "server-timing-example")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- lab instance

LAB_CONFIG = """{
	admin localhost:%(admin)d
	auto_https off
}

http://127.0.0.1:%(site)d {
	bind 127.0.0.1
	route_metrics {
		request_id
		server_timing {
			max_entries 8
			metric db {
				queries db_queries_total
				duration db_query_duration_seconds
				operations select insert
			}
			metric cache {
				queries cache_lookups_total
				max_operations 2
			}
		}
	}
	handle /echo* {
		route_metrics echo
		reverse_proxy 127.0.0.1:%(upstream)d
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


class EchoUpstream:
    """Sends one Server-Timing line per X-Test-Timing request header (bytes
    kept through latin-1) and reports the X-Request-ID it received in
    X-Seen-ID."""

    def __init__(self, port: int):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"echo"
                self.send_response(200)
                for v in self.headers.get_all("X-Test-Timing") or []:
                    self.send_header("Server-Timing", v)
                seen = self.headers.get_all("X-Request-ID") or []
                self.send_header("X-Seen-ID", seen[0] if seen else "")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def lab(request, caddy_binary):
    ports = {role: h.free_port() for role in h.DEFAULT_PORTS}
    upstream = EchoUpstream(ports["upstream"])
    request.addfinalizer(upstream.close)
    # The upstream port is ours (the Python server), not Caddy's: leave it
    # out of the harness' busy-port check and probes.
    caddy_ports = {role: p for role, p in ports.items() if role != "upstream"}

    def probes(c):
        return {role: p for role, p in h.default_probes(c).items() if role != "upstream"}

    caddy = run_caddy(request, LAB_CONFIG % ports, ports=caddy_ports, name="server_timing_lab", probes=probes)
    caddy.ports = ports
    return caddy


def raw_get(caddy: h.Caddy, headers: list[tuple[bytes, bytes]], path: bytes = b"/echo") -> bytes:
    # The site address is 127.0.0.1, which Caddy turns into a host matcher.
    req = b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    for k, v in headers:
        req += k + b": " + v + b"\r\n"
    req += b"Connection: close\r\n\r\n"
    return h.raw_request("127.0.0.1", caddy.ports["site"], req, timeout=15)


def response_headers(resp: bytes) -> list[tuple[bytes, bytes]]:
    head = resp.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    return [tuple(x.strip() for x in line.split(b":", 1)) for line in head if b":" in line]


MALFORMED = [
    # (Server-Timing lines, good entries counted as (op, n), malformed?)
    ([b"db;dur=-1"], {}, True),
    ([b"db;dur=NaN"], {}, True),
    ([b"db;dur=Infinity, db;dur=inf"], {}, True),
    ([b"db;dur=1e999"], {}, True),
    ([b"db;dur=abc;desc=select"], {}, True),
    ([b'db;desc="unterminated;dur=1'], {}, True),
    ([b"db;;;dur=1, db;desc=select;dur=2"], {"select": 1}, True),
    ([b"d\xffb;dur=1, db;desc=insert;dur=2"], {"insert": 1}, True),       # odd bytes in a name
    ([b'db;desc="\xc3\xa9\xff";dur=2'], {"_other": 1}, False),           # obs-text in quotes: fine
    ([b"db;desc=select;dur=" + b"9" * 12000], {}, True),                  # huge (> 8 KiB)
    ([b"db;desc=select;dur=1"] * 3, {"select": 3}, False),                # repeated lines
    ([b", ".join([b"db;desc=insert;dur=1"] * 9)], {"insert": 8}, True),   # 9 > max_entries 8
    ([b'db;desc="a,b;c";dur=1, db;desc=SELECT;dur=1'], {"_other": 1, "select": 1}, False),
    ([b"cache;dur=1, total;dur=99, db;desc=select"], {"select": 1}, False),  # unmapped names ignored
]


def test_malformed_and_hostile_server_timing(lab):
    url = lab.internal_metrics_url
    before = h.scrape(url).text
    want_ops: dict[str, int] = {}
    want_malformed = 0
    for lines, ops, bad in MALFORMED:
        resp = raw_get(lab, [(b"X-Test-Timing", v) for v in lines])
        assert h.raw_status(resp) == 200, (lines[0][:60], resp[:200])
        # Not stripped in the lab: the client sees what the upstream sent.
        got = [v for k, v in response_headers(resp) if k.lower() == b"server-timing"]
        assert got == [v.strip() for v in lines], (got[:3], lines[:3])
        for op, n in ops.items():
            want_ops[op] = want_ops.get(op, 0) + n
        want_malformed += bad
    mal = series_line("server_timing_malformed_total", endpoint="echo")
    after = settled_text(url, mal, raw_value(before, mal) + want_malformed)
    assert raw_value(after, mal) - raw_value(before, mal) == want_malformed
    for op in ("select", "insert", "_other"):
        got = raw_value(after, series_line("db_queries_total", endpoint="echo", operation=op)) - \
            raw_value(before, series_line("db_queries_total", endpoint="echo", operation=op))
        assert got == want_ops.get(op, 0), "db_queries_total{echo,%s} moved by %s, want %s" % (op, got, want_ops.get(op, 0))
    # Only the configured label values exist.
    ops = set(re.findall(r'^db_queries_total\{endpoint="echo",operation="([^"]*)"\}', after, re.M))
    assert ops <= {"select", "insert", "_other"}, ops
    problems = h.exposition_problems(h.scrape(url), h.scrape(url, fmt="openmetrics"), "server-timing-lab")
    assert not problems, "\n".join(problems)


def test_dynamic_operations_bounded(lab):
    """max_operations 2: the first two distinct descs (lowercased) get their
    own label value, everything after is _other."""
    url = lab.internal_metrics_url
    before = h.scrape(url).text
    for desc in (b"a", b"B", b"a", b"c", b"d", b"bad op"):
        assert h.raw_status(raw_get(lab, [(b"X-Test-Timing", b'cache;desc="' + desc + b'"')])) == 200
    other = series_line("cache_lookups_total", endpoint="echo", operation="_other")
    body = settled_text(url, other, raw_value(before, other) + 3)
    got = {op: raw_value(body, series_line("cache_lookups_total", endpoint="echo", operation=op)) -
           raw_value(before, series_line("cache_lookups_total", endpoint="echo", operation=op))
           for op in ("a", "b", "_other")}
    assert got == {"a": 2, "b": 1, "_other": 3}, got
    assert not re.search(r'^cache_lookups_total\{endpoint="echo",operation="[cd]"', body, re.M)


def _exemplar_ids(caddy):
    s = h.scrape(caddy.internal_metrics_url, fmt="openmetrics")
    return s, [e.labels.get("request_id") for _, _, e in om_exemplars(s)]


def test_request_ids_reach_upstream_and_back(lab):
    # Known ID: the upstream saw it, the client got it back once.
    resp = raw_get(lab, [(b"X-Request-ID", b"lab-known-1")])
    hdrs = response_headers(resp)
    assert [v for k, v in hdrs if k.lower() == b"x-request-id"] == [b"lab-known-1"]
    assert [v for k, v in hdrs if k.lower() == b"x-seen-id"] == [b"lab-known-1"]
    # No ID: the generated one went upstream and came back.
    resp = raw_get(lab, [])
    hdrs = dict((k.lower(), v) for k, v in response_headers(resp))
    gen = hdrs[b"x-request-id"].decode()
    assert UUID_RE.match(gen) and hdrs[b"x-seen-id"].decode() == gen, hdrs


HOSTILE_IDS = [
    (b"x" * 119, False),                       # 10 + 119 > 128 characters: dropped
    (b"y" * 4000, False),                      # huge
    (b"brace{}" + b"z" * 5, False),            # braces: dropped (prometheus_client)
    (b"bad-utf8-\xff\xfe", False),             # not UTF-8: dropped
    (b"tab\there", False),                     # control character: dropped
    (b"\xc3\xa9" * 118, True),                 # 128 characters, 236 bytes: kept
    (b'quo"te\\back #{slash', False),          # a brace again
    (b'quo"te\\back # slash', True),           # escaped, kept
]


@pytest.mark.parametrize("raw_id,kept", HOSTILE_IDS, ids=[str(i) for i in range(len(HOSTILE_IDS))])
def test_hostile_request_ids(lab, raw_id, kept):
    resp = raw_get(lab, [(b"X-Request-ID", raw_id)])
    assert h.raw_status(resp) == 200
    hdrs = response_headers(resp)
    # Passed on and returned unchanged, whatever it is.
    assert [v for k, v in hdrs if k.lower() == b"x-request-id"] == [raw_id.strip()]
    assert [v for k, v in hdrs if k.lower() == b"x-seen-id"] == [raw_id.strip()]
    want = raw_id.decode("utf-8", "replace")
    if kept:
        s, found = wait_for_exemplar(lab.internal_metrics_url,
                                     lambda n, l, e: e.labels.get("request_id") == want)
        assert {n for n, _, _ in found} >= {"http_requests_total", "http_request_duration_seconds_bucket",
                                            "http_upstream_duration_seconds_bucket"}, found
    else:
        time.sleep(0.2)
        s, ids = _exemplar_ids(lab)
        assert want not in ids and raw_id.decode("latin-1") not in ids
    problems = h.exposition_problems(h.scrape(lab.internal_metrics_url), s, "server-timing-id")
    assert not problems, "\n".join(problems)
