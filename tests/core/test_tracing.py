"""Traces: a span per request named by its route, the statements under it, traceparent in,
the trace id on the log line, jobs under the request that enqueued them; off, nothing.

The spans are read from the SDK's in-memory exporter behind the app's own batch processor
(flushed by the test); tests/core/test_tracing_otlp.py sends them to a real OTLP endpoint.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from config import traces_exporters
from tests.support.examples import example_request
from tests.support.operations import OPERATION_IDS
from webapp.core.db import unit_of_work
from webapp.core.jobs import Job, run_due_jobs
from webapp.core.tracing import EXTENSION, current_trace_context, tracing_of

ROOT = Path(__file__).resolve().parents[2]
SIGN_UP = {"email": "traced@example.com", "full_name": "Traced", "password": "password123"}
TRACEPARENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT_SPAN_ID = "00f067aa0ba902b7"


@dataclass
class Traced:
    app: Flask
    client: FlaskClient
    exporter: InMemorySpanExporter

    def spans(self) -> list[ReadableSpan]:
        """Every span ended so far, exported through the app's batch processor."""
        tracing = tracing_of(self.app)
        assert tracing is not None
        assert tracing.force_flush()
        return list(self.exporter.get_finished_spans())

    def clear(self) -> None:
        """Forget the spans so far, those still in the batch processor's queue too."""
        self.spans()
        self.exporter.clear()

    def server_span(self, name: str) -> ReadableSpan:
        servers = [span for span in self.spans() if span.kind == SpanKind.SERVER]
        assert [span.name for span in servers] == [name]
        return servers[0]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        parent_id = parent.context.span_id
        return [span for span in self.spans() if span.parent is not None and span.parent.span_id == parent_id]


@pytest.fixture
def traced(make_own_app: Callable[..., Flask], tmp_path: Path) -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    app = make_own_app(TRACING_EXPORTER=exporter, MAIL_DIR=str(tmp_path / "mailbox"))
    yield Traced(app, app.test_client(), exporter)
    _stop_exporting(app)


def _stop_exporting(app: Flask) -> None:
    """The app's export thread ends with the test (it would otherwise live until exit)."""
    tracing = tracing_of(app)
    assert tracing is not None
    tracing.provider.shutdown()


