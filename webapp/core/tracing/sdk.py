"""The tracing of an app that traces: its provider, exporters and instrumentations.

Imported only by install_tracing, once the settings ask for traces (see __init__.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from flask import Flask
from opentelemetry.context import Context
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.instrumentation.sqlalchemy.version import __version__ as sqlalchemy_instrumentation_version
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.propagate import extract
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span as ApiSpan
from opentelemetry.trace import SpanKind, format_trace_id, get_current_span
from sqlalchemy import Engine

from webapp.core.context import current_request
from webapp.core.db import Database
from webapp.core.observability import redact_query

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

log = logging.getLogger("webapp.tracing")

# The instrumentation scope of the statement spans: the SQLAlchemy instrumentation's module.
SQL_SCOPE = "opentelemetry.instrumentation.sqlalchemy"
JOBS_SCOPE = "webapp.jobs"
DEFAULT_SERVICE_NAME = "webapp"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Attributes of the request span that copy the query string (old and new HTTP conventions).
_QUERY_ATTRIBUTES = ("http.target", "http.url", "url.query")


class Tracing:
    """An app's tracer provider, and the tracer of its job spans."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer(JOBS_SCOPE)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every ended span now (the batch processor waits up to OTEL_BSP_SCHEDULE_DELAY)."""
        return self.provider.force_flush(timeout_millis)

    @contextmanager
    def job_span(
        self, job_id: int, kind: str, attempt: int, stored: Mapping[str, str] | None
    ) -> Iterator[ApiSpan]:
        parent: Context | None = extract(dict(stored)) if stored else None
        # CONSUMER: whoever enqueued the job produced it, this run processes it. An
        # exception that escapes is recorded, and sets the span's status, on the way out.
        with self.tracer.start_as_current_span(
            f"job {kind}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={"webapp.job.id": job_id, "webapp.job.kind": kind, "webapp.job.attempt": attempt},
        ) as span:
            yield span


def build_tracing(app: Flask, database: Database) -> Tracing:
    """The provider, its exporters, and the request, statement and log-line instrumentation."""
    provider = TracerProvider(resource=_resource())  # the sampler is OTEL_TRACES_SAMPLER's
    configured: SpanExporter | None = app.config.get("TRACING_EXPORTER")
    names: tuple[str, ...] = tuple(app.config.get("TRACES_EXPORTERS") or ())
    exporters = [configured] if configured is not None else [_named_exporter(name) for name in names]
    for exporter in exporters:
        # A thread of this process exports, in batches (OTEL_BSP_* size them): a request
        # never waits for the collector. gunicorn builds the app in each worker (no
        # preload), so each worker has its own thread.
        provider.add_span_processor(StatementsInTraces(BatchSpanProcessor(exporter)))

    # The app's Prometheus metrics count requests and pools already: the instrumentations'
    # own metrics go to a provider that records nothing.
    FlaskInstrumentor.instrument_app(  # type: ignore[no-untyped-call]
        app,
        tracer_provider=provider,
        meter_provider=NoOpMeterProvider(),
        request_hook=_name_unmatched_request,
        response_hook=_redact_query_attributes,
        # No sqlcommenter: a comment that differs per request makes equal statements
        # different texts for the server and for pg_stat_statements.
        enable_commenter=False,
    )
    database.on_engine_created(lambda engine: trace_statements(engine, provider))
    log.info(
        "tracing: spans exported to %s",
        ", ".join(names) if configured is None else type(configured).__name__,
    )
    return Tracing(provider)


def trace_statements(engine: Engine, provider: TracerProvider) -> None:
    """A span per statement sent through ``engine``, made by the SQLAlchemy instrumentation.

    SQLAlchemyInstrumentor().instrument(engine=...) instruments the first engine of a
    process only (it is a singleton: opentelemetry-python-contrib issue 3977), and it also
    wraps create_engine and Engine.connect for every engine in the process. The EngineTracer
    it builds for that engine is what each engine of ours gets here, as it is built.
    """
    tracer = provider.get_tracer(SQL_SCOPE, sqlalchemy_instrumentation_version)
    # Its connection-usage counter is a metric: Prometheus reports the pools already.
    usage = NoOpMeterProvider().get_meter(SQL_SCOPE).create_up_down_counter("db.client.connections.usage")
    EngineTracer(tracer, engine, usage)  # type: ignore[no-untyped-call]


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex digits), for log lines; None outside a trace."""
    context = get_current_span().get_span_context()
    return format_trace_id(context.trace_id) if context.is_valid else None


class StatementsInTraces(SpanProcessor):
    """Hands ended spans on to ``processor``, but for statements that belong to no trace.

    The jobs poller, the Celery relay, a metrics scrape and CLI commands send statements
    with no request or job around them: each would be exported as a trace of one span.
    """

    def __init__(self, processor: SpanProcessor) -> None:
        self.processor = processor

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.processor.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        scope = span.instrumentation_scope
        if span.parent is None and scope is not None and scope.name == SQL_SCOPE:
            return
        self.processor.on_end(span)

    def shutdown(self) -> None:
        self.processor.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.processor.force_flush(timeout_millis)


def _resource() -> Resource:
    # Resource.create() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; without
    # either the SDK names the service "unknown_service", for which this name stands in.
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
    return resource


def _named_exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    # OTLP over HTTP with protobuf (config.py refuses another protocol). The exporter reads
    # OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _name_unmatched_request(span: ApiSpan, environ: WSGIEnvironment) -> None:
    # No rule matched (404, 405): the instrumentation would name the span after the raw
    # path, a name per path anyone asks for. The method alone, as the HTTP conventions say.
    if current_request().url_rule is None:
        method = environ.get("REQUEST_METHOD", "")
        span.update_name(method if method in _METHODS else "HTTP")


def _redact_query_attributes(span: ApiSpan, status: str, headers: list[tuple[str, str]]) -> None:
    # A mailed link's one-time token (or a bearer token sent in the URL, refused) is in the
    # query string the request attributes copy: the log line redacts it, so does the span.
    # At the response, since the instrumentation sets those attributes after its request hook.
    query = current_request().environ.get("QUERY_STRING") or ""
    if "token=" not in query or not isinstance(span, ReadableSpan) or not span.is_recording():
        return
    redacted = redact_query(query)
    attributes = span.attributes or {}
    for key in _QUERY_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str):
            span.set_attribute(key, value.replace(query, redacted))
