"""The FastAPI parity suite's parts (tests/e2e/test_parity_fastapi.py):
legacy_app.py, the example app with the instrumentation apps carry today
(runs in the tests' virtual environment only), and traffic.py, the mixed
traffic both sides are measured on (standard library only)."""
