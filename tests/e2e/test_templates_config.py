"""Route templates as an operator configures them: bad OpenAPI documents
and templates fail `caddy validate` naming the Caddyfile line and the
document's own position; a reload picks up a changed document, unchanged
templates keep their counts, and a broken document fails the reload while
the running configuration goes on counting; the status page shows
template endpoints (slashes, braces) as written."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import helpers as h
from conftest import run_caddy

CADDYFILE = """
http://127.0.0.1:18080 {
	route_metrics api {
		namespace tplcfg_
		openapi SPEC
	}
	respond "ok"
}
"""


def spec(paths, version="3.0.3") -> str:
    return json.dumps({"openapi": version, "info": {"title": "t", "version": "1"},
                       "paths": {p: {"get": {}} for p in paths}}, indent=2)


BAD = [
    # (file name, content, what the message must contain besides Caddyfile:4)
    ("missing.json", None, "missing.json: no such file or directory"),
    ("syntax.json", '{\n  "openapi": "3.1.0",\n  "paths": {\n    "/a": {}\n    "/b": {}\n  }\n}',
     "syntax.json:5:5: invalid character '\"' after object key:value pair"),
    ("type.json", '{"openapi": "3.1.0", "paths": ["/a"]}', 'type.json:1:31: "paths" must be an object'),
    ("swagger.json", '{"swagger": "2.0", "paths": {"/a": {}}}', "a Swagger 2.0 document; only OpenAPI 3.x"),
    ("bad.yaml", "openapi: 3.0.0\npaths:\n  /a: [\n", "bad.yaml: yaml: line 3"),
    ("template.json", spec(["/ok", "/users/{id", "/z"]), 'template.json:11:5: template "/users/{id": segment 2'),
    ("template.yaml", "openapi: 3.1.0\npaths:\n  /ok: {}\n  /a/{x}/{x}: {}\n",
     'template.yaml:4:3: template "/a/{x}/{x}": parameter "x" appears twice'),
    ("many.json", spec(["/r%d/{id}" % i for i in range(501)]), "501 templates; at most 500 per route_metrics"),
]


@pytest.mark.parametrize("name,content,want", BAD, ids=[b[0] for b in BAD])
def test_bad_spec_fails_validate_with_positions(caddy_binary, tmp_path, name, content, want):
    if content is not None:
        (tmp_path / name).write_text(content)
    cf = tmp_path / "Caddyfile"
    cf.write_text(CADDYFILE.lstrip("\n").replace("SPEC", name))  # relative: to the Caddyfile
    p = h.validate(cf)
    err = h.log_messages(p.stderr + p.stdout)
    assert p.returncode != 0, "validated: %s" % name
    assert want in err, err[-2000:]
    assert "%s:4" % cf in err, err[-2000:]
    assert "panic" not in err.lower()


def scrape_counts(caddy) -> Counter:
    out = Counter()
    for labels, v in h.series(h.scrape(caddy.internal_metrics_url).values(), "tplcfg_http_requests_total").items():
        d = dict(labels)
        out[d["endpoint"]] += v
    return out


def get(caddy, paths):
    for p in paths:
        assert h.request("GET", caddy.url("site", p)).status == 200


def test_reload_follows_the_document_and_keeps_counts(request, caddy_binary, tmp_path):
    ports = {"site": h.free_port(), "internal": h.free_port(), "admin": h.free_port()}
    doc = tmp_path / "openapi.json"
    doc.write_text(spec(["/keep/{id}", "/old"]))
    text = h.remap_ports(h.add_global_options(
        (CADDYFILE.replace("SPEC", str(doc)).replace("127.0.0.1:18080", "127.0.0.1:8080") +
         "http://127.0.0.1:9091 {\n\tmetrics_endpoint\n}\n"),
        ["admin localhost:2019"]), ports)
    caddy = run_caddy(request, text, ports=ports, name="templates_reload",
                      probes=lambda c: {"internal": lambda: h.request("GET", c.internal_metrics_url, timeout=2).status == 200})
    get(caddy, ["/keep/1", "/old", "/new"])
    assert scrape_counts(caddy) == Counter({"/keep/{id}": 1, "/old": 1, "api": 1})

    doc.write_text(spec(["/keep/{id}", "/new"]))
    p = caddy.reload_cli()
    assert p.returncode == 0, p.stderr[-2000:]
    get(caddy, ["/keep/2", "/old", "/new"])
    # /keep/{id} is one series across the reload; /old left the document
    # (its series stays, no longer counting); /new came in.
    assert scrape_counts(caddy) == Counter({"/keep/{id}": 2, "/old": 1, "api": 2, "/new": 1})

    doc.write_text('{"openapi": "3.0.3", "paths": {"/keep/{id}": {},}}')
    p = caddy.reload_cli()
    err = h.log_messages(p.stderr + p.stdout)
    assert p.returncode != 0
    assert "%s:1:49: invalid character '}'" % doc in err, err[-2000:]
    assert caddy.alive()
    get(caddy, ["/keep/3", "/new"])
    assert scrape_counts(caddy) == Counter({"/keep/{id}": 3, "/old": 1, "api": 2, "/new": 2})

    # The status page shows the templates as written.
    page = h.request("GET", caddy.internal_metrics_url + "?format=markdown&namespace=tplcfg_").body.decode()
    assert "/keep/{id}" in page and "/new" in page, page[:3000]
    html = h.request("GET", caddy.internal_metrics_url + "?format=html&namespace=tplcfg_").body.decode()
    assert "/keep/{id}" in html, html[:3000]
