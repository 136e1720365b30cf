"""Starts the example FastAPI app under uvicorn (from the tests' virtual
environment) and derives the Caddy config that fronts it from the
example's own Caddyfile. Standard library only: the pytest process runs
under Debian's python, the app in build/venv."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import helpers as h

EXAMPLE_DIR = h.ROOT / "examples" / "fastapi"
CADDYFILE = EXAMPLE_DIR / "Caddyfile"
E2E_DIR = h.ROOT / "tests" / "e2e"


def caddy_text(ports: dict[str, int], openapi: Path | None = None) -> str:
    """examples/fastapi/Caddyfile on the given ports (same roles as
    Caddyfile.example: site, upstream = the app, internal, admin), every
    site bound to loopback, its `openapi` pointing at the example's
    openapi.json (the copy runs from another directory) or at openapi."""
    text = h.remap_ports(CADDYFILE.read_text(), ports)
    line = "openapi openapi.json"
    assert line in text, "%s has no %r line" % (CADDYFILE, line)
    text = text.replace(line, "openapi %s" % (openapi or EXAMPLE_DIR / "openapi.json"))
    return h.add_global_options(text, ["default_bind 127.0.0.1"])


def caddy_probes(caddy: h.Caddy) -> dict:
    """Readiness without touching the app, so the app's own counters hold
    the test traffic and nothing else (the site listener starts with the
    others)."""
    return {
        "internal": lambda: h.request("GET", caddy.internal_metrics_url, timeout=2).status == 200,
        "admin": lambda: caddy.admin("GET", "/config/", timeout=2).status == 200,
    }


@dataclass
class App:
    """uvicorn running tests/e2e/fastapi_parity/legacy_app.py: the example
    app with its old in-app instrumentation, on a fresh SQLite database."""

    port: int
    workers: int
    workdir: Path
    proc: subprocess.Popen | None = None
    _log: object = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / "app.log"

    @property
    def metrics_url(self) -> str:
        return "http://127.0.0.1:%d/metrics" % self.port

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM to uvicorn (it stops its workers), SIGKILL to the whole
        process group after timeout."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        code = self.proc.returncode
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None
        return code


LEGACY_APP = "fastapi_parity.legacy_app:app"


def start_app(python: Path, port: int, workers: int, workdir: Path, timeout: float = 60.0,
              module: str = LEGACY_APP) -> App:
    """Runs uvicorn on module (the example app with its old in-app metrics,
    unless told otherwise) with `workers` processes and waits until each
    one has finished start-up (its lifespan created and seeded the
    database). Raises with the log tail if it does not come up."""
    if workdir.exists():
        for p in workdir.iterdir():
            p.unlink()
    workdir.mkdir(parents=True, exist_ok=True)
    app = App(port=port, workers=workers, workdir=workdir)
    env = dict(os.environ)
    env.update(PYTHONPATH="%s:%s" % (EXAMPLE_DIR, E2E_DIR), PYTHONDONTWRITEBYTECODE="1",
               DATABASE_URL="sqlite:///%s" % (workdir / "app.db"))
    app._log = open(app.log_path, "wb")
    app.proc = subprocess.Popen(
        [str(python), "-m", "uvicorn", module, "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(workers), "--no-access-log"],
        cwd=str(workdir), env=env, stdout=app._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        started = len(re.findall(r"Application startup complete", app.log_text()))
        if started >= workers and h.port_in_use(port):
            return app
        if not app.alive() or time.monotonic() > deadline:
            code = app.stop()
            raise AssertionError("uvicorn (%d workers) did not start: %d of them ready, exit %s; log %s:\n%s" % (
                workers, started, code, app.log_path, "\n".join(app.log_text().splitlines()[-40:])))
        time.sleep(0.2)
