"""The status page in a real browser: after known traffic, Debian's headless
Chromium loads http://127.0.0.1:9091/metrics?format=html, its DOM shows
every route with the request count the exposition reports (and the delta
equals what was sent), and a screenshot is kept for a person to look at.
Also: the browser gets the page from a plain /metrics through its Accept
header, while scrapers' Accept headers still get the exposition; and the
Server-Timing metrics have a section of their own, apart from the business
counters."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from collections import Counter
from html.parser import HTMLParser

import pytest

import helpers as h

CHROMIUM = "/usr/bin/chromium"
SHOT = h.OUT / "status_page.png"
FORM = b"name=e2e&email=e2e%40example.com&message=hello"

# (method, path, body, endpoint label, repetitions)
PLAN = [
    ("GET", "/", None, "home", 7),
    ("GET", "/api/x", None, "api", 5),
    ("POST", "/contact", FORM, "contact", 3),
    ("GET", "/e2e-no-such-page", None, "other", 4),
]
ROUTES = ("home", "api", "contact")


def chromium(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """One headless Chromium run with a fresh profile, nothing phoning home."""
    profile = tempfile.mkdtemp(prefix="e2e-chromium-")
    try:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             "--user-data-dir=" + profile, *args],
            capture_output=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def requests_by_endpoint(values: dict) -> Counter:
    out = Counter()
    for labels, v in h.series(values, "http_requests_total").items():
        out[dict(labels)["endpoint"]] += int(v)
    return out


class Tables(HTMLParser):
    """Every <table> of a page as rows of cell texts (header row first)."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.row_classes: list[list[str | None]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
            self.row_classes.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
            self.row_classes[-1].append(dict(attrs).get("class"))
        elif tag in ("td", "th") and self.tables:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def page(example_caddy):
    c = example_caddy
    before = requests_by_endpoint(h.scrape(c.internal_metrics_url).values())
    sent = Counter()
    statuses = Counter()
    for method, path, body, endpoint, n in PLAN:
        for _ in range(n):
            hdrs = {"Content-Type": "application/x-www-form-urlencoded"} if body else None
            r = h.request(method, c.url("site", path), body=body, headers=hdrs)
            sent[endpoint] += 1
            statuses[(endpoint, r.status)] += 1
    after_values = h.scrape(c.internal_metrics_url).values()
    after = requests_by_endpoint(after_values)

    url = c.url("internal", "/metrics?format=html")
    dump = chromium("--dump-dom", url)
    dom = dump.stdout.decode("utf-8", errors="replace")
    SHOT.parent.mkdir(parents=True, exist_ok=True)
    SHOT.unlink(missing_ok=True)
    shot = chromium("--screenshot=%s" % SHOT, "--window-size=1280,1600", "--hide-scrollbars", url)
    (h.OUT / "status_page.dom.html").write_text(dom)
    return dict(before=before, after=after, after_values=after_values, sent=sent, statuses=statuses,
                dom=dom, dump=dump, shot=shot)


