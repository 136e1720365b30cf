"""Real Prometheus for the end-to-end tests, in each version the project
runs against: Debian's 2.42 (/usr/bin/prometheus, tests/setup.sh installs
it) and Prometheus 3, which tests/tools/prometheus3.sh builds from the Go
module proxy into build/tools/prometheus3/ (tests/e2e.sh runs it first).

`resolve(version_id)` gives a PromVersion: the two binaries, the version
they report and the command-line flags that differ between 2 and 3 (agent
mode, storage path). `Prometheus` runs one server or agent on a free port
and wraps the HTTP API calls the tests use. conftest.py turns the versions
into the `prom_version` fixture, so a test that takes it runs once per
version.

What changed between 2 and 3 that these tests meet (Prometheus 3.0
migration guide, docs/migration.md in prometheus/prometheus):
- agent mode is `--agent` in 3 (`--enable-feature=agent` in 2); the
  remote-write receiver is `--web.enable-remote-write-receiver` in both;
- range selectors are left-open in 3: a sample exactly on a window's left
  edge is out, which changes rate() at a change of slope (the rule unit
  tests keep their window edges off such points);
- a scrape whose Content-Type is missing or unknown fails in 3 (Caddy's
  module sends text/plain 0.0.4 or OpenMetrics, so nothing to set);
- `le` and `quantile` values are normalised to floats ("1" -> "1.0") when
  scraped by 3; the module already writes "1.0", so both versions store the
  same series (test_fleet.py checks it);
- configuration fields new since 2.42 are refused by 2.42's strict parser:
  `adapt_config` removes the ones deploy/ uses (rule_query_offset, 2.53).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import helpers

PROM3_DIR = helpers.ROOT / "build" / "tools" / "prometheus3"
BINARIES = {
    "2": (Path("/usr/bin/prometheus"), Path("/usr/bin/promtool")),
    "3": (PROM3_DIR / "prometheus", PROM3_DIR / "promtool"),
}
HOW_TO_GET = {
    "2": "install Debian's prometheus package (tests/setup.sh does)",
    "3": "build it with tests/tools/prometheus3.sh (tests/e2e.sh does, about 5 minutes the first time)",
}
VERSION_IDS = tuple(BINARIES)

# Global configuration fields deploy/ uses that older servers refuse, with
# the first version that knows them.
NEWER_GLOBAL_FIELDS = {"rule_query_offset": (2, 53)}


class PrometheusMissing(AssertionError):
    pass


@dataclass(frozen=True)
class PromVersion:
    id: str  # "2" or "3": the fixture parameter
    version: str  # as the binary reports it, e.g. "2.42.0+ds" or "3.16.0"
    prometheus: Path
    promtool: Path
    help_text: str = field(default="", repr=False, compare=False)

    @property
    def numbers(self) -> tuple[int, int]:
        m = re.match(r"(\d+)\.(\d+)", self.version)
        return int(m.group(1)), int(m.group(2))

    @property
    def major(self) -> int:
        return self.numbers[0]

    def at_least(self, version: tuple[int, int]) -> bool:
        return self.numbers >= version

    def agent_flags(self) -> list[str]:
        return ["--agent"] if self.major >= 3 else ["--enable-feature=agent"]

    def receiver_flags(self) -> list[str]:
        return ["--web.enable-remote-write-receiver"]

    def storage_flag(self, agent: bool, path: Path) -> str:
        return "--storage.%s.path=%s" % ("agent" if agent else "tsdb", path)

    def check_flags(self, flags: list[str]) -> None:
        """Fails if this version's --help-long does not list a flag (or, for
        --enable-feature=X, the feature X): the tests must not pass flags a
        version ignores or refuses."""
        for flag in flags:
            name, _, value = flag.partition("=")
            if name == "--enable-feature":
                m = re.search(r"Valid options:(.*?)(?:See|\n\s*--)", self.help_text, re.S)
                known = re.findall(r"[\w-]+", m.group(1)) if m else []
                if value not in known:
                    raise AssertionError("Prometheus %s has no feature %r (known: %s)" % (self.version, value, known))
            elif not re.search(r"%s\b" % re.escape(name).replace(r"\-\-", r"--(?:\[no-\])?"), self.help_text):
                raise AssertionError("Prometheus %s --help-long does not list %s" % (self.version, name))

    def adapt_config(self, cfg: dict) -> dict:
        """The config with global fields this version does not know removed
        (deploy/prometheus-central.yml says to delete them on old servers)."""
        out = json.loads(json.dumps(cfg))
        for key, since in NEWER_GLOBAL_FIELDS.items():
            if not self.at_least(since):
                out.get("global", {}).pop(key, None)
        return out

    def run_promtool(self, *args: str, timeout: float = 300) -> tuple[int, str]:
        p = subprocess.run([str(self.promtool), *args], capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout + p.stderr


def _reported_version(binary: Path) -> str:
    p = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    m = re.search(r"version (\d+\.\d+\.\d+\S*)", p.stdout + p.stderr)
    if p.returncode != 0 or not m:
        raise PrometheusMissing("%s --version failed (rc=%d): %s" % (binary, p.returncode, (p.stdout + p.stderr)[:500]))
    return m.group(1)


_resolved: dict[str, PromVersion] = {}


def resolve(version_id: str) -> PromVersion:
    """The binaries of one version id ("2" or "3"), checked: both exist, run,
    and report a version of that major number."""
    if version_id in _resolved:
        return _resolved[version_id]
    prometheus, promtool = BINARIES[version_id]
    for b in (prometheus, promtool):
        if not b.exists():
            raise PrometheusMissing("%s is missing: %s" % (b, HOW_TO_GET[version_id]))
    version = _reported_version(prometheus)
    tool_version = _reported_version(promtool)
    if not version.startswith(version_id + ".") or tool_version != version:
        raise PrometheusMissing("expected Prometheus %s.x: %s reports %s, %s reports %s" % (
            version_id, prometheus, version, promtool, tool_version))
    help_text = subprocess.run([str(prometheus), "--help-long"], capture_output=True, text=True,
                               timeout=30)
    v = PromVersion(version_id, version, prometheus, promtool, help_text.stdout + help_text.stderr)
    _resolved[version_id] = v
    return v


class Prometheus(helpers.LogFile):
    """One Prometheus process (server or agent) on 127.0.0.1:port, its data
    and log in workdir. restart() keeps the port and the data directory, as
    an operator's restart would."""

    def __init__(self, version: PromVersion, workdir: Path, config: dict, agent: bool = False,
                 receiver: bool = False, port: int | None = None, extra_flags=(), name: str = "prometheus",
                 ready_timeout: float = 60):
        self.version, self.workdir, self.agent, self.name = version, workdir, agent, name
        self.port = port or helpers.free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / ("%s.yml" % name)
        self.write_config(config)
        self.data = workdir / ("%s-data" % name)
        self.log_path = workdir / ("%s.log" % name)
        self.flags = [
            "--config.file=%s" % self.config_path,
            version.storage_flag(agent, self.data),
            "--web.listen-address=127.0.0.1:%d" % self.port,
            "--log.level=info",
        ]
        mode_flags = (version.agent_flags() if agent else []) + (version.receiver_flags() if receiver else [])
        version.check_flags(mode_flags + list(extra_flags))
        self.flags += mode_flags + list(extra_flags)
        self.ready_timeout = ready_timeout
        self.proc = None
        self._log = None
        self.starts: list[float] = []  # wall-clock time each start became ready
        self.stops: list[float] = []  # wall-clock time each stop was asked for
        self.start()

    def write_config(self, config: dict) -> None:
        self.config = config
        self.config_path.write_text(yaml.safe_dump(self.version.adapt_config(config), sort_keys=False))

    def start(self) -> None:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(self.version.prometheus), *self.flags], stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(self.workdir))
        if not helpers.wait_until(lambda: self.get("/-/ready", raw=True) == 200, self.ready_timeout, 0.05):
            self.stop()
            raise AssertionError("%s (Prometheus %s) not ready after %.0f s; log:\n%s" % (
                self.name, self.version.version, self.ready_timeout, self.log_tail()))
        self.starts.append(time.time())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout: float = 60) -> int | None:
        """Graceful stop by default (an agent flushes its remote-write queue
        first, up to --storage.remote.flush-deadline)."""
        code = None
        if self.proc is not None:
            self.stops.append(time.time())
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            code = self.proc.returncode
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None
        return code

    def restart(self) -> None:
        self.stop()
        self.start()

    # ---- HTTP API
    def get(self, path, params=None, raw=False, timeout: float = 10):
        url = self.base + path + ("?" + urllib.parse.urlencode(params, doseq=True) if params else "")
        with urllib.request.urlopen(url, timeout=timeout) as r:
            if raw:
                return r.status
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr, at=None):
        params = {"query": expr}
        if at is not None:
            params["time"] = "%.3f" % at
        return self.get("/api/v1/query", params)

    def native(self, expr, at=None) -> dict[tuple, dict]:
        """An instant query whose samples are native histograms: labels ->
        {"count", "sum", "buckets": [(lower, upper, count), ...]}."""
        data = self.query(expr, at)
        assert data["resultType"] == "vector", data
        out = {}
        for s in data["result"]:
            hist = s.get("histogram")
            assert hist is not None, "not a native histogram: %r" % s
            h = hist[1]
            out[tuple(sorted(s["metric"].items()))] = {
                "count": float(h["count"]), "sum": float(h["sum"]),
                "buckets": [(float(b[1]), float(b[2]), float(b[3])) for b in h.get("buckets", [])]}
        return out

    def vector(self, expr, at=None) -> dict[tuple, float]:
        data = self.query(expr, at)
        assert data["resultType"] == "vector", data
        return {tuple(sorted(s["metric"].items())): float(s["value"][1]) for s in data["result"]}

    def matrix(self, expr, at=None) -> dict[tuple, list[tuple[float, float]]]:
        """Raw samples of a range selector (expr ending in [range])."""
        data = self.query(expr, at)
        assert data["resultType"] == "matrix", data
        return {tuple(sorted(s["metric"].items())): [(float(t), float(v)) for t, v in s["values"]]
                for s in data["result"]}

    def query_range(self, expr, start, end, step):
        return self.get("/api/v1/query_range",
                        {"query": expr, "start": "%.3f" % start, "end": "%.3f" % end, "step": step})

    def label_values(self, selector, label):
        return self.get("/api/v1/label/%s/values" % label, {"match[]": selector})

    def targets(self):
        return self.get("/api/v1/targets")["activeTargets"]

    def own_metrics(self) -> dict:
        """This process's own /metrics, parsed ({(name, labels): value})."""
        return helpers.scrape(self.base + "/metrics").values()
