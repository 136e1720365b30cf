"""Native histograms as a real Prometheus sees them. build/caddy (on free
ports) proxies /slow to a Python upstream that sleeps as long as each
request asks, and route_metrics records with its defaults (native
histograms on, schema 3, 160 buckets). A Prometheus with native histograms
enabled scrapes Caddy twice every second: job "caddy" negotiates protobuf
(native and classic buckets), job "caddy_classic" asks for ?format=text
(classic buckets, the series an old scrape config sees).

A fixed list of N sleeps is sent (8 at a time). Then:
  - histogram_count of the native request and upstream latency histograms
    equals N;
  - Prometheus' buckets are those of schema 3 (each 2^(1/8) times the one
    before);
  - histogram_quantile(0.99) of the native histogram is within the schema's
    bound of the true p99. The bound: the estimate lies in the bucket
    (l, u] that holds the p99 t Caddy measured (Prometheus interpolates
    inside the bucket the rank falls in), u = b*l, b = 2^(2^-schema), so
    t/b <= l < estimate <= u < b*t, i.e. the relative error is below
    b - 1 = 9.05 % (above, 1 - 1/b below). t itself is known to lie
    between the p99 of the sleeps and the p99 the client measured (every
    request took at least its sleep inside Caddy and at most what the
    client saw, and order statistics keep that order), so the test asserts
    p99(sleeps)/b < estimate <= b * p99(client).
  - the classic default buckets' estimate from the same requests is
    printed beside it (the list puts the p99 between the 0.25 and 0.5
    buckets, where linear interpolation is coarse).

It runs once per Prometheus version (the `prom_version` fixture);
native_switch() says how each turns native histograms on: 2.42 by the
feature flag, 3.x by `scrape_native_histograms: true` in the configuration
(the flag is gone from 3.16's list of features)."""

from __future__ import annotations

import math
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

import pytest

import helpers as h
from conftest import run_caddy
from test_inflight import CONFIG  # route_metrics; /slow* proxied under route "slow"; metrics on "internal"
import promserver

SCHEMA = 3
B = 2 ** (2 ** -SCHEMA)
N = 200

def native_switch(version: promserver.PromVersion):
    """(command-line flags, extra global configuration) that turn native
    histogram ingestion on in this version."""
    if version.major >= 3:
        return [], {"scrape_native_histograms": True}
    return ["--enable-feature=native-histograms"], {}


def sleeps() -> list[float]:
    """N sleeps in seconds: 196 log-uniform from 5 to 120 ms, 4 from 310 to
    370 ms, so the p99 (the 198th smallest) is the second of those."""
    body = [0.005 * math.exp(math.log(24) * i / 195) for i in range(196)]
    tail = [0.31, 0.33, 0.35, 0.37]
    out = body + tail
    # A fixed interleaving, so the slow ones do not all run together.
    return [out[(i * 37) % N] for i in range(N)]


