"""Route templates against FastAPI's own routing.

The example app runs with prometheus-fastapi-instrumentator (status codes
not grouped: fastapi_parity/instrumented_app.py); its /openapi.json is
saved to a file and Caddy, on the example's own Caddyfile, points `openapi`
at it (plus the Caddyfile's inline `template /v1/files/{file_path:path}`,
which FastAPI's document writes as {file_path}). On the same traffic
(every template, 404, 405, 422, FastAPI's 307 trailing-slash redirect,
percent-encoded segments, `//`, dot segments, /v1/customers/me against
/v1/customers/{customer_id}) Caddy's (endpoint, method, status) counts
equal the instrumentator's (handler, method, status) counts exactly, where
a handler that is no template corresponds to Caddy's route name for a path
that matches none ("other"): the instrumentator's "none", and whatever
raw path it might put on a redirect.

Each path-normalisation decision (percent-encoding, `//`, trailing slash,
dot segments) has a case of its own, sent alone: the label Caddy gave it
must be the handler FastAPI's routing gave it, so the expectation is
FastAPI's answer, not ours.

Then the two ways an upstream receives a rewritten path: handle_path, and
handle + uri strip_prefix after route_metrics (matched again on the final
path).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

import helpers as h
from conftest import run_caddy
from fastapi_parity import stack, traffic
from test_parity_fastapi import caddy_requests, diff, table

INSTRUMENTED_APP = "fastapi_parity.instrumented_app:app"
ROUTE_NAME = "other"  # the site route_metrics of examples/fastapi/Caddyfile is unnamed
INLINE = {"/v1/files/{file_path}": "/v1/files/{file_path:path}"}  # the Caddyfile's template

# Sent one at a time; what FastAPI makes of each decides what Caddy must.
NORMALISATION = [
    traffic.Call("GET", "/v1/items/%31"),            # an encoded digit: decoded before routing
    traffic.Call("GET", "/%761/items/1"),            # an encoded literal
    traffic.Call("GET", "/v1/customers/%6De"),       # "me", encoded
    traffic.Call("GET", "/v1/customers/x%2Fy"),      # an encoded slash: two segments
    traffic.Call("GET", "/v1/items/1%20"),           # a space: still one segment
    traffic.Call("GET", "/v1/items//1"),             # an empty segment
    traffic.Call("GET", "//v1/items/1"),
    traffic.Call("GET", "/v1/files//a//b"),          # {file_path:path} takes them
    traffic.Call("GET", "/v1/files/"),               # an empty {file_path:path}
    traffic.Call("GET", "/v1/files"),                # FastAPI redirects to /v1/files/
    traffic.Call("GET", "/v1/items/1/"),             # trailing slash: redirect
    traffic.Call("GET", "/v1/customers/me/"),
    traffic.Call("GET", "/v1/search%2F"),            # an encoded trailing slash
    traffic.Call("GET", "/v1/items/./1"),            # dot segments, sent as they are
    traffic.Call("GET", "/v1/./items/1"),
    traffic.Call("GET", "/v1/items/1/.."),
    traffic.Call("GET", "/v1/customers/.."),
]

TRAFFIC = dict(keep_alive_rounds=2, fresh_rounds=1, concurrent_clients=4, concurrent_rounds=1, max_seconds=90)


@dataclass
class Stack:
    app: stack.App
    caddy: h.Caddy
    templates: set[str]
    spec: Path


def app_requests(values: dict) -> Counter:
    out = Counter()
    for labels, v in h.series(values, "http_requests_total").items():
        d = dict(labels)
        out[(d["handler"], d["method"], d["status"])] += v
    return out


def mapped(app: Counter, templates: set[str], route_name: str) -> Counter:
    """The instrumentator's counts under Caddy's labels: a handler that is a
    template keeps it, any other ("none", a raw path) is the route's name."""
    out = Counter()
    for (handler, method, status), v in app.items():
        out[(handler if handler in templates else route_name, method, status)] += v
    return out


