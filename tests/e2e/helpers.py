"""Shared end-to-end helpers: start build/caddy on any Caddyfile text, talk
HTTP (library and raw sockets), scrape /metrics in both formats, parse and
check expositions.

Other suites (Prometheus/Grafana, benchmarks, hardening) import this module,
so nothing here is specific to one test: ports, bind addresses and configs are
parameters. Only the standard library and Debian's prometheus_client are used
because the suite runs under /usr/bin/python3 on a machine without PyPI
extras.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Overridable so the same harness can drive another binary or config (e.g. a
# stock Caddy baseline for benchmarks).
CADDY = Path(os.environ.get("E2E_CADDY", ROOT / "build" / "caddy"))
EXAMPLE = Path(os.environ.get("E2E_CADDYFILE", ROOT / "Caddyfile.example"))
OUT = ROOT / "tests" / "out" / "e2e"
CHECK_EXPOSITION = ROOT / "tests" / "tools" / "check_exposition.py"
SYS_PYTHON = "/usr/bin/python3"

# The ports Caddyfile.example uses; keys name their role so callers can remap
# them (e.g. to run a second instance next to the first).
DEFAULT_PORTS = {"site": 8080, "upstream": 8081, "internal": 9091, "admin": 2019}
ROUTES = ("home", "api", "contact", "other")
STANDARD_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")

OPENMETRICS_ACCEPT = "application/openmetrics-text; version=1.0.0; charset=utf-8"
HTTP_FAMILIES = (
    "http_requests_total",
    "http_request_duration_seconds",
    "http_response_size_bytes_total",
    "http_requests_in_progress",
)
CONTACT_LABELS = {"source": "website", "service": "fastapi"}


# ------------------------------------------------------------------ config


def remap_ports(text: str, ports: dict[str, int]) -> str:
    """Replaces each default port number of Caddyfile.example (written as
    ':8080' etc.) by the one chosen in ports."""
    for role, new in ports.items():
        old = DEFAULT_PORTS[role]
        if old != new:
            text = re.sub(r"(?<=:)%d\b" % old, str(new), text)
    return text


def add_global_options(text: str, lines: list[str]) -> str:
    """Adds option lines to the global options block (creating one if the
    file has none). The global block is the first block of the file when it
    has no keys, i.e. a line that is just '{'."""
    m = re.search(r"\A((?:[ \t]*(?:#[^\n]*)?\n)*)[ \t]*\{[ \t]*\n", text)
    body = "".join("\t%s\n" % line for line in lines)
    if m:
        return text[: m.end()] + body + text[m.end():]
    return "{\n" + body + "}\n\n" + text


def example_text(ports: dict[str, int] | None = None, bind: str | None = "127.0.0.1") -> str:
    """Caddyfile.example, with ports remapped and, unless bind is None, a
    `default_bind` so every site without its own `bind` listens only on the
    given addresses (space separated). Sites that set `bind` keep it, which is
    what the netns test relies on to expose a listener that forgot it."""
    text = EXAMPLE.read_text()
    if ports:
        text = remap_ports(text, ports)
    if bind:
        text = add_global_options(text, ["default_bind " + bind])
    return text


def suite_ports() -> dict[str, int]:
    """The example's own ports, or with E2E_FREE_PORTS=1 a free port per
    role, so the suite can run beside another instance (say a colleague's
    run) on one machine."""
    if os.environ.get("E2E_FREE_PORTS") == "1":
        return {role: free_port() for role in DEFAULT_PORTS}
    return dict(DEFAULT_PORTS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_http_server(handler):
    """A threaded stdlib HTTP server (handler: a BaseHTTPRequestHandler
    class) on a free 127.0.0.1 port, serving from a daemon thread. Its port
    is server.server_address[1]; stop it with stop_http_server."""
    from http.server import ThreadingHTTPServer
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop_http_server(server) -> None:
    server.shutdown()
    server.server_close()


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        try:
            s.connect((host, port))
            return True
        except OSError:
            return False


def who_listens(port: int) -> str:
    try:
        out = subprocess.run(["ss", "-Hltnp", "sport = :%d" % port], capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return out or "(ss shows nothing)"


# ------------------------------------------------------------------ HTTP


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-cased names, last value wins
    body: bytes

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


def request(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 10.0, source: str | None = None) -> Response:
    """One request on a fresh connection (Connection: close), so each request
    is either answered or failed as a whole and never replayed on a stale
    keep-alive socket. `url` is http://host:port/path; source binds the
    client side address."""
    m = re.match(r"http://([^/:]+):(\d+)(/.*)?$", url)
    if not m:
        raise ValueError("unsupported url %r" % url)
    host, port, path = m.group(1), int(m.group(2)), m.group(3) or "/"
    conn = http.client.HTTPConnection(host, port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        hdrs = {"Connection": "close"}
        hdrs.update(headers or {})
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def raw_request(host: str, port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Sends bytes as they are and reads until the server closes. Used for
    requests http.client refuses to build (bad bytes, odd Host headers)."""
    chunks = []
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks)


