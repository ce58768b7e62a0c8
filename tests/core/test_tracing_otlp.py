"""Spans reach a real OTLP/HTTP endpoint, in protobuf: from gunicorn's worker, what its
batch still holds when it exits (gunicorn.conf.py's worker_exit); from a Celery worker,
the span of a job under the request that enqueued it in another process."""

from __future__ import annotations

import secrets
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from tests.support.otlp import otlp_receiver
from tests.support.processes import (
    BROKER_URL,
    celery_worker,
    child_env,
    flush_broker,
    processes,
    require_redis,
)
from tests.support.server import GunicornServer
from webapp.core.tracing import tracing_of

SIGN_UP = {"email": "celery-traced@example.com", "full_name": "Traced", "password": "password123"}
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


@pytest.fixture
def broker() -> Iterator[str]:
    require_redis()
    flush_broker()
    yield BROKER_URL
    flush_broker()


@pytest.mark.redis
def test_a_job_a_celery_worker_runs_is_a_span_under_the_request_that_enqueued_it(
    make_own_app: Callable[..., Flask], database_url: str, broker: str, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    # The web side in this process (it publishes what its commits enqueue), traced in memory.
    web = make_own_app(TRACING_EXPORTER=exporter, JOBS_WORKER="celery", CELERY_BROKER_URL=broker)
    with otlp_receiver() as receiver, processes(tmp_path) as started:
        env = child_env(
            database_url,
            MAIL_DIR=str(tmp_path / "mailbox"),
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_BSP_SCHEDULE_DELAY="100",
        )
        started.append(celery_worker("worker", env, tmp_path))

        response = web.test_client().post("/api/v1/users", json=SIGN_UP)
        assert response.status_code == 201
        job = receiver.wait_for("job accounts.mail-verification", timeout=15)

    tracing = tracing_of(web)
    assert tracing is not None
    tracing.provider.shutdown()  # exports what it holds, and ends its thread with the test
    (request,) = [span for span in exporter.get_finished_spans() if span.kind == SpanKind.SERVER]
    assert job.trace_id == format_trace_id(request.context.trace_id)
    assert job.parent_span_id == format_span_id(request.context.span_id)
    assert job.attribute("webapp.job.state") == "succeeded"
    # The job's statements went from the worker's pool process under the job's span.
    assert any(span.parent_span_id == job.span_id for span in receiver.spans)
