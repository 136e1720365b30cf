"""Tools the stress scenarios share: a raw keep-alive + pipelining HTTP
client that accounts for every request, /proc readings of the Caddy
process, a health prober, looping scrapers, a misbehaving upstream, and the
one-line figures each scenario publishes.

Everything here talks to 127.0.0.1 only and is bounded in count and time.
The end-to-end harness (tests/e2e/helpers.py) does the rest: starting
Caddy, scraping, the strict parsers and checkers.
"""

from __future__ import annotations

import errno
import os
import random
import re
import selectors
import socket
import statistics
import struct
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

import helpers as h  # noqa: E402
import pytest  # noqa: E402

# STRESS_SCALE multiplies request counts, reload counts and load durations.
# 1 is the bounded run of tests/run.sh; see RESULTS.md for the sizes a
# scale gives.
SCALE = float(os.environ.get("STRESS_SCALE", "1"))
OUT = h.ROOT / "tests" / "out" / "stress"
FIGURES = OUT / "figures.txt"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1 << 20


def scaled(n: float, minimum: int = 1) -> int:
    return max(minimum, int(n * SCALE))


# ------------------------------------------------------------------ figures

_published: list[str] = []


def publish(scenario: str, **figures) -> str:
    """Records a scenario's one line of figures (k=v, in the order given)
    in OUT/figures.txt and for the end-of-run summary."""
    def fmt(v):
        if isinstance(v, float):
            return "%.3g" % v if abs(v) < 1000 else "%.0f" % v
        return str(v)
    line = "%s: %s" % (scenario, " ".join("%s=%s" % (k, fmt(v)) for k, v in figures.items()))
    OUT.mkdir(parents=True, exist_ok=True)
    with open(FIGURES, "a") as f:
        f.write(line + "\n")
    _published.append(line)
    return line


def published() -> list[str]:
    return list(_published)


# ------------------------------------------------------------------ Caddy


def internal_probes(c: h.Caddy):
    """Readiness without touching a counted site: only the metrics listener
    and the admin API."""
    return {"internal": lambda: h.request("GET", c.internal_metrics_url, timeout=2).status == 200,
            "admin": lambda: c.admin("GET", "/config/", timeout=2).status == 200}


def example_probes(c: h.Caddy):
    """Readiness for Caddyfile.example without counting a request on the
    site: the upstream and internal listeners have no route_metrics."""
    return {"upstream": lambda: h.request("GET", c.url("upstream", "/"), timeout=2).status == 200,
            **internal_probes(c)}


def start(request, text: str, ports: dict, name: str, probes=internal_probes) -> h.Caddy:
    """Starts Caddy and registers its teardown: stop it, then fail if it
    had died or its log shows a panic."""
    try:
        caddy = h.start_caddy(text, name="stress-" + name, ports=ports, probes=probes)
    except h.CaddyError as e:
        pytest.fail(str(e), pytrace=False)

    def finish():
        alive = caddy.alive()
        code = caddy.stop()
        assert alive, "Caddy %r died during the tests (exit %s); log %s:\n%s" % (
            caddy.name, code, caddy.log_path, caddy.log_tail())
        panics = [ln for ln in caddy.log_text().splitlines() if "panic" in ln.lower()]
        assert not panics, "Caddy %r log mentions a panic:\n%s" % (caddy.name, "\n".join(panics[:10]))

    request.addfinalizer(finish)
    return caddy


def free_ports(*roles) -> dict[str, int]:
    return {r: h.free_port() for r in roles}


# ------------------------------------------------------------------ /proc


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def rss_bytes(pid: int) -> int:
    return int(proc_status(pid)["VmRSS"].split()[0]) * 1024


def fd_count(pid: int) -> int:
    return len(os.listdir("/proc/%d/fd" % pid))


def threads(pid: int) -> int:
    return int(proc_status(pid)["Threads"])


def cpu_seconds(pid: int) -> float:
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def assert_healthy(caddy: h.Caddy) -> None:
    """Alive, answering its admin API, and no panic of any kind in its log
    (including panics net/http recovered, which crash_lines does not
    match)."""
    assert caddy.alive(), "Caddy %r died (log %s):\n%s" % (caddy.name, caddy.log_path, caddy.log_tail())
    panics = [ln for ln in caddy.log_text().splitlines() if "panic" in ln.lower()]
    assert not panics, "Caddy %r log mentions a panic:\n%s" % (caddy.name, "\n".join(panics[:10]))
    assert not caddy.crash_lines(), caddy.crash_lines()[:10]


