"""Spans reach a real OTLP/HTTP endpoint from gunicorn's worker, in protobuf, and what the
worker's batch still holds goes out when it exits (gunicorn.conf.py's worker_exit)."""

from __future__ import annotations

import secrets
import urllib.request
from pathlib import Path

from flask import Flask

from tests.support.otlp import otlp_receiver
from tests.support.server import GunicornServer

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


def test_a_request_served_by_gunicorn_reaches_the_otlp_endpoint_with_its_statements(
    app: Flask, database_url: str, tmp_path: Path
) -> None:
    """Depends on ``app``: its fixture creates the tables the server's app reads."""
    with otlp_receiver() as receiver:
        env = {
            "APP_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "DATABASE_URL": database_url,
            "RATELIMIT_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_SERVICE_NAME": "webapp-under-test",
            # Longer than the test: only the worker's exit sends the batch.
            "OTEL_BSP_SCHEDULE_DELAY": "120000",
        }
        server = GunicornServer(env, tmp_path / "gunicorn.log")
        server.start()
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{server.port}/api/v1/users?per_page=5",
                headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200
            assert receiver.exports == 0  # still in the worker's batch
        finally:
            server.stop()

        served = receiver.wait_for("GET /api/v1/users")
    log = (tmp_path / "gunicorn.log").read_text()
    assert served.resource["service.name"] == "webapp-under-test", log
    assert (served.trace_id, served.parent_span_id) == (TRACE_ID, PARENT_ID)
    assert served.attribute("http.status_code") == 200
    statements = [span for span in receiver.spans if span.parent_span_id == served.span_id]
    assert statements, [span.name for span in receiver.spans]
    assert {span.trace_id for span in statements} == {TRACE_ID}
    assert any(str(span.attribute("db.statement")).startswith("SELECT") for span in statements)

