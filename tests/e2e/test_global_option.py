"""The route_metrics global option (the routemetrics app): the registry's
limits come from it, are checked by `caddy validate` (libmetrics refuses a
fourth route when max_routes is 3), and are fixed for the life of the
process: a reload that asks for other limits is refused with the reason and
the running configuration keeps serving; one with the same limits loads.
Its own Caddy on free ports."""

from __future__ import annotations

import pytest

import helpers as h
from conftest import run_caddy

CONFIG = """{
	admin localhost:%(admin)d
	auto_https off
%(option)s}

http://127.0.0.1:%(site)d {
	bind 127.0.0.1
%(routes)s}

http://127.0.0.1:%(internal)d {
	bind 127.0.0.1
	metrics_endpoint
}
"""

LIMIT = "\troute_metrics {\n\t\tmax_routes 3\n\t}\n"


def config(ports, names, option=LIMIT) -> str:
    routes = "".join("\thandle /%s {\n\t\troute_metrics %s\n\t\trespond \"ok\" 200\n\t}\n" % (n, n)
                     for n in names)
    return CONFIG % dict(ports, option=option, routes=routes)


@pytest.fixture(scope="module")
def caddy(request, caddy_binary):
    ports = {"site": h.free_port(), "internal": h.free_port(), "admin": h.free_port()}

    def probes(c):
        return {"internal": lambda: h.request("GET", c.internal_metrics_url, timeout=2).status == 200}
    return run_caddy(request, config(ports, ["a", "b", "c"]), ports=ports, name="test_global_option",
                     probes=probes)


def _serves(c, names) -> None:
    for n in names:
        assert h.request("GET", c.url("site", "/" + n)).status == 200, n
    values = h.scrape(c.internal_metrics_url).values()
    for n in names:
        assert sum(h.series(values, "http_requests_total", endpoint=n).values()) >= 1, n


def test_validate_applies_the_limit(caddy, tmp_path):
    """`caddy validate` provisions with the option's limits: a fourth route
    is refused by libmetrics, three validate."""
    four = tmp_path / "Caddyfile"
    four.write_text(config(caddy.ports, ["a", "b", "c", "d"]))
    p = h.validate(four)
    assert p.returncode != 0 and "max_routes (3) is reached" in p.stdout + p.stderr, p.stderr[-2000:]
    three = tmp_path / "Caddyfile3"
    three.write_text(config(caddy.ports, ["a", "b", "c"]))
    p = h.validate(three)
    assert p.returncode == 0, p.stderr[-2000:]


def test_limits_serve(caddy):
    _serves(caddy, ["a", "b", "c"])


@pytest.mark.parametrize("option, asked", [
    ("\troute_metrics {\n\t\tmax_routes 4\n\t}\n", "max_routes 4"),
    ("", "max_routes 1000"),
], ids=["other-limit", "option-removed"])
def test_reload_with_other_limits_is_refused(caddy, option, asked):
    p = caddy.reload_cli(config(caddy.ports, ["a", "b", "c"], option=option))
    out = p.stdout + p.stderr
    assert p.returncode != 0, out[-2000:]
    assert "max_routes 3" in out and asked in out and "restart Caddy" in out, out[-2000:]
    _serves(caddy, ["a", "b", "c"])  # the running configuration is untouched


def test_reload_with_the_same_limits_loads(caddy):
    """Same limits: the reload loads. A route name, once registered, keeps
    its series (and its place under max_routes) for the life of the
    process, so a fourth name is still refused after the reload."""
    p = caddy.reload_cli(config(caddy.ports, ["c", "b", "a"]))
    assert p.returncode == 0, (p.stdout + p.stderr)[-2000:]
    _serves(caddy, ["a", "b", "c"])
    p = caddy.reload_cli(config(caddy.ports, ["a", "b", "e"]))
    assert p.returncode != 0 and "max_routes (3) is reached" in p.stdout + p.stderr, (p.stdout + p.stderr)[-2000:]
    _serves(caddy, ["a", "b", "c"])
