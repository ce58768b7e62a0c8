"""Request ids, one structured log line per request, SQL counts and slow-statement warnings.

Every request ends with one ``webapp.request`` line::

    INFO webapp.request request method=GET path=/api/v1/users status=200 duration_ms=4.1
        request_id=3f2a... sql_count=2 sql_ms=1.3

When the app traces (webapp/core/tracing), ``trace_id=`` follows the request id. A 4xx
or 5xx line also says which problem was answered (``problem_type``) and why (``reason``:
the problem's detail, else its title), so a log alone explains a failure.
``sql_count``/``sql_ms`` add up every statement the request's context sent through the
engine, on whatever connection (the health check's own ``SELECT 1`` included), timed
from cursor execute to its return. A statement slower than ``SLOW_QUERY_MS`` is logged
as a ``webapp.sql`` WARNING with its text but never its parameters.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flask import Flask
from sqlalchemy import Engine, event

from webapp.core.tracing import current_trace_id

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("webapp.request")
sql_log = logging.getLogger("webapp.sql")
database_log = logging.getLogger("webapp.database")

# Matched whole (fullmatch): "$" would also accept a final newline, in an id that goes
# back out in a response header.
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Controls and bidi formatting characters: a client's bytes (a path with %1b, a C1 CSI)
# must not reach a terminal or a log viewer as escape sequences.
_BIDI = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_NEEDS_QUOTES = re.compile(rf'[\s"=\\\x00-\x1f\x7f-\x9f{_BIDI}]')
# What json.dumps(ensure_ascii=False) leaves as it is of those: DEL, C1 and bidi.
_UNESCAPED_BY_JSON = re.compile(rf"[\x7f-\x9f{_BIDI}]")
# Anywhere in a line but the line breaks and tabs of tracebacks and multi-line messages.
_UNSAFE_IN_LINE = re.compile(rf"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
# Query parameters that carry a credential: written to the log as [redacted].
_TOKEN_PARAMETER = re.compile(r"((?:^|&)(?:access_)?token=)[^&]*")
# insertmanyvalues batches: "VALUES (...), (...), ..." with up to 1,000 rows.
_ROW = r"\((?:[^()%]|%\([^()]*\)s|%)*\)"  # a row of placeholders, psycopg2's %(name)s included
_VALUES_ROWS = re.compile(rf"(VALUES {_ROW})(?:, {_ROW})+")
MAX_LOGGED_STATEMENT = 2000
MAX_LOGGED_REASON = 200
# The format werkzeug's development server logs each request line with (serving.py).
_WERKZEUG_REQUEST_LINE = '] "%s" %s %s'
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(slots=True)
class SqlStats:
    """What the statements of one request (or one CLI command) cost."""

    request_id: str | None = None
    count: int = 0
    seconds: float = 0.0
    # Bulk loads (flask seed) send big statements on purpose: a warning each is noise.
    warn_slow: bool = True
    # A request's: when it started, and the problem it was answered with (problems.py).
    started_at: float = 0.0
    problem: dict[str, Any] | None = None


# A context variable, not flask.g: engine events also fire outside requests (CLI,
# migrations), where g does not exist, and they must never reach another request's
# figures. g would also cost a LocalProxy lookup per access, and it belongs to the app
# context, which a test or a CLI command may keep open across several requests.
_sql_stats: ContextVar[SqlStats | None] = ContextVar("webapp_sql_stats", default=None)


def current_sql_stats() -> SqlStats | None:
    return _sql_stats.get()


@contextmanager
def sql_stats_scope(*, warn_slow: bool = True) -> Iterator[SqlStats]:
    """Count the statements of a block outside requests (a CLI command, a job)."""
    stats = SqlStats(warn_slow=warn_slow)
    token = _sql_stats.set(stats)
    try:
        yield stats
    finally:
        _sql_stats.reset(token)


def log_event(logger: logging.Logger, level: int, name: str, **fields: Any) -> None:
    """One line: ``name key=value ...``; JSON output gets ``fields`` as keys of their own."""
    if logger.isEnabledFor(level):  # formatting the fields is most of the cost of a line
        logger.log(level, "%s %s", name, logfmt(fields), extra={"event": name, "fields": fields})


def logfmt(fields: dict[str, Any]) -> str:
    return " ".join(
        f"{key}={_logfmt_value('' if value is None else str(value))}" for key, value in fields.items()
    )


def _logfmt_value(text: str) -> str:
    if text == "" or _NEEDS_QUOTES.search(text):
        return _escape_unsafe(json.dumps(text, ensure_ascii=False))
    return text


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _escape_unsafe(text: str) -> str:
    """JSON text with DEL, C1 and bidi characters escaped too (still the same JSON value)."""
    return _UNESCAPED_BY_JSON.sub(_json_escape, text)


def escape_line(text: str) -> str:
    """A log line with every control and bidi character shown as an escape, but newlines and tabs."""
    return _UNSAFE_IN_LINE.sub(_json_escape, text)


def current_request_id() -> str:
    """The id of the request being handled ("-" outside requests), for log lines."""
    stats = _sql_stats.get()
    return stats.request_id if stats is not None and stats.request_id else "-"


def note_problem(body: dict[str, Any]) -> None:
    """Remember the problem a request is answered with, for its request line."""
    stats = _sql_stats.get()
    if stats is not None:
        stats.problem = body


def _problem_fields(body: dict[str, Any]) -> dict[str, Any]:
    reason = str(body.get("detail") or body.get("title") or "")
    if len(reason) > MAX_LOGGED_REASON:
        reason = reason[:MAX_LOGGED_REASON] + "..."
    return {"problem_type": body.get("type"), "reason": reason}


REQUEST_LOG = "webapp.request_log"
# What an observer of answered requests is given: the environ, the status line, the
# request's SQL figures and the seconds from its arrival to its status.
RequestObserver = Callable[["WSGIEnvironment", str, SqlStats, float], None]


def register_request_logging(app: Flask) -> None:
    """Request id in and out, the request line, and SQL timing on the app's engine."""
    database = app.extensions.get("database")
    if database is not None:
        slow_query_ms = float(app.config.get("SLOW_QUERY_MS", 200.0))

        def on_engine_created(engine: Engine) -> None:
            engines = database.engines
            if engine is engines[0]:
                # "Which database is this?" is the first question when data seems missing.
                log_event(
                    database_log,
                    logging.INFO,
                    "database",
                    url=engine.url.render_as_string(hide_password=True),
                    slow_query_ms=slow_query_ms,
                    reads="autocommit pool" if len(engines) > 1 else "app pool",
                )
            attach_sql_listeners(engine, slow_query_ms)

        database.on_engine_created(on_engine_created)

    request_log = RequestLog(app.wsgi_app)
    app.extensions[REQUEST_LOG] = request_log
    app.wsgi_app = request_log  # type: ignore[method-assign]


