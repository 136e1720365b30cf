"""The example app (examples/fastapi/app) instrumented the way FastAPI
users label requests by route template today: prometheus-fastapi-
instrumentator, status codes not grouped, its /metrics left out of its own
counts and of the OpenAPI document. The route template parity suite
(test_parity_templates.py) compares Caddy's endpoint labels, taken from this
app's /openapi.json, with the instrumentator's handler labels.

Test-only reference code. Run it like the example: uvicorn
fastapi_parity.instrumented_app:app, with examples/fastapi and tests/e2e on
PYTHONPATH.
"""

from __future__ import annotations

from prometheus_fastapi_instrumentator import Instrumentator

from app.main import app

Instrumentator(should_group_status_codes=False, excluded_handlers=["/metrics"]).instrument(app).expose(
    app, include_in_schema=False)