class SleepyUpstream:
    """GET /slow?s=<seconds>: sleeps that long, then answers."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                time.sleep(min(float(q.get("s", ["0"])[0]), 2.0))
                body = b"slept\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = h.serve_http(Handler)
        self.port = self.server.server_address[1]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def nearest_rank(values, q):
    s = sorted(values)
    return s[math.ceil(q * len(s)) - 1]


@pytest.fixture(scope="module")
def observed(request, prom_version, caddy_binary, tmp_path_factory):
    flags, extra_global = native_switch(prom_version)
    up = SleepyUpstream()
    ports = {"site": h.free_port(), "internal": h.free_port(), "admin": h.free_port()}

    def probes(c):
        return {"internal": lambda: h.request("GET", c.internal_metrics_url, timeout=2).status == 200,
                "admin": lambda: c.admin("GET", "/config/", timeout=2).status == 200}
    caddy = run_caddy(request, CONFIG % dict(ports, upstream=up.port), ports=ports,
                      name="test_prometheus_native", probes=probes)
    target = ["127.0.0.1:%d" % ports["internal"]]
    cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s", **extra_global},
           "scrape_configs": [
               {"job_name": "caddy", "static_configs": [{"targets": target}]},
               {"job_name": "caddy_classic", "params": {"format": ["text"]},
                "static_configs": [{"targets": target}]}]}
    prom = promserver.Prometheus(prom_version, tmp_path_factory.mktemp("prometheus-native%s" % prom_version.id), cfg,
                                 extra_flags=flags)
    try:
        plan = sleeps()
        client = [0.0] * N
        lock = threading.Lock()
        nxt = [0]

        def worker():
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= N:
                    return
                t0 = time.monotonic()
                r = h.request("GET", caddy.url("site", "/slow?s=%r" % plan[i]), timeout=20)
                client[i] = time.monotonic() - t0
                assert r.status == 200, r.status
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        sel = 'http_request_duration_seconds{job="caddy",endpoint="slow"}'
        ok = h.wait_until(lambda: prom.vector("histogram_count(%s)" % sel) and
                          list(prom.vector("histogram_count(%s)" % sel).values())[0] >= N, 30, 0.25)
        assert ok, "Prometheus never saw %d requests in the native histogram; log:\n%s" % (N, prom.log_tail())
        classic = 'http_request_duration_seconds_count{job="caddy_classic",endpoint="slow"}'
        assert h.wait_until(lambda: sum(prom.vector(classic).values()) >= N, 30, 0.25), prom.log_tail()
        yield {"prom": prom, "sleeps": plan, "client": client, "binary": "Prometheus " + prom_version.version}
    finally:
        prom.stop()
        h.OUT.mkdir(parents=True, exist_ok=True)
        (h.OUT / ("prometheus%s-native.log" % prom_version.id)).write_text(prom.log_path.read_text(errors="replace"))
        up.stop()


def test_scrapes_succeed(observed):
    up = observed["prom"].vector("up")
    assert sorted((dict(k)["job"], v) for k, v in up.items()) == [("caddy", 1.0), ("caddy_classic", 1.0)], up


def test_histogram_count_is_requests_sent(observed):
    p = observed["prom"]
    for fam in ("http_request_duration_seconds", "http_upstream_duration_seconds"):
        got = p.vector('histogram_count(%s{job="caddy",endpoint="slow"})' % fam)
        assert list(got.values()) == [float(N)], (fam, got)


def test_buckets_are_schema_3(observed):
    hs = observed["prom"].native('http_request_duration_seconds{job="caddy",endpoint="slow"}')
    (h0,) = hs.values()
    ratios = {round(u / lo, 12) for lo, u, _ in h0["buckets"] if lo > 0}
    assert ratios == {round(B, 12)}, ratios
    assert sum(c for _, _, c in h0["buckets"]) == N


def test_p99_within_schema_bound(observed):
    p = observed["prom"]
    true_sleep = nearest_rank(observed["sleeps"], 0.99)
    true_client = nearest_rank(observed["client"], 0.99)
    est = list(p.vector('histogram_quantile(0.99, http_request_duration_seconds{job="caddy",endpoint="slow"})')
               .values())[0]
    classic = list(p.vector('histogram_quantile(0.99, sum by (le) '
                            '(http_request_duration_seconds_bucket{job="caddy_classic",endpoint="slow"}))')
                   .values())[0]
    line = ("p99 of %d requests (%s): sleeps %.4f s, client-measured %.4f s; "
            "native schema 3 estimate %.4f s (%+.1f%% vs sleeps); classic default buckets %.4f s (%+.1f%%); "
            "bound: %.4f < native <= %.4f" % (
                N, observed["binary"], true_sleep, true_client, est, 100 * (est / true_sleep - 1),
                classic, 100 * (classic / true_sleep - 1), true_sleep / B, true_client * B))
    print("\n" + line)  # shown with pytest -s; kept in tests/out/e2e either way
    h.OUT.mkdir(parents=True, exist_ok=True)
    with open(h.OUT / "prometheus-native-p99.txt", "a") as f:
        f.write(line + "\n")
    assert true_sleep / B < est <= true_client * B, (est, true_sleep, true_client)