def raw_status(response: bytes) -> int | None:
    m = re.match(rb"HTTP/1\.[01] (\d{3})", response)
    return int(m.group(1)) if m else None


def serve_http(handler_class):
    """A ThreadingHTTPServer on a free loopback port, serving handler_class
    from a daemon thread; call .shutdown() and .server_close() to stop it."""
    from http.server import ThreadingHTTPServer
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def wait_until(predicate, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except Exception:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


# ------------------------------------------------------------------ Caddy


class CaddyError(AssertionError):
    pass


class LogFile:
    """log_text() and log_tail() for a process whose output goes to
    self.log_path (Caddy here, Prometheus in promserver.py)."""

    log_path: Path

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])


@dataclass
class Caddy(LogFile):
    """A running build/caddy. Files live in OUT/<name>/: Caddyfile, caddy.log
    (stdout+stderr), and the HOME/XDG dirs so autosave and storage never touch
    the user's."""

    name: str
    ports: dict[str, int]
    workdir: Path
    config_path: Path
    log_path: Path
    proc: subprocess.Popen | None = None
    exit_code: int | None = None
    started_at: float = 0.0  # wall-clock time of the spawn
    _log_file: object = field(default=None, repr=False)

    # -- addresses
    def url(self, role: str, path: str = "/") -> str:
        return "http://127.0.0.1:%d%s" % (self.ports[role], path)

    @property
    def site(self) -> str:
        return self.url("site", "")

    @property
    def metrics_url(self) -> str:
        return self.url("site", "/metrics")

    @property
    def internal_metrics_url(self) -> str:
        return self.url("internal", "/metrics")

    def admin(self, method: str, path: str, body: bytes | None = None,
              headers: dict | None = None, timeout: float = 30.0) -> Response:
        # The admin API checks Host against its listen address (localhost:PORT).
        hdrs = {"Host": "localhost:%d" % self.ports["admin"]}
        hdrs.update(headers or {})
        return request(method, self.url("admin", path), body=body, headers=hdrs, timeout=timeout)

    # -- process
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(HOME=str(self.workdir / "home"), XDG_CONFIG_HOME=str(self.workdir / "config"),
                   XDG_DATA_HOME=str(self.workdir / "data"))
        return env

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """Graceful stop (SIGTERM), SIGKILL after timeout. Returns the exit
        code; the log stays in log_path."""
        if self.proc is None:
            return self.exit_code
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.exit_code = self.proc.returncode
        self.proc = None
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        return self.exit_code

    def crash_lines(self) -> list[str]:
        """Lines of the log that betray a crash or a Go runtime fault."""
        pat = re.compile(r"^(panic:|fatal error:|SIGSEGV|SIGABRT|runtime error:)|goroutine \d+ \[running\]")
        return [ln for ln in self.log_text().splitlines() if pat.search(ln)]

    # -- config
    def write_config(self, text: str) -> None:
        # surrogateescape lets a test put raw non-UTF-8 bytes into a config.
        self.config_path.write_bytes(text.encode("utf-8", "surrogateescape"))

    def reload_cli(self, text: str | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """`caddy reload --force` from the config file (rewritten first if text
        is given)."""
        if text is not None:
            self.write_config(text)
        return subprocess.run([str(CADDY), "reload", "--config", str(self.config_path),
                               "--adapter", "caddyfile", "--force"],
                              capture_output=True, text=True, timeout=timeout, env=self.env())

    def reload_admin(self, config_json: bytes) -> Response:
        """POST /load; must-revalidate forces a reload even if unchanged."""
        return self.admin("POST", "/load", body=config_json,
                          headers={"Content-Type": "application/json",
                                   "Cache-Control": "must-revalidate"})


def adapt(config_path: Path, env: dict | None = None) -> bytes:
    """The JSON Caddy adapts a Caddyfile into (for POST /load)."""
    p = subprocess.run([str(CADDY), "adapt", "--config", str(config_path), "--adapter", "caddyfile"],
                       capture_output=True, timeout=60, env=env)
    if p.returncode != 0:
        raise CaddyError("caddy adapt %s failed (rc=%d):\n%s" % (config_path, p.returncode,
                                                                 p.stderr.decode(errors="replace")))
    return p.stdout


def validate(config_path: Path, timeout: float = 60.0, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(CADDY), "validate", "--config", str(config_path), "--adapter", "caddyfile"],
                          capture_output=True, text=True, timeout=timeout, env=env)


