"""Mixed traffic for the example app, with every answer tallied: the truth
the parity suite holds Caddy's and the app's own metrics to.

One round touches every route with every outcome it has: 2xx, 401, 404,
405, 422, 307 (FastAPI's trailing-slash redirect), the 500 of an unhandled
exception (item 13), unknown paths, percent-encoded and differently-cased
paths. Clients send rounds on one keep-alive connection or on a fresh
connection per request, alone or several at once. Standard library only.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

UPLOAD = "{upload}"  # in a path: the id of the client's latest upload


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # as sent: percent-encoding kept
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()


def _form(**fields: str) -> tuple[bytes, tuple]:
    from urllib.parse import urlencode
    return urlencode(fields).encode(), (("Content-Type", "application/x-www-form-urlencoded"),)


def _multipart(name: str, filename: str, content: bytes) -> tuple[bytes, tuple]:
    boundary = "parity-boundary-7f3a"
    body = (b"--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
            b"Content-Type: text/plain\r\n\r\n%s\r\n--%s--\r\n") % (
        boundary.encode(), name.encode(), filename.encode(), content, boundary.encode())
    return body, (("Content-Type", "multipart/form-data; boundary=%s" % boundary),)


def mixed_round() -> list[Call]:
    contact, contact_hdr = _form(name="Ada", email="ada@example.com", message="Hello")
    contact_bad, _ = _form(name="Ada", email="ada@example.com")  # no message: 422
    upload, upload_hdr = _multipart("file", "reports/parity.txt", b"x" * 300)
    no_file, no_file_hdr = _multipart("other", "x.txt", b"x")  # no "file" field: 422
    ada = (("Authorization", "Bearer token-ada"),)
    return [
        Call("GET", "/health"),
        Call("GET", "/health"),
        Call("HEAD", "/health"),
        Call("POST", "/health"),                                   # 405
        Call("POST", "/v1/contact", contact, contact_hdr),         # 201: insert
        Call("POST", "/v1/contact", contact_bad, contact_hdr),     # 422
        Call("GET", "/v1/items/1"),
        Call("GET", "/v1/items/5"),
        Call("GET", "/v1/items/12"),
        Call("GET", "/v1/items/999"),                              # 404
        Call("GET", "/v1/items/abc"),                              # 422
        Call("GET", "/v1/items/13"),                               # 500: TypeError in the handler
        Call("PUT", "/v1/items/1"),                                # 405
        Call("GET", "/v1/items"),                                  # 404: no such route
        Call("POST", "/v1/documents", upload, upload_hdr),         # 201: insert
        Call("POST", "/v1/documents", no_file, no_file_hdr),       # 422
        Call("GET", "/v1/files/reports/parity.txt"),               # 200 once uploaded
        Call("DELETE", "/v1/documents/" + UPLOAD),                 # 204: delete
        Call("DELETE", "/v1/documents/" + UPLOAD),                 # 404: delete of nothing
        Call("GET", "/v1/search?q=report"),
        Call("GET", "/v1/search?q=Item%201"),
        Call("GET", "/v1/search"),                                 # 422
        Call("GET", "/v1/search/?q=x"),                            # 307 to /v1/search
        Call("GET", "/v1/customers/me", headers=ada),              # 200: select + update
        Call("GET", "/v1/customers/me", headers=(("Authorization", "Bearer wrong"),)),  # 401
        Call("GET", "/v1/customers/me"),                           # 401: no credentials
        Call("GET", "/v1/customers/2"),
        Call("GET", "/v1/customers/999"),                          # 404
        Call("GET", "/v1/customers/x%2Fy"),                        # 404: "/" inside a segment
        Call("GET", "/v1/files/reports/2026/q3.txt"),              # {file_path:path}
        Call("GET", "/v1/files/notes/meeting%201.md"),
        Call("GET", "/v1/files/missing.pdf"),                      # 404
        Call("GET", "/nope"),                                      # unknown paths
        Call("GET", "/.env"),
        Call("GET", "/v1/unknown"),
        Call("GET", "/HEALTH"),                                    # case matters: the app and Caddy: no route
    ]


@dataclass
class Tally:
    """Every answer by (method, path as sent, status), every failure, and
    each request ID: the one sent (or None) and the one Caddy answered with."""

    answered: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    request_ids: list = field(default_factory=list)  # (sent or None, received)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def total(self) -> int:
        return sum(self.answered.values())


class Client:
    """Sends calls one at a time, on one keep-alive connection or on a new
    connection per request (Connection: close)."""

    def __init__(self, host: str, port: int, keep_alive: bool, tag: str, tally: Tally, timeout: float = 30.0):
        self.host, self.port, self.keep_alive, self.tag = host, port, keep_alive, tag
        self.tally, self.timeout = tally, timeout
        self.conn: http.client.HTTPConnection | None = None
        self.upload_id = "0"
        self.sent = 0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def send(self, call: Call) -> None:
        path = call.path.replace(UPLOAD, self.upload_id)
        headers = dict(call.headers)
        self.sent += 1
        # Every other request brings its own ID; Caddy makes one for the rest.
        sent_id = "%s-%d" % (self.tag, self.sent) if self.sent % 2 else None
        if sent_id:
            headers["X-Request-ID"] = sent_id
        if not self.keep_alive:
            headers["Connection"] = "close"
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.conn.request(call.method, path, body=call.body, headers=headers)
            resp = self.conn.getresponse()
            body = resp.read()
            received_id = resp.getheader("X-Request-ID")
        except (OSError, http.client.HTTPException) as e:
            self.close()
            with self.tally._lock:
                self.tally.failures.append((self.tag, call.method, path, "%s: %s" % (type(e).__name__, e)))
            return
        finally:
            if not self.keep_alive:
                self.close()
        if call.method == "POST" and path == "/v1/documents" and resp.status == 201:
            self.upload_id = str(json.loads(body)["id"])
        with self.tally._lock:
            self.tally.answered[(call.method, path, resp.status)] += 1
            self.tally.request_ids.append((sent_id, received_id))

    def run(self, calls: list[Call], rounds: int, deadline: float) -> None:
        try:
            for _ in range(rounds):
                for call in calls:
                    if time.monotonic() > deadline:
                        with self.tally._lock:
                            self.tally.failures.append((self.tag, "-", "-", "time budget exhausted"))
                        return
                    self.send(call)
        finally:
            self.close()


def run_mixed(host: str, port: int, tally: Tally, keep_alive_rounds: int, fresh_rounds: int,
              concurrent_clients: int, concurrent_rounds: int, max_seconds: float) -> None:
    """One keep-alive client, then one fresh-connection client, then
    concurrent_clients at once (half keep-alive, half fresh), each sending
    its rounds of mixed_round(). Bounded by max_seconds in all."""
    deadline = time.monotonic() + max_seconds
    calls = mixed_round()
    Client(host, port, True, "ka", tally).run(calls, keep_alive_rounds, deadline)
    Client(host, port, False, "fresh", tally).run(calls, fresh_rounds, deadline)
    threads = [threading.Thread(target=Client(host, port, i % 2 == 0, "c%d" % i, tally).run,
                                args=(calls, concurrent_rounds, deadline), daemon=True)
               for i in range(concurrent_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic() + 30))


def run_repeated(host: str, port: int, tally: Tally, call: Call, count: int, max_seconds: float) -> None:
    """count times the same call on one keep-alive connection."""
    Client(host, port, True, "repeat", tally).run([call], count, time.monotonic() + max_seconds)