def _statements(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [span for span in spans if span.kind == SpanKind.CLIENT]


def _statement_text(span: ReadableSpan) -> str:
    attributes = span.attributes or {}
    return str(attributes.get("db.statement") or attributes.get("db.query.text") or "")


def test_a_get_is_a_span_named_by_its_route_with_a_child_span_per_statement(traced: Traced) -> None:
    user_id = traced.client.post("/api/v1/users", json=SIGN_UP).get_json()["id"]
    traced.clear()

    response = traced.client.get(f"/api/v1/users/{user_id}")

    assert response.status_code == 200
    request = traced.server_span("GET /api/v1/users/<id:user_id>")
    assert (request.attributes or {})["http.status_code"] == 200
    statements = _statements(traced.children(request))
    assert any(_statement_text(span).startswith("SELECT") for span in statements)
    # Every statement of the request is under its span: none went out as a trace of its own.
    assert statements == _statements(traced.spans())
    assert {span.context.trace_id for span in statements} == {request.context.trace_id}


def test_a_post_is_a_span_with_its_insert_under_it(traced: Traced) -> None:
    response = traced.client.post("/api/v1/users", json=SIGN_UP)

    assert response.status_code == 201
    request = traced.server_span("POST /api/v1/users")
    statements = _statements(traced.children(request))
    assert any(_statement_text(span).startswith("INSERT INTO users") for span in statements)
    assert {span.context.trace_id for span in statements} == {request.context.trace_id}


def test_an_incoming_traceparent_makes_the_request_span_its_child(traced: Traced) -> None:
    traceparent = f"00-{TRACEPARENT_TRACE_ID}-{TRACEPARENT_SPAN_ID}-01"

    traced.client.get("/api/v1/users", headers={"traceparent": traceparent})

    request = traced.server_span("GET /api/v1/users")
    assert format_trace_id(request.context.trace_id) == TRACEPARENT_TRACE_ID
    assert request.parent is not None
    assert request.parent.is_remote
    assert format_span_id(request.parent.span_id) == TRACEPARENT_SPAN_ID
    assert {format_trace_id(span.context.trace_id) for span in traced.spans()} == {TRACEPARENT_TRACE_ID}


def test_the_request_log_line_carries_the_trace_id(traced: Traced, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="webapp.request")

    traced.client.get("/api/v1/users")

    request = traced.server_span("GET /api/v1/users")
    (line,) = [record for record in caplog.records if record.name == "webapp.request"]
    trace_id = format_trace_id(request.context.trace_id)
    assert line.fields["trace_id"] == trace_id  # type: ignore[attr-defined]
    assert f" trace_id={trace_id} " in line.getMessage()


def test_a_slow_statement_warning_carries_the_trace_id(
    make_own_app: Callable[..., Flask], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = InMemorySpanExporter()
    # Every statement is slow: the warning of the request's SELECT names its trace.
    app = make_own_app(TRACING_EXPORTER=exporter, SLOW_QUERY_MS=0.0, MAIL_DIR=str(tmp_path / "mailbox"))
    traced = Traced(app, app.test_client(), exporter)
    try:
        caplog.set_level(logging.WARNING, logger="webapp.sql")

        traced.client.get("/api/v1/users")

        trace_id = format_trace_id(traced.server_span("GET /api/v1/users").context.trace_id)
        warnings = [record for record in caplog.records if getattr(record, "event", None) == "slow_statement"]
        assert warnings
        assert {record.fields["trace_id"] for record in warnings} == {trace_id}  # type: ignore[attr-defined]
        assert all(f"trace_id={trace_id}" in record.getMessage() for record in warnings)
    finally:
        _stop_exporting(app)


def test_a_request_no_rule_matched_is_named_by_its_method_alone(traced: Traced) -> None:
    response = traced.client.get("/no/such/path/4711")

    assert response.status_code == 404
    request = traced.server_span("GET")
    assert "4711" not in request.name


def test_a_token_in_the_query_string_is_redacted_in_the_span(traced: Traced) -> None:
    traced.client.get("/api/v1/users?access_token=s3cret-value&per_page=5")

    request = traced.server_span("GET /api/v1/users")
    copied = [str(value) for value in (request.attributes or {}).values() if "per_page" in str(value)]
    assert copied, request.attributes
    assert not any("s3cret-value" in value for value in copied)
    assert all("access_token=[redacted]" in value for value in copied)


def test_a_job_runs_in_a_span_under_the_request_that_enqueued_it(traced: Traced) -> None:
    traced.client.post("/api/v1/users", json=SIGN_UP)
    request = traced.server_span("POST /api/v1/users")
    database = traced.app.extensions["database"]
    with database.new_session(read_only=True) as session:
        (stored,) = session.scalars(select(Job.trace_context)).all()
    assert stored is not None
    assert format_trace_id(request.context.trace_id) in stored["traceparent"]

    with traced.app.app_context():
        assert run_due_jobs() == 1

    (job,) = [span for span in traced.spans() if span.name.startswith("job ")]
    assert job.name == "job accounts.mail-verification"
    assert job.kind == SpanKind.CONSUMER
    assert job.context.trace_id == request.context.trace_id
    assert job.parent is not None
    assert job.parent.span_id == request.context.span_id
    assert (job.attributes or {})["webapp.job.state"] == "succeeded"
    # The task's own statements (and the job's "succeeded") are under the job's span.
    assert any(_statement_text(span).startswith("UPDATE jobs") for span in traced.children(job))


def test_the_thread_worker_runs_the_job_in_a_span_under_the_request(
    make_own_app: Callable[..., Flask], tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    app = make_own_app(
        TRACING_EXPORTER=exporter,
        MAIL_DIR=str(tmp_path / "mailbox"),
        JOBS_WORKER="thread",
        JOBS_POLL_SECONDS=0.2,
    )
    traced = Traced(app, app.test_client(), exporter)
    try:
        traced.client.post("/api/v1/users", json=SIGN_UP)
        request = traced.server_span("POST /api/v1/users")
        deadline = time.monotonic() + 5
        while not (jobs := [span for span in traced.spans() if span.name.startswith("job ")]):
            assert time.monotonic() < deadline, "the thread worker ran no job"
            time.sleep(0.05)
    finally:
        app.extensions["jobs"].stop()
        _stop_exporting(app)

    assert jobs[0].context.trace_id == request.context.trace_id
    assert jobs[0].parent is not None
    assert jobs[0].parent.span_id == request.context.span_id


@pytest.mark.parametrize("operation_id", OPERATION_IDS)
def test_every_operation_answers_as_documented_in_a_span_of_its_route(
    make_own_app: Callable[..., Flask], tmp_path: Path, operation_id: str
) -> None:
    """OpenTelemetry's own statement listener on every path the app takes (reads included)."""
    exporter = InMemorySpanExporter()
    app = make_own_app(TRACING_EXPORTER=exporter, MAIL_DIR=str(tmp_path / "mailbox"))
    traced = Traced(app, app.test_client(), exporter)
    try:
        example = example_request(app, traced.client, app.extensions["database"], operation_id)
        traced.clear()

        response = example.send(traced.client)

        status = next(code for code in example.operation["responses"] if code.startswith("2"))
        assert response.status_code == int(status), response.get_data(as_text=True)
        method = example.method.upper()
        request = traced.server_span(f"{method} {_rule(app, method, example.url)}")
        if operation_id != "get_health_live":  # the liveness probe never asks the database
            assert _statements(traced.children(request))
        assert _statements(traced.spans()) == _statements(traced.children(request))
    finally:
        _stop_exporting(app)


def _rule(app: Flask, method: str, url: str) -> str:
    adapter = app.url_map.bind("localhost")
    rule, _arguments = adapter.match(url.split("?", maxsplit=1)[0], method=method, return_rule=True)
    return str(rule)


def test_statements_outside_a_request_or_job_are_not_exported(traced: Traced) -> None:
    engine: Engine = traced.app.extensions["database"].engine
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))

    assert traced.spans() == []


def test_without_an_exporter_nothing_is_instrumented(
    make_own_app: Callable[..., Flask], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_own_app(MAIL_DIR=str(tmp_path / "mailbox"))
    caplog.set_level(logging.INFO, logger="webapp.request")

    response = app.test_client().post("/api/v1/users", json=SIGN_UP)

    assert response.status_code == 201
    assert EXTENSION not in app.extensions
    assert not any("opentelemetry" in repr(function) for function in app.before_request_funcs.get(None, []))
    for engine in app.extensions["database"].engines:
        assert not list(engine.dispatch.before_cursor_execute)
    (line,) = [record for record in caplog.records if record.name == "webapp.request"]
    assert "trace_id" not in line.fields  # type: ignore[attr-defined]
    with unit_of_work(app.extensions["database"]) as uow:
        session: Session = uow.session
        assert session.scalars(select(Job.trace_context)).all() == [None]
    assert current_trace_context() is None  # no span is current here, traced app or not


def test_an_app_that_does_not_trace_never_imports_opentelemetry(tmp_path: Path) -> None:
    program = (
        "import sys, wsgi; wsgi.app.test_client().get('/health/live');"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith('opentelemetry')}))"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "DATABASE_"))}
    env.update(FLASK_SKIP_DOTENV="1", DATABASE_URL=f"sqlite:///{tmp_path / 'untraced.db'}")
    ran = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert ran.stdout.strip() == "[]", ran.stderr


@pytest.mark.parametrize(
    ("environ", "exporters"),
    [
        ({}, ()),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ("otlp",)),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ("otlp",)),
        ({"OTEL_TRACES_EXPORTER": "console"}, ("console",)),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ("otlp", "console")),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ()),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ()),
    ],
)
def test_the_standard_variables_say_whether_and_where_spans_go(
    environ: dict[str, str], exporters: tuple[str, ...]
) -> None:
    assert traces_exporters(environ) == exporters


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_TRACES_EXPORTER": "zipkin"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
    ],
)
def test_an_exporter_or_protocol_not_shipped_is_refused_at_start(environ: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="OTEL_"):
        traces_exporters(environ)