def percentile(values, p: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


# ------------------------------------------------------------------ raw client


@dataclass
class Answer:
    tag: object  # what the request generator attached (e.g. expected series)
    status: int
    body_len: int


class _Conn:
    __slots__ = ("sock", "out", "pending", "buf", "closed", "sent_on")

    def __init__(self, sock):
        self.sock = sock
        self.out = bytearray()
        self.pending: deque = deque()  # (tag, head_request) per request awaiting its answer
        self.buf = bytearray()
        self.closed = False
        self.sent_on = 0


_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})")
_CLEN = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.I)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[ \t]*[^\r]*chunked", re.I)
_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.I)


def _parse_one(buf: bytearray, head: bool):
    """One complete response at the start of buf: (consumed, status,
    body_len, close) or None if more bytes are needed. Raises ValueError on
    a malformed response."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > 1 << 20:
            raise ValueError("no end of headers in 1 MiB: %r" % bytes(buf[:200]))
        return None
    hdr = bytes(buf[:end + 2])
    m = _STATUS.match(hdr)
    if not m:
        raise ValueError("not an HTTP/1.x response: %r" % hdr[:200])
    status = int(m.group(1))
    close = bool(_CLOSE.search(hdr))
    pos = end + 4
    if head or status in (204, 304) or 100 <= status < 200:
        if 100 <= status < 200 and status != 101:
            return pos, None, 0, False  # interim response; the final one follows
        return pos, status, 0, close
    if _CHUNKED.search(hdr):
        body = 0
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
            if size == 0:
                trailer_end = buf.find(b"\r\n\r\n", line_end)
                if buf[line_end:line_end + 4] == b"\r\n\r\n":
                    return line_end + 4, status, body, close
                if trailer_end < 0:
                    return None
                return trailer_end + 4, status, body, close
            if len(buf) < line_end + 2 + size + 2:
                return None
            body += size
            pos = line_end + 2 + size + 2
    m = _CLEN.search(hdr)
    if m:
        n = int(m.group(1))
        if len(buf) < pos + n:
            return None
        return pos + n, status, n, close
    # No length: the body runs to the end of the connection.
    return -1, status, 0, True


class RawLoad:
    """Sends `total` requests from make_request(i) -> (bytes, tag, is_head)
    over `connections` keep-alive connections with up to `depth` requests
    pipelined on each, and reads every answer. All single-threaded
    (selectors), so it is cheap enough to flood a two-core Caddy from Python.

    Accounting: answers (tag, status) per request; `unanswered` holds the
    tags of requests whose connection closed before their answer (each may
    or may not have reached the server); `errors` the reasons."""

    def __init__(self, host: str, port: int, make_request, total: int, connections: int = 8,
                 depth: int = 16, timeout: float = 60.0, max_seconds: float = 600.0):
        self.host, self.port = host, port
        self.make_request, self.total = make_request, total
        self.connections, self.depth = connections, depth
        self.timeout, self.max_seconds = timeout, max_seconds
        self.answers: Counter = Counter()  # (tag, status) -> n
        self.body_bytes: Counter = Counter()  # (tag, status) -> bytes
        self.unanswered: list = []
        self.errors: list[str] = []
        self.sent = 0
        self.answered = 0
        self.reconnects = 0
        self.elapsed = 0.0

    def _connect(self, sel):
        s = socket.create_connection((self.host, self.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        c = _Conn(s)
        sel.register(s, selectors.EVENT_READ, c)
        return c

    def _fill(self, c):
        while self.sent < self.total and len(c.pending) < self.depth:
            data, tag, is_head = self.make_request(self.sent)
            self.sent += 1
            c.out += data
            c.pending.append((tag, is_head))

    def _close(self, sel, c, reason: str | None):
        if c.closed:
            return
        c.closed = True
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        if c.pending:
            self.unanswered += [t for t, _ in c.pending]
            if reason:
                self.errors.append("%s (%d requests unanswered)" % (reason, len(c.pending)))
            c.pending.clear()

    def run(self) -> "RawLoad":
        sel = selectors.DefaultSelector()
        conns = []
        t0 = time.monotonic()
        deadline = t0 + self.max_seconds
        last_progress = t0
        try:
            for _ in range(self.connections):
                c = self._connect(sel)
                conns.append(c)
                self._fill(c)
            while True:
                live = [c for c in conns if not c.closed]
                if self.sent >= self.total and not any(c.pending for c in live):
                    break
                now = time.monotonic()
                if now > deadline:
                    self.errors.append("max_seconds %.0f reached" % self.max_seconds)
                    break
                if now - last_progress > self.timeout:
                    self.errors.append("no answer for %.0f s" % self.timeout)
                    break
                for c in live:
                    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0)
                    sel.modify(c.sock, events, c)
                for key, mask in sel.select(timeout=1.0):
                    c = key.data
                    if c.closed:
                        continue
                    if mask & selectors.EVENT_WRITE and c.out:
                        try:
                            n = c.sock.send(c.out)
                            del c.out[:n]
                        except BlockingIOError:
                            pass
                        except OSError as e:
                            self._close(sel, c, "send: %s" % e)
                            continue
                    if mask & selectors.EVENT_READ:
                        try:
                            data = c.sock.recv(262144)
                        except BlockingIOError:
                            continue
                        except OSError as e:
                            self._close(sel, c, "recv: %s" % e)
                            continue
                        if data:
                            c.buf += data
                            last_progress = time.monotonic()
                        self._drain(sel, c, eof=not data)
                        if not data:
                            self._close(sel, c, "server closed the connection")
                # Replace connections the server closed while work remains.
                for i, c in enumerate(conns):
                    if c.closed and self.sent < self.total:
                        self.reconnects += 1
                        conns[i] = self._connect(sel)
                        self._fill(conns[i])
        finally:
            for c in conns:
                self._close(sel, c, "client stopped")
            sel.close()
            self.elapsed = time.monotonic() - t0
        return self

    def _drain(self, sel, c, eof: bool):
        while c.pending and c.buf:
            tag, is_head = c.pending[0]
            try:
                r = _parse_one(c.buf, is_head)
            except ValueError as e:
                self._close(sel, c, "bad response: %s" % e)
                return
            if r is None:
                break
            consumed, status, blen, close = r
            if consumed == -1:  # body until EOF
                if not eof:
                    break
                consumed = len(c.buf)
                blen = consumed - (c.buf.find(b"\r\n\r\n") + 4)
            del c.buf[:consumed]
            if status is None:
                continue  # 1xx interim
            c.pending.popleft()
            self.answers[(tag, status)] += 1
            self.body_bytes[(tag, status)] += blen
            self.answered += 1
            if close:
                self._close(sel, c, None if not c.pending else "server answered Connection: close")
                return
        if not c.closed and self.sent < self.total and len(c.pending) <= self.depth // 2:
            self._fill(c)


def token(rng: random.Random, lo: int = 4, hi: int = 12) -> str:
    """A random RFC 9110 token that is none of the standard methods."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~"
    while True:
        t = "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))
        if t not in h.STANDARD_METHODS and t != "PRI":
            return t


