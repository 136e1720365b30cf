"""Server-Timing for SQL: every statement a request runs through SQLAlchemy
becomes one entry in the response's Server-Timing header,

    Server-Timing: db;desc="select";dur=0.412, db;desc="insert";dur=1.630

(dur in milliseconds, to the microsecond), and Caddy's route_metrics turns
the entries into db_queries_total and db_query_duration_seconds per route
and operation. The app needs no Prometheus client.

Use it in any FastAPI or Starlette app: copy this file, then

    from .timing import ServerTimingMiddleware
    app.add_middleware(ServerTimingMiddleware)

Importing the module hooks every SQLAlchemy Engine. Add the middleware
after the one that answers unhandled exceptions (request_log.py here): a
500 that Starlette sends by itself comes from outside every middleware and
would not carry the failed request's queries. Entries are collected
until the response headers go out: queries a streaming response runs while
it streams, or a background task runs after it, are not reported.
"""

from __future__ import annotations

import re
import time
from contextvars import ContextVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The entries of the request being handled; None outside a request (start-up
# queries, scripts), where nothing is collected.
_timings: ContextVar[list[str] | None] = ContextVar("server_timings", default=None)
_STARTS = "server_timing_starts"  # key in Connection.info
_FIRST_WORD = re.compile(r"\s*([A-Za-z]+)")


def _record(conn, statement: str) -> None:
    ms = (time.perf_counter() - conn.info[_STARTS].pop()) * 1000
    timings = _timings.get()
    if timings is not None:
        # The statement's first keyword: select, insert, update, delete...
        m = _FIRST_WORD.match(statement)
        operation = m.group(1).lower() if m else "other"
        timings.append(f'db;desc="{operation}";dur={ms:.3f}')


@event.listens_for(Engine, "before_cursor_execute")
def _before(conn, cursor, statement, parameters, context, executemany):
    conn.info.setdefault(_STARTS, []).append(time.perf_counter())


@event.listens_for(Engine, "after_cursor_execute")
def _after(conn, cursor, statement, parameters, context, executemany):
    _record(conn, statement)


@event.listens_for(Engine, "handle_error")
def _failed(exception_context):
    # A statement that raised never reaches after_cursor_execute; it still
    # spent time in the database, so report it too.
    conn = exception_context.connection
    if conn is not None and conn.info.get(_STARTS) and exception_context.statement:
        _record(conn, exception_context.statement)


class ServerTimingMiddleware:
    """Adds the request's Server-Timing entries to its response headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timings: list[str] = []
        token = _timings.set(timings)

        async def send_with_timings(message: Message) -> None:
            if message["type"] == "http.response.start" and timings:
                header = (b"server-timing", ", ".join(timings).encode("latin-1"))
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_timings)
        finally:
            _timings.reset(token)