def log_messages(output: str) -> str:
    """Caddy logs JSON lines, so a quote in a message arrives escaped. Returns
    the output with each JSON line replaced by its msg and error fields, as
    a person reading the log would see them."""
    out = []
    for line in output.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        if isinstance(rec, dict):
            out.append(" ".join(str(rec[k]) for k in ("msg", "error") if k in rec))
        else:
            out.append(line)
    return "\n".join(out)


def default_probes(caddy: Caddy) -> dict[str, callable]:
    """Readiness checks for a config shaped like Caddyfile.example: every
    listener answers HTTP."""
    return {
        "site": lambda: request("GET", caddy.url("site", "/"), timeout=2).status > 0,
        "upstream": lambda: request("GET", caddy.url("upstream", "/"), timeout=2).status > 0,
        "internal": lambda: request("GET", caddy.internal_metrics_url, timeout=2).status == 200,
        "admin": lambda: caddy.admin("GET", "/config/", timeout=2).status == 200,
    }


def start_caddy(text: str, name: str, ports: dict[str, int] | None = None, probes=default_probes,
                timeout: float = 30.0) -> Caddy:
    """Writes text to OUT/<name>/Caddyfile and runs `build/caddy run` on it.
    Fails at once, naming the owner, if a port is already taken; waits until
    every probe answers; on any failure stops Caddy and raises with the log
    tail. ports only tells the helper where to look: remap the text yourself
    (remap_ports / example_text)."""
    ports = dict(ports or DEFAULT_PORTS)
    if not CADDY.exists():
        raise CaddyError("%s does not exist: run ./xcaddy.sh build first" % CADDY)
    busy = [(role, p) for role, p in ports.items() if port_in_use(p)]
    if busy:
        raise CaddyError("cannot start Caddy %r: port(s) already in use: %s" % (
            name, "; ".join("%s %d by %s" % (r, p, who_listens(p)) for r, p in busy)))
    workdir = OUT / name
    if workdir.exists():
        shutil.rmtree(workdir)
    for d in ("home", "config", "data"):
        (workdir / d).mkdir(parents=True)
    caddy = Caddy(name=name, ports=ports, workdir=workdir, config_path=workdir / "Caddyfile",
                  log_path=workdir / "caddy.log")
    caddy.write_config(text)
    caddy._log_file = open(caddy.log_path, "wb")
    caddy.started_at = time.time()
    caddy.proc = subprocess.Popen([str(CADDY), "run", "--config", str(caddy.config_path),
                                   "--adapter", "caddyfile"],
                                  stdout=caddy._log_file, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=caddy.env(), cwd=str(workdir))
    pending = dict(probes(caddy))
    deadline = time.monotonic() + timeout
    while pending:
        if not caddy.alive():
            code = caddy.stop()
            raise CaddyError("Caddy %r exited with code %s during start-up; log %s:\n%s" % (
                name, code, caddy.log_path, caddy.log_tail()))
        for role, probe in list(pending.items()):
            try:
                if probe():
                    del pending[role]
            except Exception:
                pass
        if pending and time.monotonic() > deadline:
            caddy.stop()
            raise CaddyError("Caddy %r: %s not answering after %.0f s; log %s:\n%s" % (
                name, ", ".join("%s :%s" % (r, ports.get(r)) for r in pending), timeout,
                caddy.log_path, caddy.log_tail()))
        if pending:
            time.sleep(0.1)
    return caddy


