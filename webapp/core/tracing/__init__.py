"""OpenTelemetry traces, on when the standard OTEL_* variables name an exporter (config.py).

``install_tracing`` gives an app, in the process that serves it (a gunicorn worker, a
Celery worker, ``flask run``), a tracer provider of its own that batches spans to the
exporter, and:

- a SERVER span per request (opentelemetry-instrumentation-flask), named after the method
  and the route template (``GET /api/v1/users/<id:user_id>``; the method alone when no
  rule matched, never the raw path), the child of an incoming ``traceparent``;
- a CLIENT span per SQL statement on each of the app's engines as it is built
  (opentelemetry-instrumentation-sqlalchemy), under the request's or the job's span.
  Statements outside both (the jobs poller, a metrics scrape, CLI commands) are not
  exported: each would be a trace of one span;
- a span per job run (``job_span``), the child of the span that enqueued the job: its
  context travels in the job's row (``current_trace_context``), whichever runner runs it;
- the trace id on the request's log line.

Off, none of it is installed and nothing of OpenTelemetry is imported: this module only
decides, and ``webapp.core.tracing.sdk`` (loaded when tracing is on) does the work.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from flask import Flask, has_app_context

from webapp.core.context import current_flask_app

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from webapp.core.db import Database
    from webapp.core.tracing.sdk import Tracing

log = logging.getLogger(__name__)

EXTENSION = "webapp_tracing"


class _Provider(Protocol):
    def shutdown(self) -> None: ...


# Every tracer provider this process made, for shutdown_tracing (gunicorn's worker_exit,
# Celery's worker_process_shutdown). Not empty once an app traces: enqueue asks for the
# current trace context only then.
_providers: list[_Provider] = []


def install_tracing(app: Flask, database: Database) -> Tracing | None:
    """Traces as the module says, unless neither TRACES_EXPORTERS (from the OTEL_* variables)
    nor TRACING_EXPORTER (an exporter object, for tests) names one: then nothing at all.

    Call it before any other before_request function is registered: the request span
    starts in one, and a hook that ran first (authentication, rate limits) could answer,
    or send statements, outside the span.
    """
    names: tuple[str, ...] = tuple(app.config.get("TRACES_EXPORTERS") or ())
    if app.config.get("TRACING_EXPORTER") is None and not names:
        return None
    from webapp.core.tracing.sdk import build_tracing

    tracing = build_tracing(app, database)
    app.extensions[EXTENSION] = tracing
    _providers.append(tracing.provider)
    return tracing


def tracing_of(app: Flask) -> Tracing | None:
    """The app's tracing, or None when it does not trace."""
    tracing: Tracing | None = app.extensions.get(EXTENSION)
    return tracing


def shutdown_tracing() -> None:
    """Export what every provider of this process holds, then stop their export threads.

    For a process that ends: a TracerProvider also does it at exit, but a Celery pool
    process ends with os._exit, which runs no exit handlers.
    """
    while _providers:
        provider = _providers.pop()
        try:
            provider.shutdown()
        except Exception:  # one exporter's failure must not keep the other providers' spans in
            log.warning("tracing: shutting down a tracer provider failed", exc_info=True)


def current_trace_context() -> dict[str, str] | None:
    """The current span's context as W3C headers (``traceparent``...), to store with a job;
    None outside a trace, and at once when no app of this process traces."""
    if not _providers:
        return None
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)  # the propagators of OTEL_PROPAGATORS (W3C trace context and baggage)
    return carrier or None


def current_trace_id() -> str | None:
    """The current trace's id (32 hex digits), for log lines; None outside a trace, and at
    once when no app of this process traces."""
    if not _providers:
        return None
    from webapp.core.tracing.sdk import current_trace_id as of_current_span

    return of_current_span()


class JobSpan:
    """What run_job tells the span of a job run; nothing when the app does not trace."""

    def __init__(self, span: Span | None = None) -> None:
        self.span = span

    def ended(self, state: str | None) -> None:
        """The job's state after this run (None: another worker had it, or it was not due)."""
        if self.span is not None:
            self.span.set_attribute("webapp.job.state", state or "skipped")

    def failed(self, error: BaseException) -> None:
        """The run raised ``error`` (the job is retried or has failed for good)."""
        if self.span is not None:
            from opentelemetry.trace import Status, StatusCode

            self.span.record_exception(error)
            self.span.set_status(Status(StatusCode.ERROR, type(error).__name__))


@contextmanager
def job_span(job_id: int, kind: str, attempt: int, stored: Mapping[str, str] | None) -> Iterator[JobSpan]:
    """A span around one run of a job when the current app traces: the child of the context
    ``stored`` with the job (the request that enqueued it), else the root of a trace."""
    tracing = current_flask_app().extensions.get(EXTENSION) if has_app_context() else None
    if tracing is None:
        yield JobSpan()
        return
    with tracing.job_span(job_id, kind, attempt, stored) as span:
        yield JobSpan(span)