def request_log_of(app: Flask) -> RequestLog:
    """The app's request log middleware, to add an observer to (metrics)."""
    request_log: RequestLog = app.extensions[REQUEST_LOG]
    return request_log


class RequestLog:
    """WSGI middleware: the request id in and out, the request's SQL figures, its line.

    Around Flask rather than in its hooks: the environ is at hand (no LocalProxy or
    werkzeug Headers lookups), the status logged is the one the server gets, whichever
    hook or handler settled it, and the duration covers the commit and all of Flask's
    work. The three hooks this replaced cost ~130k instructions per GET by id with the
    line not even logged (WARNING), ~230k with it.
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        # Called with each answer's figures as its status is sent (webapp/core/metrics).
        self.observe: RequestObserver | None = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started_at = time.perf_counter()
        supplied = environ.get("HTTP_X_REQUEST_ID")
        # 32 hex digits, as uuid4().hex gave, for a seventh of its cost.
        request_id = supplied if supplied and _CLIENT_REQUEST_ID.fullmatch(supplied) else os.urandom(16).hex()
        stats = SqlStats(request_id=request_id, started_at=started_at)
        token = _sql_stats.set(stats)
        observe = self.observe

        def start_logged(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
        ) -> Callable[[bytes], object]:
            if log.isEnabledFor(logging.INFO):
                _log_request(environ, status, stats)
            if observe is not None:
                try:
                    observe(environ, status, stats, time.perf_counter() - started_at)
                except Exception:  # as for the log line: a committed write must not turn into a 500
                    log.exception("observing the request failed")
            return start_response(status, [*headers, ("X-Request-ID", request_id)], exc_info)

        try:
            return self.app(environ, start_logged)
        finally:
            _sql_stats.reset(token)


def _log_request(environ: WSGIEnvironment, status_line: str, stats: SqlStats) -> None:
    # Runs after the commit: nothing here may raise, or a committed write would be
    # answered 500. The path is the raw environ's (werkzeug's request.full_path decodes
    # the query string strictly and raises on bytes that are not UTF-8).
    try:
        duration_ms = round((time.perf_counter() - stats.started_at) * 1000, 1)
        sql_ms = round(stats.seconds * 1000, 1)
        status = int(status_line[:3])
        method = environ.get("REQUEST_METHOD", "GET").upper()
        query = environ.get("QUERY_STRING")
        if query and "token=" in query:
            # A bearer token sent in the URL (refused with a 400), or a one-time token of a
            # mailed link: whoever reads the log must not be able to use it.
            query = redact_query(query)
        path = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
        fields: dict[str, Any] = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            "request_id": stats.request_id,
        }
        trace = ""
        # None at once when no app of this process traces (webapp/core/tracing).
        trace_id = current_trace_id()
        if trace_id is not None:
            fields["trace_id"] = trace_id
            trace = f" trace_id={trace_id}"
        fields["sql_count"] = stats.count
        fields["sql_ms"] = sql_ms
        # One f-string, the same text as logfmt(fields): numbers, request ids (checked
        # against _CLIENT_REQUEST_ID, or hex) and trace ids (hex) never need quotes.
        text = (
            f"request method={_logfmt_value(method)} path={_logfmt_value(path)} status={status} "
            f"duration_ms={duration_ms} request_id={stats.request_id}{trace} "
            f"sql_count={stats.count} sql_ms={sql_ms}"
        )
        if status >= 400 and stats.problem is not None:
            problem = _problem_fields(stats.problem)
            fields.update(problem)
            text = f"{text} {logfmt(problem)}"
        log.info(text, extra={"event": "request", "fields": fields})
    except Exception:  # a committed write must not turn into a 500 over a log line
        log.exception("writing the request log line failed")


def redact_query(query: str) -> str:
    """A query string with the values of credential parameters (token=, access_token=) replaced."""
    return _TOKEN_PARAMETER.sub(r"\1[redacted]", query)


def attach_sql_listeners(engine: Engine, slow_query_ms: float) -> None:
    """Time every statement: add it to the current request's stats, warn when it is slow.

    Dialect events, not ConnectionEvents: any before/after_cursor_execute listener makes
    SQLAlchemy build a joined event dispatcher for every Connection, which cost more per
    GET than the statement's own bookkeeping (bench/README.md). The dialect's do_execute
    hooks are where the DBAPI call happens; each listener makes the call itself, so one
    ``perf_counter`` pair brackets exactly the cursor's execute, and a statement the
    database refused is counted too (it cost a round trip) before its error propagates
    to SQLAlchemy's usual handling.
    """
    dialect = engine.dialect  # the default behaviour each listener stands in for

    @event.listens_for(engine, "do_execute")
    def _execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        started = time.perf_counter()
        try:
            dialect.do_execute(cursor, statement, parameters, context)
        finally:
            _record(started, statement, slow_query_ms)
        return True

    @event.listens_for(engine, "do_execute_no_params")
    def _execute_no_params(cursor: Any, statement: str, context: Any) -> bool:
        started = time.perf_counter()
        try:
            dialect.do_execute_no_params(cursor, statement, context)
        finally:
            _record(started, statement, slow_query_ms)
        return True

    @event.listens_for(engine, "do_executemany")
    def _executemany(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        started = time.perf_counter()
        try:
            dialect.do_executemany(cursor, statement, parameters, context)
        finally:
            _record(started, statement, slow_query_ms)
        return True


def _record(started: float, statement: str, slow_query_ms: float) -> None:
    elapsed = time.perf_counter() - started
    stats = _sql_stats.get()
    if stats is not None:
        stats.count += 1
        stats.seconds += elapsed
    elapsed_ms = elapsed * 1000
    if elapsed_ms >= slow_query_ms and (stats is None or stats.warn_slow):
        _warn_slow(elapsed_ms, slow_query_ms, stats, statement)


def _warn_slow(elapsed_ms: float, slow_query_ms: float, stats: SqlStats | None, statement: str) -> None:
    fields: dict[str, Any] = {
        "duration_ms": round(elapsed_ms, 1),
        "threshold_ms": slow_query_ms,
        "request_id": stats.request_id if stats is not None else None,
    }
    # The statement's trace, as the request's line has it: from the warning to the request
    # and the other statements around it.
    trace_id = current_trace_id()
    if trace_id is not None:
        fields["trace_id"] = trace_id
    log_event(sql_log, logging.WARNING, "slow_statement", **fields, statement=loggable_statement(statement))


def loggable_statement(statement: str) -> str:
    """One line, a multi-row VALUES list shown by its first row, and a bounded length."""
    text = " ".join(statement.split())
    text = _VALUES_ROWS.sub(
        lambda match: f"{match.group(1)}, ... ({match.group(0).count('), (') + 1} rows)", text
    )
    if len(text) > MAX_LOGGED_STATEMENT:
        text = text[:MAX_LOGGED_STATEMENT] + "..."
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line; events logged with :func:`log_event` keep their fields."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        event_name = getattr(record, "event", None)
        fields = getattr(record, "fields", None)
        if event_name is not None and isinstance(fields, dict):
            body["event"] = event_name
            body.update(fields)
        else:
            body["message"] = record.getMessage()
        if record.exc_info:
            body["exc_info"] = self.formatException(record.exc_info)
        return _escape_unsafe(json.dumps(body, ensure_ascii=False, default=str))


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class TextFormatter(logging.Formatter):
    """``logging.Formatter(TEXT_FORMAT)``'s lines, at half its cost per line.

    The date and time are formatted once per second (localtime and strftime were ~9k
    instructions of a ~27k format), and the line is one f-string rather than
    ``TEXT_FORMAT % record.__dict__``.
    """

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached = self._second  # one read: another thread may replace it meanwhile
        if cached[0] != second:
            cached = (second, time.strftime(self.default_time_format, self.converter(second)))
            self._second = cached
        if self.default_msec_format:
            return self.default_msec_format % (cached[1], record.msecs)
        return cached[1]

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802
        return f"{record.asctime} {record.levelname} {record.name} {record.message}"

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        # The message, a traceback and a stack may all carry a client's text.
        return escape_line(line) if _UNSAFE_IN_LINE.search(line) else line


def configure_logging(level: str, log_format: str = "text") -> None:
    """Send logs to stderr unless something (gunicorn --log-config, pytest) already does."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
        root.addHandler(handler)
        root.setLevel(level)
    logging.getLogger("webapp").setLevel(level)
    # With SQL_ECHO, SQLAlchemy adds its own stdout handler to a logger that has none,
    # printing every statement twice (once more through ours). A NullHandler keeps its
    # lines on our handler and in our format.
    engine_logger = logging.getLogger("sqlalchemy.engine.Engine")
    if not engine_logger.handlers:
        engine_logger.addHandler(logging.NullHandler())
    werkzeug_logger = logging.getLogger("werkzeug")
    if not any(isinstance(item, WerkzeugRequestLines) for item in werkzeug_logger.filters):
        werkzeug_logger.addFilter(WerkzeugRequestLines())


class WerkzeugRequestLines(logging.Filter):
    """Drops the development server's request lines and the colour codes of its other lines.

    The app logs every request it serves itself (``webapp.request``), with more in it;
    werkzeug's copy added a second line per request, with ANSI colour codes that end
    up as escape bytes in log files. Its other lines (startup, errors) stay, plain.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.endswith(_WERKZEUG_REQUEST_LINE):
            return False
        if isinstance(record.msg, str):
            record.msg = _ANSI_ESCAPE.sub("", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                _ANSI_ESCAPE.sub("", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True