@pytest.fixture(scope="module")
def stk(request, caddy_binary, venv_python, tmp_path_factory) -> Stack:
    ports = {role: h.free_port() for role in h.DEFAULT_PORTS}
    app = stack.start_app(venv_python, ports["upstream"], 1, h.OUT / "parity_templates-app",
                          module=INSTRUMENTED_APP)
    request.addfinalizer(app.stop)
    # The document the app serves, saved as an operator would (curl > file).
    resp = h.request("GET", "http://127.0.0.1:%d/openapi.json" % ports["upstream"], timeout=10)
    assert resp.status == 200
    spec = tmp_path_factory.mktemp("spec") / "openapi.json"
    spec.write_bytes(resp.body)
    paths = list(json.loads(resp.body)["paths"])
    templates = {INLINE.get(p, p) for p in paths}
    caddy_ports = {role: p for role, p in ports.items() if role != "upstream"}
    caddy = run_caddy(request, stack.caddy_text(ports, openapi=spec), ports=caddy_ports,
                      name="parity_templates", probes=stack.caddy_probes)
    return Stack(app, caddy, templates, spec)


def scrapes(s: Stack) -> tuple[dict, dict]:
    return h.scrape(s.caddy.internal_metrics_url).values(), h.scrape(s.app.metrics_url).values()


def settled(s: Stack, caddy_before: dict, n: int) -> dict:
    base = sum(caddy_requests(caddy_before).values())
    return h.settled_scrape(s.caddy.internal_metrics_url,
                            lambda v: sum(caddy_requests(v).values()) - base >= n and h.in_flight_zero(v)).values()


def app_settled(s: Stack, app_before: dict, n: int) -> dict:
    """The app's counts once it has recorded n more requests (or after the
    timeout). The instrumentator records after the response went out, so
    the client, and Caddy, can be done before it: scraping it at once races
    that."""
    base = sum(app_requests(app_before).values())
    return h.settled_scrape(s.app.metrics_url,
                            lambda v: sum(app_requests(v).values()) - base >= n).values()


def test_committed_spec_is_the_apps(stk):
    """examples/fastapi/openapi.json (what the example's Caddyfile reads)
    has the routes the app serves now."""
    committed = json.loads((stack.EXAMPLE_DIR / "openapi.json").read_text())["paths"]
    served = json.loads(stk.spec.read_text())["paths"]
    assert list(committed) == list(served), "refresh examples/fastapi/openapi.json (see its Caddyfile)"


def test_normalisation_cases_route_like_fastapi(stk):
    rows, wrong = [], []
    for call in NORMALISATION:
        caddy_before, app_before = scrapes(stk)
        tally = traffic.Tally()
        client = traffic.Client("127.0.0.1", stk.caddy.ports["site"], True, "norm", tally)
        client.run([call], 1, float("inf"))
        assert not tally.failures, tally.failures
        caddy = diff(caddy_requests(settled(stk, caddy_before, 1)), caddy_requests(caddy_before))
        app = diff(app_requests(app_settled(stk, app_before, 1)), app_requests(app_before))
        (status,) = [s for (_, _, s) in tally.answered]
        assert sum(caddy.values()) == 1 and sum(app.values()) == 1, (call, caddy, app)
        (c,), (a,) = list(caddy), list(app)
        rows.append((call.path, status, a[0], c[0]))
        if c != next(iter(mapped(app, stk.templates, ROUTE_NAME))):
            wrong.append((call.path, a, c))
    print("\nnormalisation cases (FastAPI's handler -> Caddy's endpoint):\n%s" % table(
        rows, ("path sent", "status", "instrumentator handler", "caddy endpoint")))
    assert not wrong, wrong


def test_trailing_newline_is_the_one_documented_difference(stk):
    """Starlette's route regexes end in `$`, which Python also matches
    before a final newline, so FastAPI routes /v1/search%0A (decoded:
    "/v1/search\\n") to /v1/search. Caddy matches the path exactly and
    labels it with the route's name (README, "Labels compared with
    prometheus-fastapi-instrumentator"). Pinned here so a change on either
    side shows."""
    caddy_before, app_before = scrapes(stk)
    tally = traffic.Tally()
    traffic.Client("127.0.0.1", stk.caddy.ports["site"], True, "nl", tally).run(
        [traffic.Call("GET", "/v1/search%0A")], 1, float("inf"))
    assert not tally.failures, tally.failures
    caddy = diff(caddy_requests(settled(stk, caddy_before, 1)), caddy_requests(caddy_before))
    app = diff(app_requests(app_settled(stk, app_before, 1)), app_requests(app_before))
    assert list(app) == [("/v1/search", "GET", "422")], app
    assert list(caddy) == [(ROUTE_NAME, "GET", "422")], caddy