class Sections(HTMLParser):
    """The page's <h2> sections: for each, its <h3> headings in order and,
    per <h3>, the rows (cell texts) of the table that follows it."""

    def __init__(self):
        super().__init__()
        self.sections: dict[str, dict[str, list[list[str]]]] = {}
        self._heading: str | None = None
        self._text: list[str] = []
        self._h2: str | None = None
        self._h3: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag in ("h2", "h3"):
            self._heading, self._text = tag, []
        elif tag == "tr" and self._h2 is not None and self._h3 is not None:
            self.sections[self._h2][self._h3].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == self._heading:
            text = "".join(self._text).strip()
            if tag == "h2":
                self._h2, self._h3 = text, None
                self.sections.setdefault(text, {})
            elif self._h2 is not None:
                self._h3 = text
                self.sections[self._h2][text] = []
            self._heading = None
        elif tag in ("td", "th") and self._cell is not None:
            if self._h2 is not None and self._h3 is not None:
                self.sections[self._h2][self._h3][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._heading:
            self._text.append(data)
        if self._cell is not None:
            self._cell.append(data)


ST_FAMILIES = ("db_queries_total", "db_query_duration_seconds", "server_timing_malformed_total")


def test_server_timing_has_its_own_section(page):
    """Caddyfile.example's demo app reports db timings: the Server-Timing
    metrics are listed under "Server-Timing", after the business counters,
    and not among them (which hold contact_submissions_total); the queries
    shown are the exposition's."""
    p = Sections()
    p.feed(page["dom"])
    names = list(p.sections)
    assert "Business counters" in names and "Server-Timing" in names, names
    assert names.index("Business counters") < names.index("Server-Timing") < names.index("Process"), names
    business, st = p.sections["Business counters"], p.sections["Server-Timing"]
    assert "contact_submissions_total" in business, list(business)
    assert not set(business) & set(ST_FAMILIES), list(business)
    assert set(st) == set(ST_FAMILIES), list(st)

    queries = h.series(page["after_values"], "db_queries_total")
    assert queries, "no db_queries_total series in the exposition"
    rows = st["db_queries_total"]
    assert rows[0][:2] == ["Labels", "Value"], rows[0]
    shown = {r[0]: int(r[1]) for r in rows[1:]}
    for labels, v in queries.items():
        cell = ", ".join('%s="%s"' % kv for kv in labels)
        assert shown.get(cell) == int(v), (cell, v, shown)
    assert st["db_query_duration_seconds"][0] == ["Labels", "Count", "Per second", "p50 ms",
                                                  "p95 ms", "p99 ms"]


RUNTIME_COUNTERS = ("metrics_endpoint_refused_total", "metrics_endpoint_scrape_errors_total",
                    "go_gc_cycles_total")


def test_plugin_counters_have_their_own_section(page):
    """The plugin's own counters (refused and failed scrapes, the Go
    runtime's) are listed under "Runtime", after Server-Timing, not among
    the business counters; its gauges are not listed there."""
    p = Sections()
    p.feed(page["dom"])
    names = list(p.sections)
    assert "Runtime" in names, names
    assert names.index("Server-Timing") < names.index("Runtime") < names.index("Process"), names
    business, runtime = p.sections["Business counters"], p.sections["Runtime"]
    assert not set(business) & set(RUNTIME_COUNTERS), list(business)
    assert set(runtime) == set(RUNTIME_COUNTERS), list(runtime)
    assert {r[0] for r in runtime["metrics_endpoint_scrape_errors_total"][1:]} == {
        'reason="start"', 'reason="render"', 'reason="write"'}, runtime["metrics_endpoint_scrape_errors_total"]


def routes_table(dom: str):
    p = Tables()
    p.feed(dom)
    for rows, classes in zip(p.tables, p.row_classes):
        if rows and rows[0][:3] == ["State", "Route", "Requests"]:
            header = rows[0]
            return [dict(zip(header, r)) for r in rows[1:]], classes[1:]
    raise AssertionError("no routes table (State | Route | Requests ...) in the DOM:\n%s" % dom[:3000])


def test_chromium_ran(page):
    d = page["dump"]
    assert d.returncode == 0, "chromium --dump-dom rc=%d: %s" % (d.returncode, d.stderr.decode(errors="replace")[-2000:])
    assert "<html" in page["dom"], page["dom"][:500]


def test_exposition_counts_what_was_sent(page):
    for ep in ROUTES + ("other",):
        assert page["after"][ep] - page["before"][ep] == page["sent"][ep], (ep, page["before"], page["after"])


def test_page_shows_each_route_with_its_count(page):
    rows, _ = routes_table(page["dom"])
    by_route = {r["Route"]: r for r in rows}
    for ep in ROUTES:
        assert ep in by_route, "route %r not on the page; rows: %s" % (ep, list(by_route))
        shown = int(by_route[ep]["Requests"])
        # The page reads the same registry: the exposition's total, of which
        # exactly what this test sent is new.
        assert shown == page["after"][ep], (ep, shown, page["after"][ep])
        assert shown - page["before"][ep] == page["sent"][ep], (ep, shown, page["before"][ep], page["sent"][ep])


def test_page_shows_404s_as_4xx(page):
    rows, _ = routes_table(page["dom"])
    other = {r["Route"]: r for r in rows}.get("other")
    assert other is not None, "the catch-all route 'other' is not on the page"
    assert page["statuses"][("other", 404)] == 4, page["statuses"]
    assert float(other["4xx %"]) > 0, other
    assert other["5xx %"] == "0", other


def test_page_is_sorted_worst_first(page):
    rows, _ = routes_table(page["dom"])
    def key(r):
        s5 = -1.0 if r["5xx %"] == "\u2013" else float(r["5xx %"].lstrip("<"))
        return s5
    keys = [key(r) for r in rows]
    assert keys == sorted(keys, reverse=True), keys


def test_page_has_no_script_and_refresh_links(page):
    dom = page["dom"]
    assert "<script" not in dom.lower()
    assert 'href="?format=html&amp;refresh=5"' in dom
    assert "histogram_quantile" in dom


def test_screenshot(page):
    s = page["shot"]
    assert s.returncode == 0, "chromium --screenshot rc=%d: %s" % (s.returncode, s.stderr.decode(errors="replace")[-2000:])
    data = SHOT.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG: %r" % data[:16]
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 1600), (width, height)
    assert len(data) > 20000, "suspiciously small screenshot (%d bytes): blank page?" % len(data)


def test_browser_gets_the_page_from_plain_metrics(example_caddy):
    """No ?format: Chromium's own Accept header (text/html first) selects
    the page."""
    d = chromium("--dump-dom", example_caddy.internal_metrics_url)
    dom = d.stdout.decode("utf-8", errors="replace")
    assert d.returncode == 0
    rows, _ = routes_table(dom)
    assert {r["Route"] for r in rows} >= set(ROUTES)


ACCEPTS = {
    # Prometheus 2.x/3.x scrape Accept headers, curl, an exposition client.
    "prometheus": ("application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;"
                   "version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2", "application/openmetrics-text"),
    "prometheus-text": ("text/plain;version=0.0.4;q=1,*/*;q=0.1", "text/plain"),
    "curl": ("*/*", "text/plain"),
    "none": (None, "text/plain"),
    "openmetrics": (h.OPENMETRICS_ACCEPT, "application/openmetrics-text"),
}


@pytest.mark.parametrize("who", sorted(ACCEPTS))
def test_scrapers_unaffected(example_caddy, who):
    accept, ctype = ACCEPTS[who]
    r = h.request("GET", example_caddy.internal_metrics_url, headers={"Accept": accept} if accept else None)
    assert r.status == 200
    assert r.header("content-type", "").startswith(ctype), r.headers
    assert b"<html" not in r.body and b"\nhttp_requests_total{" in r.body


def test_markdown_by_accept_and_query(example_caddy):
    for hdrs, path in (({"Accept": "text/markdown"}, "/metrics"), (None, "/metrics?format=markdown")):
        r = h.request("GET", example_caddy.url("internal", path), headers=hdrs)
        assert r.status == 200
        assert r.header("content-type") == "text/markdown; charset=utf-8", r.headers
        text = r.body.decode("utf-8")
        assert text.startswith("# Caddy status"), text[:200]
        assert "| State | Route | Requests |" in text