# ------------------------------------------------------------------ scraping


@dataclass
class Scrape:
    url: str
    fmt: str  # "text" or "openmetrics"
    status: int
    content_type: str
    content_encoding: str | None
    raw: bytes  # as received (maybe gzip)
    body: bytes  # decompressed
    _families: list | None = field(default=None, repr=False)

    @property
    def text(self) -> str:
        # Both formats are UTF-8 by definition: a decode error is a finding.
        return self.body.decode("utf-8")

    def families(self):
        if self._families is None:
            self._families = parse_openmetrics(self.text) if self.fmt == "openmetrics" else parse_text(self.text)
        return self._families

    def samples(self) -> list[tuple[str, tuple, float]]:
        return flat_samples(self.families())

    def family_names(self) -> set[str]:
        return {f.name for f in self.families()}

    def values(self) -> dict[tuple[str, tuple], float]:
        """{(sample name, sorted label items): value}; raises on a duplicate
        series so no caller silently keeps the last of two."""
        out: dict = {}
        dups = duplicate_series(self.samples())
        if dups:
            raise AssertionError("duplicate series in scrape of %s: %s" % (self.url, dups[:10]))
        for name, labels, value in self.samples():
            out[(name, labels)] = value
        return out


def scrape(url: str, fmt: str = "text", gzip_ok: bool = False, timeout: float = 15.0,
           headers: dict | None = None) -> Scrape:
    hdrs = {}
    if fmt == "openmetrics":
        hdrs["Accept"] = OPENMETRICS_ACCEPT
    elif fmt != "text":
        raise ValueError(fmt)
    if gzip_ok:
        hdrs["Accept-Encoding"] = "gzip"
    hdrs.update(headers or {})
    r = request("GET", url, headers=hdrs, timeout=timeout)
    enc = r.header("content-encoding")
    body = gzip.decompress(r.body) if enc == "gzip" else r.body
    return Scrape(url, fmt, r.status, r.header("content-type", ""), enc, r.body, body)


def parse_text(text: str):
    from prometheus_client.parser import text_string_to_metric_families
    return list(text_string_to_metric_families(text))