def method_label(method: str) -> str:
    return method if method in h.STANDARD_METHODS else "OTHER"


# ------------------------------------------------------------------ probes


class HealthProbe(threading.Thread):
    """GETs a URL every `interval` on a fresh connection; records every
    failure and the longest outage (first failure to the next success)."""

    def __init__(self, url: str, interval: float = 0.02, timeout: float = 2.0, ok=(200,)):
        super().__init__(daemon=True)
        self.url, self.interval, self.timeout, self.ok = url, interval, timeout, ok
        self.probes = 0
        self.failures: list[str] = []
        self.longest_outage = 0.0
        self._down_since: float | None = None
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            t = time.monotonic()
            try:
                good = h.request("GET", self.url, timeout=self.timeout).status in self.ok
                why = "bad status"
            except Exception as e:
                good, why = False, "%s: %s" % (type(e).__name__, e)
            self.probes += 1
            now = time.monotonic()
            if good:
                if self._down_since is not None:
                    self.longest_outage = max(self.longest_outage, now - self._down_since)
                    self._down_since = None
            else:
                self.failures.append(why)
                if self._down_since is None:
                    self._down_since = t
            self._stop_event.wait(max(0.0, self.interval - (now - t)))

    def stop(self):
        self._stop_event.set()
        self.join(self.timeout + 5)
        if self._down_since is not None:  # still down at the end
            self.longest_outage = max(self.longest_outage, time.monotonic() - self._down_since)


