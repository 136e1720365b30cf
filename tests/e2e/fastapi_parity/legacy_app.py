"""The example app (examples/fastapi/app) with the instrumentation FastAPI
apps carry today switched on, for the parity suite to compare with Caddy:

- a prometheus_client middleware: http_requests_total{method,endpoint,
  status} and http_request_duration_seconds{method,endpoint}, endpoint
  being request.url.path, timed with time.time() around call_next; an
  unhandled exception counted as status 500; an in-progress gauge;
- contact_submissions_total{source,service}, incremented once a contact
  message is stored;
- SQLAlchemy before/after_cursor_execute hooks: db_queries_total{operation}
  and db_query_duration_seconds{operation} for select/insert/update/delete,
  timed with time.time();
- GET /metrics serving generate_latest() (process_* and python_* included).

Test-only reference code: the example app itself has no Prometheus client.
Run it like the example: uvicorn fastapi_parity.legacy_app:app, with
examples/fastapi and tests/e2e on PYTHONPATH.
"""

from __future__ import annotations

import time

from fastapi import Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.main import app
from app.models import ContactMessage

HTTP_REQUESTS = Counter("http_requests_total", "Total HTTP requests", ["method", "endpoint", "status"])
HTTP_DURATION = Histogram("http_request_duration_seconds", "HTTP request duration in seconds",
                          ["method", "endpoint"])
IN_PROGRESS = Gauge("inprogress_requests", "Requests in progress")
CONTACT_SUBMISSIONS = Counter("contact_submissions_total", "Total contact form submissions",
                              ["source", "service"])
DB_QUERIES = Counter("db_queries_total", "Database queries", ["operation"])
DB_DURATION = Histogram("db_query_duration_seconds", "Database query duration in seconds", ["operation"])


@event.listens_for(Engine, "before_cursor_execute")
def _query_start(conn, cursor, statement, parameters, context, executemany):
    context._query_start_time = time.time()


@event.listens_for(Engine, "after_cursor_execute")
def _query_end(conn, cursor, statement, parameters, context, executemany):
    duration = time.time() - context._query_start_time
    op = statement.strip().split()[0].lower()
    if op in ("select", "insert", "update", "delete"):
        DB_QUERIES.labels(operation=op).inc()
        DB_DURATION.labels(operation=op).observe(duration)


# The business counter, where the handler would call it: right after the
# contact message is created (the example's handler has no hook for it).
@event.listens_for(ContactMessage, "after_insert")
def _contact_stored(mapper, connection, target):
    CONTACT_SUBMISSIONS.labels(source="website", service="fastapi").inc()


@app.middleware("http")
async def metrics_middleware(request: Request, call_next):
    IN_PROGRESS.inc()
    start_time = time.time()
    try:
        response = await call_next(request)
        duration = time.time() - start_time
        HTTP_REQUESTS.labels(method=request.method, endpoint=request.url.path,
                             status=response.status_code).inc()
        HTTP_DURATION.labels(method=request.method, endpoint=request.url.path).observe(duration)
        return response
    except Exception:
        HTTP_REQUESTS.labels(method=request.method, endpoint=request.url.path, status=500).inc()
        raise
    finally:
        IN_PROGRESS.dec()


@app.get("/metrics")
def metrics():
    return Response(content=generate_latest(), media_type=CONTENT_TYPE_LATEST)