def test_mixed_traffic_counts_equal_the_instrumentators(stk):
    caddy_before, app_before = scrapes(stk)
    tally = traffic.Tally()
    traffic.run_mixed("127.0.0.1", stk.caddy.ports["site"], tally, **TRAFFIC)
    assert not tally.failures, tally.failures[:10]
    caddy = diff(caddy_requests(settled(stk, caddy_before, tally.total())), caddy_requests(caddy_before))
    app = diff(app_requests(app_settled(stk, app_before, tally.total())), app_requests(app_before))
    want = mapped(app, stk.templates, ROUTE_NAME)
    keys = sorted(set(caddy) | set(want))
    print("\nrequests (%d) by endpoint/handler, method, status:\n%s" % (tally.total(), table(
        [(*k, int(want[k]), int(caddy[k])) for k in keys], ("endpoint", "method", "status", "instrumentator", "caddy"))))
    statuses = {s for (_, _, s) in tally.answered}
    assert {200, 201, 204, 307, 401, 404, 405, 422, 500} <= statuses
    assert {e for (e, _, _) in caddy} == stk.templates | {ROUTE_NAME}, "every template and the route name"
    assert caddy == want, {k: (want[k], caddy[k]) for k in keys if want[k] != caddy[k]}
    assert sum(caddy.values()) == tally.total()


REWRITES = """
{
	auto_https off
	admin localhost:2019
	default_bind 127.0.0.1
}
http://:8080 {
	handle_path /hp/* {
		route_metrics hp {
			namespace tplrw_
			openapi SPEC
			template /v1/files/{file_path:path}
		}
		reverse_proxy 127.0.0.1:8081
	}
	handle /sp/* {
		route_metrics sp {
			namespace tplrw_
			openapi SPEC
			template /v1/files/{file_path:path}
		}
		uri strip_prefix /sp
		reverse_proxy 127.0.0.1:8081
	}
}
http://127.0.0.1:9091 {
	metrics_endpoint
}
"""


def test_rewritten_paths_match_what_the_app_receives(request, stk):
    ports = {"site": h.free_port(), "upstream": stk.app.port, "internal": h.free_port(), "admin": h.free_port()}
    text = h.remap_ports(REWRITES.replace("SPEC", str(stk.spec)), ports)
    caddy = run_caddy(request, text, ports={r: p for r, p in ports.items() if r != "upstream"},
                      name="parity_templates_rewrite", probes=stack.caddy_probes)
    calls = {
        "/hp/v1/items/1": ("/v1/items/{item_id}", "200"),
        "/hp/v1/files/a/b.txt": ("/v1/files/{file_path:path}", "404"),
        "/hp/v1/nothing": ("hp", "404"),
        "/sp/v1/items/1": ("/v1/items/{item_id}", "200"),
        "/sp/v1/customers/me": ("/v1/customers/me", "401"),
        "/sp/v1/nothing": ("sp", "404"),
    }
    before = h.scrape(caddy.internal_metrics_url).values()
    tally = traffic.Tally()
    traffic.Client("127.0.0.1", ports["site"], True, "rw", tally).run(
        [traffic.Call("GET", p) for p in calls], 1, float("inf"))
    assert not tally.failures, tally.failures
    after = h.settled_scrape(caddy.internal_metrics_url, lambda v: sum(
        v for (n, _), v in v.items() if n == "tplrw_http_requests_total") >= len(calls)).values()
    got = Counter()
    for labels, v in h.series(after, "tplrw_http_requests_total").items():
        d = dict(labels)
        got[(d["endpoint"], d["status"])] += v - before.get(("tplrw_http_requests_total", labels), 0)
    got = +got
    assert got == Counter(calls.values()), got
