"""WebSocket peers for tests/e2e/test_upgrade_stream.py, run with the tests'
virtual environment (the pinned `websockets` package).

    websocket_peer.py serve            echo server on a free 127.0.0.1 port;
                                       prints "port N", serves until killed
    websocket_peer.py client URL HOLD  connects, exchanges one message, prints
                                       "open", holds the connection HOLD
                                       seconds (a message every 0.5 s), closes
                                       and prints one JSON line of what it saw
"""

from __future__ import annotations

import json
import sys
import time

from websockets.sync.client import connect
from websockets.sync.server import serve


def echo(ws):
    for message in ws:
        ws.send(message)


def run_server() -> None:
    with serve(echo, "127.0.0.1", 0) as server:
        print("port %d" % server.socket.getsockname()[1], flush=True)
        server.serve_forever()


def run_client(url: str, hold: float) -> None:
    t0 = time.monotonic()
    echoed = 0
    with connect(url, open_timeout=10, close_timeout=5) as ws:
        opened = time.monotonic() - t0
        ws.send("hello")
        echoed += ws.recv(timeout=10) == "hello"
        print("open", flush=True)
        end = time.monotonic() + hold
        while time.monotonic() < end:
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))
            ws.send("ping")
            echoed += ws.recv(timeout=10) == "ping"
        held = time.monotonic() - t0
    print(json.dumps({"handshake_s": opened, "held_s": held, "echoed": echoed,
                      "closed_s": time.monotonic() - t0}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        run_server()
    elif sys.argv[1:2] == ["client"] and len(sys.argv) == 4:
        run_client(sys.argv[2], float(sys.argv[3]))
    else:
        sys.exit(__doc__)