def parse_openmetrics(text: str):
    """Strict OpenMetrics 1.0 parser (raises ValueError on any violation,
    including a missing '# EOF')."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
    return list(text_string_to_metric_families(text))


def flat_samples(families) -> list[tuple[str, tuple, float]]:
    return [(s.name, tuple(sorted(s.labels.items())), s.value) for f in families for s in f.samples]


def duplicate_series(samples) -> list[tuple[str, tuple]]:
    c = Counter((name, labels) for name, labels, _ in samples)
    return [k for k, n in c.items() if n > 1]


def series(values: dict, name: str, **match) -> dict[tuple, float]:
    """Series of one sample name whose labels include match, keyed by their
    full sorted label tuple."""
    return {labels: v for (n, labels), v in values.items()
            if n == name and all(dict(labels).get(k) == str(val) for k, val in match.items())}


def delta(before: dict, after: dict, names) -> dict[tuple[str, tuple], float]:
    """Non-zero differences after - before for the given sample names (series
    absent before count from 0)."""
    names = set(names)
    out = {}
    for key, v in after.items():
        if key[0] in names:
            d = v - before.get(key, 0.0)
            if d != 0:
                out[key] = d
    for key, v in before.items():
        if key[0] in names and key not in after:
            out[key] = -v  # a series vanished: report it as a drop
    return out


def settled_scrape(url: str, done, timeout: float = 5.0, fmt: str = "text") -> Scrape:
    """Scrapes until done(values) holds or timeout, and returns the last
    scrape. A client can hold its answer a moment before the server has left
    the handler and recorded the request; exact assertions must not race
    that. done should test a lower bound (e.g. total reached), so an
    overshoot still shows up in the caller's exact comparison."""
    deadline = time.monotonic() + timeout
    while True:
        s = scrape(url, fmt=fmt)
        try:
            if done(s.values()):
                return s
        except AssertionError:
            return s  # duplicates: let the caller's assertions report them
        if time.monotonic() > deadline:
            return s
        time.sleep(0.02)


def in_flight_zero(values: dict) -> bool:
    return all(v == 0 for v in series(values, "http_requests_in_progress").values())


def labels_key(**labels) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


# ------------------------------------------------------------------ checkers


def histogram_problems(samples) -> list[str]:
    """Per histogram series (from one scrape): cumulative buckets never
    decrease with le, +Inf exists and equals _count, _sum is not negative.
    The exposition promises each series is read once, so this holds even
    for a scrape taken under load."""
    buckets: dict = {}
    counts: dict = {}
    sums: dict = {}
    for name, labels, value in samples:
        d = dict(labels)
        if name.endswith("_bucket") and "le" in d:
            le = d.pop("le")
            buckets.setdefault((name[:-7], tuple(sorted(d.items()))), []).append((float(le), value))
        elif name.endswith("_count"):
            counts[(name[:-6], labels)] = value
        elif name.endswith("_sum"):
            sums[(name[:-4], labels)] = value
    problems = []
    for key, bs in buckets.items():
        bs.sort()
        if any(b[1] < a[1] for a, b in zip(bs, bs[1:])):
            problems.append("%s: buckets decrease: %s" % (key, bs))
        if not bs or bs[-1][0] != float("inf"):
            problems.append("%s: no +Inf bucket" % (key,))
        elif counts.get(key) != bs[-1][1]:
            problems.append("%s: +Inf bucket %s != _count %s" % (key, bs[-1][1], counts.get(key)))
        if sums.get(key, 0) < 0:
            problems.append("%s: negative _sum %s" % (key, sums.get(key)))
    return problems


def _save(name: str, data: bytes) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    p = OUT / name
    p.write_bytes(data)
    return p


