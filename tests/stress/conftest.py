"""Fixtures for the stress suite: every Caddy runs on free ports (so a
colleague's run on the default ports is never disturbed), is stopped at
teardown, and must be alive with no panic in its log when it stops."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stresslib as sl  # noqa: E402  (puts tests/e2e on sys.path)
import helpers as h  # noqa: E402


def pytest_sessionstart(session):
    # One run's figures only: results.py turns this file into RESULTS.md.
    sl.OUT.mkdir(parents=True, exist_ok=True)
    sl.FIGURES.write_text("")


def pytest_terminal_summary(terminalreporter):
    lines = sl.published()
    if lines:
        terminalreporter.section("stress figures (STRESS_SCALE=%g)" % sl.SCALE)
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def caddy_binary() -> Path:
    if not h.CADDY.exists():
        pytest.fail("%s does not exist: run ./xcaddy.sh build (tests/stress.sh does)" % h.CADDY, pytrace=False)
    return h.CADDY


@pytest.fixture(scope="module")
def example_caddy(request, caddy_binary) -> h.Caddy:
    """Caddyfile.example on free ports, every site on 127.0.0.1."""
    ports = sl.free_ports(*h.DEFAULT_PORTS)
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    return sl.start(request, h.example_text(ports), ports, name, probes=sl.example_probes)
