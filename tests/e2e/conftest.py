"""Fixtures for the end-to-end suite. Each test module gets its own Caddy so
modules stay independent (a reload or a hostile request in one cannot
colour the counts of another); start-up takes about a second."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402
import promserver  # noqa: E402


@pytest.fixture(scope="session")
def caddy_binary() -> Path:
    if not helpers.CADDY.exists():
        pytest.fail("%s does not exist: run ./xcaddy.sh build (tests/e2e.sh does)" % helpers.CADDY,
                    pytrace=False)
    if not helpers.EXAMPLE.exists():
        pytest.fail("%s does not exist" % helpers.EXAMPLE, pytrace=False)
    return helpers.CADDY


@pytest.fixture(scope="session")
def venv_python() -> Path:
    """The python of the tests' virtual environment (build/venv, pinned
    packages from tests/requirements.txt), made or reused by tests/venv.sh.
    The suites themselves run under Debian's python; apps and clients that
    need those packages run as subprocesses of this one."""
    p = subprocess.run([str(helpers.ROOT / "tests" / "venv.sh")], capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        pytest.fail("tests/venv.sh failed (rc=%d):\n%s" % (p.returncode, p.stderr[-4000:]), pytrace=False)
    return Path(p.stdout.strip().splitlines()[-1])


def run_caddy(request, text: str, ports=None, name: str | None = None, probes=helpers.default_probes):
    """Starts Caddy for a fixture and registers its teardown: stop, then fail
    the teardown if the log shows a crash (a panic after the last assertion
    would otherwise go unnoticed)."""
    name = name or request.module.__name__.rsplit(".", 1)[-1]
    error = None
    try:
        caddy = helpers.start_caddy(text, name=name, ports=ports, probes=probes)
    except helpers.CaddyError as e:
        error = str(e)
    if error:  # outside the except block, so the report is not a chained traceback
        pytest.fail(error, pytrace=False)

    def finish():
        alive = caddy.alive()
        code = caddy.stop()
        crashes = caddy.crash_lines()
        assert alive, "Caddy %r died during the tests (exit %s); log %s:\n%s" % (
            name, code, caddy.log_path, caddy.log_tail())
        assert not crashes, "Caddy %r log shows a crash (%s):\n%s" % (name, caddy.log_path, "\n".join(crashes[:20]))

    request.addfinalizer(finish)
    return caddy


@pytest.fixture(scope="module")
def example_caddy(request, caddy_binary) -> helpers.Caddy:
    """Caddyfile.example on its own ports (8080, 8081, 9091, admin 2019;
    free ones with E2E_FREE_PORTS=1), every site bound to 127.0.0.1 only."""
    ports = helpers.suite_ports()
    return run_caddy(request, helpers.example_text(ports), ports=ports)


@pytest.fixture(scope="module", params=promserver.VERSION_IDS, ids=lambda v: "prometheus%s" % v)
def prom_version(request) -> promserver.PromVersion:
    """Each Prometheus version the project runs against (Debian's 2.42 and
    the 3.x tests/tools/prometheus3.sh builds): a test or fixture taking it
    runs once per version, all of one version's tests before the next.
    A missing binary fails the test and says how to get it."""
    error = None
    try:
        return promserver.resolve(request.param)
    except promserver.PrometheusMissing as e:
        error = str(e)
    pytest.fail(error, pytrace=False)