def promtool_check(body: bytes, save_as: str = "promtool-input.txt") -> tuple[int, str]:
    """`promtool check metrics` (syntax and lint) on a text-format body."""
    _save(save_as, body)
    p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=60)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def check_exposition(fmt: str, body: bytes, save_as: str) -> tuple[int, str]:
    """The project's own exposition checker. Missing checker = failure: the
    suite must not pass without it."""
    path = _save(save_as, body)
    if not CHECK_EXPOSITION.exists():
        return 127, "%s is missing (it is part of the test suite and must exist)" % CHECK_EXPOSITION
    p = subprocess.run([SYS_PYTHON, str(CHECK_EXPOSITION), "--format", fmt, str(path)],
                       capture_output=True, timeout=120)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def exposition_problems(text_scrape: Scrape, om_scrape: Scrape, tag: str) -> list[str]:
    """Every independent check on a text and an OpenMetrics scrape; returns
    the list of problems (empty when all pass). Bodies are saved under OUT
    with tag in their name for post-mortems."""
    problems = []
    for s in (text_scrape, om_scrape):
        if s.status != 200:
            problems.append("%s %s: HTTP %d" % (s.fmt, s.url, s.status))
    if not text_scrape.content_type.startswith("text/plain") or "version=0.0.4" not in text_scrape.content_type:
        problems.append("text Content-Type is %r" % text_scrape.content_type)
    if not om_scrape.content_type.startswith("application/openmetrics-text"):
        problems.append("OpenMetrics Content-Type is %r" % om_scrape.content_type)
    rc, out = promtool_check(text_scrape.body, "%s.prom" % tag)
    if rc != 0:
        problems.append("promtool check metrics rc=%d: %s" % (rc, out.strip()[:2000]))
    for s in (text_scrape, om_scrape):
        try:
            s.families()
        except Exception as e:  # parser errors are ValueError/UnicodeDecodeError/...
            problems.append("%s parser rejects the body: %s: %s" % (s.fmt, type(e).__name__, e))
            continue
        dups = duplicate_series(s.samples())
        if dups:
            problems.append("%s: duplicate series %s" % (s.fmt, dups[:5]))
        problems += ["%s: %s" % (s.fmt, p) for p in histogram_problems(s.samples())[:10]]
    if not om_scrape.body.endswith(b"# EOF\n"):
        problems.append("OpenMetrics body does not end with '# EOF\\n': ...%r" % om_scrape.body[-40:])
    for s, ext in ((text_scrape, "prom"), (om_scrape, "om")):
        fmt = "openmetrics" if s.fmt == "openmetrics" else "text"
        rc, out = check_exposition(fmt, s.body, "%s.check.%s" % (tag, ext))
        if rc != 0:
            problems.append("check_exposition.py --format %s rc=%d: %s" % (fmt, rc, out.strip()[:2000]))
    return problems


# ------------------------------------------------------------------ load


class Load(threading.Thread):
    """Bounded background load: sends the given (method, path, body) plan
    round-robin, one request at a time on fresh connections, until stop() or
    max_requests or max_seconds. Counts every answer by (method, path,
    status) and every failure with its error, so callers can account for
    each request."""

    def __init__(self, base_url: str, plan, max_requests: int = 20000, max_seconds: float = 120.0,
                 timeout: float = 10.0):
        super().__init__(daemon=True)
        self.base_url, self.plan = base_url, list(plan)
        self.max_requests, self.max_seconds, self.timeout = max_requests, max_seconds, timeout
        self.answered: Counter = Counter()  # (method, path, status) -> n
        self.body_bytes: Counter = Counter()  # (method, path, status) -> bytes
        self.failures: list[tuple[str, str, str]] = []
        self.failure_times: list[float] = []  # time.monotonic() of each failure, in step with failures
        self.sent = 0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(self.timeout + 5)

    def run(self) -> None:
        t_end = time.monotonic() + self.max_seconds
        i = 0
        while not self._stop_event.is_set() and self.sent < self.max_requests and time.monotonic() < t_end:
            method, path, body = self.plan[i % len(self.plan)]
            i += 1
            self.sent += 1
            try:
                r = request(method, self.base_url + path, body=body, timeout=self.timeout,
                            headers={"Content-Type": "application/x-www-form-urlencoded"} if body else None)
                self.answered[(method, path, r.status)] += 1
                self.body_bytes[(method, path, r.status)] += len(r.body)
            except Exception as e:
                self.failures.append((method, path, "%s: %s" % (type(e).__name__, e)))
                self.failure_times.append(time.monotonic())


def json_dumps(obj) -> str:
    return json.dumps(obj, indent=1, sort_keys=True, default=str)
