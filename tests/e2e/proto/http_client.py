"""HTTP/2 and HTTP/3 clients for tests/e2e/test_protocols.py, run with the
tests' virtual environment (pinned httpx[http2] and aioquic).

    http_client.py h2 URL CAFILE N   N concurrent GETs of URL over ONE HTTP/2
                                     connection (TLS, verified against CAFILE)
    http_client.py h3 URL CAFILE N   N concurrent GETs of URL over one QUIC
                                     connection, one HTTP/3 stream each

Prints one JSON line: {"statuses": {...}, "bodies": {...}, "versions":
{...}, "connections": n}.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from urllib.parse import urlsplit


async def run_h2(url: str, cafile: str, n: int) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(http2=True, verify=cafile, limits=limits, timeout=30) as client:
        responses = await asyncio.gather(*(client.get(url) for _ in range(n)))
        # httpcore's pool: all N streams went over the connection(s) listed here.
        connections = len(client._transport._pool.connections)
    return {"statuses": Counter(str(r.status_code) for r in responses),
            "bodies": Counter(r.text for r in responses),
            "versions": Counter(r.http_version for r in responses),
            "connections": connections}


async def run_h3(url: str, cafile: str, n: int) -> dict:
    from aioquic.asyncio.client import connect
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration

    class Client(QuicConnectionProtocol):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.http = H3Connection(self._quic)
            self.responses: dict[int, dict] = {}
            self.waiters: dict[int, asyncio.Future] = {}

        def quic_event_received(self, event):
            for ev in self.http.handle_event(event):
                if not isinstance(ev, (HeadersReceived, DataReceived)):
                    continue
                r = self.responses.setdefault(ev.stream_id, {"headers": {}, "body": b""})
                if isinstance(ev, HeadersReceived):
                    r["headers"].update({k.decode(): v.decode() for k, v in ev.headers})
                else:
                    r["body"] += ev.data
                if ev.stream_ended and ev.stream_id in self.waiters:
                    self.waiters.pop(ev.stream_id).set_result(r)

        async def get(self, authority: str, path: str) -> dict:
            sid = self._quic.get_next_available_stream_id()
            self.http.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"),
                                         (b":authority", authority.encode()), (b":path", path.encode())],
                                   end_stream=True)
            fut = asyncio.get_running_loop().create_future()
            self.waiters[sid] = fut
            self.transmit()
            return await asyncio.wait_for(fut, 30)

    u = urlsplit(url)
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    config.load_verify_locations(cafile)
    config.server_name = u.hostname
    async with connect(u.hostname, u.port, configuration=config, create_protocol=Client) as client:
        responses = await asyncio.gather(*(client.get(u.netloc, u.path or "/") for _ in range(n)))
        alpn = client._quic.tls.alpn_negotiated
    return {"statuses": Counter(r["headers"].get(":status") for r in responses),
            "bodies": Counter(r["body"].decode() for r in responses),
            "versions": Counter(alpn for _ in responses),
            "connections": 1}


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] not in ("h2", "h3"):
        sys.exit(__doc__)
    mode, url, cafile, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    result = asyncio.run((run_h2 if mode == "h2" else run_h3)(url, cafile, n))
    print(json.dumps(result), flush=True)