class Scraper(threading.Thread):
    """Scrapes a /metrics URL in a loop (fresh connection each time) and
    keeps each body with its latency; the bodies are checked after the
    load so parsing does not steal CPU from it or skew the latencies."""

    def __init__(self, url: str, fmt: str = "text", pause: float = 0.0, keep_every: int = 1):
        super().__init__(daemon=True)
        self.url, self.fmt, self.pause, self.keep_every = url, fmt, pause, keep_every
        self.latencies: list[float] = []
        self.bodies: list[bytes] = []
        self.errors: list[str] = []
        self._stop_event = threading.Event()

    def run(self):
        n = 0
        while not self._stop_event.is_set():
            t = time.monotonic()
            try:
                s = h.scrape(self.url, fmt=self.fmt, timeout=30)
                self.latencies.append(time.monotonic() - t)
                if s.status != 200:
                    self.errors.append("HTTP %d" % s.status)
                elif n % self.keep_every == 0:
                    self.bodies.append(s.body)
                n += 1
            except Exception as e:
                self.errors.append("%s: %s" % (type(e).__name__, e))
            if self.pause:
                self._stop_event.wait(self.pause)

    def stop(self):
        self._stop_event.set()
        self.join(40)


def scrape_problems(body: bytes, fmt: str) -> list[str]:
    """Self-consistency of one scrape: parses strictly, no duplicate series,
    histograms cumulative with +Inf == _count."""
    try:
        text = body.decode("utf-8")
        fams = h.parse_openmetrics(text) if fmt == "openmetrics" else h.parse_text(text)
    except Exception as e:
        return ["unparsable %s scrape: %s: %s" % (fmt, type(e).__name__, e)]
    samples = h.flat_samples(fams)
    problems = ["duplicate series %s" % (d,) for d in h.duplicate_series(samples)[:5]]
    problems += h.histogram_problems(samples)[:5]
    if fmt == "openmetrics" and not body.endswith(b"# EOF\n"):
        problems.append("no # EOF")
    return problems


# ------------------------------------------------------------------ faulty upstream


class FaultyUpstream(threading.Thread):
    """A tiny HTTP/1.1 server on raw sockets whose answer depends on the
    path: /ok 200, /sleep waits `sleep` seconds before answering (past the
    proxy's timeout), /rst resets the connection (SO_LINGER 0), /close
    closes without a byte, /partial sends headers promising 1000 bytes and
    closes after 10. One thread per connection, all daemon, bounded by
    the listen backlog and the sleeps."""

    def __init__(self, sleep: float = 2.0):
        super().__init__(daemon=True)
        self.sleep = sleep
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.seen: Counter = Counter()
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            conn.settimeout(10)
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    d = conn.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode("latin-1")
                kind = path.split("?")[0].rsplit("/", 1)[-1]
                with self._lock:
                    self.seen[kind] += 1
                if kind == "sleep":
                    self._stop_event.wait(self.sleep)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nlate\n")
                elif kind == "rst":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                elif kind == "close":
                    return
                elif kind == "partial":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
                    return
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self):
        self._stop_event.set()
        self.sock.close()
        self.join(5)


def local_port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError as e:
            return e.errno != errno.EADDRINUSE


def summary_ms(values) -> str:
    if not values:
        return "n/a"
    return "p50=%.1fms p99=%.1fms max=%.1fms" % (statistics.median(values) * 1e3,
                                                percentile(values, 99) * 1e3, max(values) * 1e3)


@dataclass
class Tally:
    """Counts per key with a short sample of examples, for figures."""
    counts: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)

    def add(self, key, example=None):
        self.counts[key] += 1
        if example is not None and key not in self.examples:
            self.examples[key] = example
