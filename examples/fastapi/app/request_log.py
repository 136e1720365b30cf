"""Request-ID logging. Caddy's `route_metrics { request_id }` gives every
request an X-Request-ID (the client's, or a fresh UUID) and shows it as the
exemplar of the latency bucket the request fell in; this module puts the
same ID on every log line the app writes while handling the request, and
ends each request with one access line:

    2026-11-22 12:00:00,123 INFO app.access request_id=5f0c... GET /v1/items/3 200 1.8ms

so a slow bucket in Grafana leads to the request's lines here. Run uvicorn
with --no-access-log: this line replaces its access log, which has no ID.

An unhandled exception is logged here too, traceback and request ID, and
answered with a plain 500. Left to Starlette, the 500 is sent and the
exception re-raised to uvicorn, which then closes the connection: a request
Caddy has just sent on that keep-alive connection is lost (502 for a POST,
or retried by Caddy for a GET, so that the app runs it twice).
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id: ContextVar[str] = ContextVar("request_id", default="-")
access_log = logging.getLogger("app.access")
error_log = logging.getLogger("app.error")


def _loggable(value: str, limit: int = 128) -> str:
    """The value as it is when it cannot pass for anything else in a log
    line, else quoted with escapes (and cut at limit): Caddy passes a
    client's X-Request-ID on whatever it contains."""
    if value and len(value) <= limit and value.isascii() and value.isprintable() and " " not in value:
        return value
    return repr(value[:limit])


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """Sends the app's loggers ("app", "app.*") to stderr, each line with
    the request's ID."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s request_id=%(request_id)s %(message)s"))
    logger = logging.getLogger("app")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


class RequestLogMiddleware:
    """Sets the request ID for the request's log lines, writes its access
    line, and answers unhandled exceptions (an app's own
    exception_handler(Exception) is then never reached: move its logic
    here)."""

    def __init__(self, app: ASGIApp, header: str = "x-request-id") -> None:
        self.app = app
        self.header = header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = [v for k, v in scope["headers"] if k == self.header]
        token = request_id.set(_loggable(sent[0].decode("latin-1")) if sent else "-")
        status = None
        start = time.perf_counter()

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        except Exception:
            error_log.exception("unhandled exception in %s %s", scope["method"], _path(scope))
            if status is not None:
                raise  # the response is under way: only closing the connection ends it
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send_logged)
        finally:
            access_log.info("%s %s %s %.1fms", scope["method"], _path(scope), status,
                            (time.perf_counter() - start) * 1000)
            request_id.reset(token)


def _path(scope: Scope) -> str:
    # The path as the client sent it (percent-encoding kept), quoted if odd.
    raw = scope.get("raw_path") or scope["path"].encode()
    return _loggable(raw.decode("latin-1"), limit=512)
